package cli

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name  string
		pairs []string
		want  job.Args
		usage bool
	}{
		{"none", nil, job.Args{}, false},
		{"number", []string{"seconds=3"}, job.Args{"seconds": json.Number("3")}, false},
		{"large integer stays exact", []string{"n=12345678901234567890"}, job.Args{"n": json.Number("12345678901234567890")}, false},
		{"boolean and null", []string{"ok=true", "none=null"}, job.Args{"ok": true, "none": nil}, false},
		{"object", []string{`size={"w":640,"h":[1,2]}`}, job.Args{"size": map[string]any{"w": json.Number("640"), "h": []any{json.Number("1"), json.Number("2")}}}, false},
		{"quoted string", []string{`id="007"`}, job.Args{"id": "007"}, false},
		{"plain string", []string{"name=report"}, job.Args{"name": "report"}, false},
		{"not quite JSON is a string", []string{"v={oops", "w=1 2"}, job.Args{"v": "{oops", "w": "1 2"}, false},
		{"empty value is an empty string", []string{"v="}, job.Args{"v": ""}, false},
		{"= in the value", []string{"q=a=b"}, job.Args{"q": "a=b"}, false},
		{"no =", []string{"seconds"}, nil, true},
		{"no key", []string{"=3"}, nil, true},
		{"key twice", []string{"a=1", "a=2"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(tc.pairs)
			var ee *exitError
			if tc.usage {
				if !errors.As(err, &ee) || ee.code != ExitUsage {
					t.Fatalf("error %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
