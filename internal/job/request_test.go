package job

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		want      Request
		wantField string
	}{
		{"empty body runs the default", "", Request{Function: DefaultFunction}, ""},
		{"null runs the default", "null", Request{Function: DefaultFunction}, ""},
		{"function and args", `{"function":"sleep","args":{"seconds":"1"}}`, Request{Function: "sleep", Args: Args{"seconds": "1"}}, ""},
		{"no function runs the default", `{"args":{"k":"v"}}`, Request{Function: DefaultFunction, Args: Args{"k": "v"}}, ""},
		{"malformed", `{"function":`, Request{}, "body"},
		{"trailing", `{} x`, Request{}, "body"},
		{"unknown field", `{"fn":"x"}`, Request{}, "fn"},
		{"number function", `{"function":1}`, Request{}, "function"},
		{"any JSON values", `{"function":"resize","args":{"n":12345678901234567890,"ok":true,"size":{"w":1.5},"tags":["a"],"none":null}}`,
			Request{Function: "resize", Args: Args{"n": json.Number("12345678901234567890"), "ok": true, "size": map[string]any{"w": json.Number("1.5")}, "tags": []any{"a"}, "none": nil}}, ""},
		{"array args", `{"args":["a"]}`, Request{}, "args"},
		{"string args", `{"args":"a=b"}`, Request{}, "args"},
		{"upper-case function", `{"function":"Echo"}`, Request{}, "function"},
		{"args at the limit", `{"function":"echo","args":{"v":"` + strings.Repeat("x", MaxArgsBytes-len(`{"v":""}`)) + `"}}`,
			Request{Function: "echo", Args: Args{"v": strings.Repeat("x", MaxArgsBytes-len(`{"v":""}`))}}, ""},
		{"args too large", `{"args":{"v":"` + strings.Repeat("x", MaxArgsBytes) + `"}}`, Request{}, "args"},
		{"timeout and labels", `{"function":"sleep","timeout":"1m30s","labels":{"team":"data","example.com/tier":"batch"}}`,
			Request{Function: "sleep", Timeout: Duration(90 * time.Second), Labels: map[string]string{"team": "data", "example.com/tier": "batch"}}, ""},
		{"timeout not a duration", `{"timeout":"soon"}`, Request{}, "timeout"},
		{"timeout a number", `{"timeout":30}`, Request{}, "timeout"},
		{"timeout zero", `{"timeout":"0s"}`, Request{}, "timeout"},
		{"timeout negative", `{"timeout":"-1s"}`, Request{}, "timeout"},
		{"malformed label key", `{"labels":{"-team":"data"}}`, Request{}, "labels"},
		{"malformed label value", `{"labels":{"team":"data team"}}`, Request{}, "labels"},
		{"long label value", `{"labels":{"team":"` + strings.Repeat("x", 64) + `"}}`, Request{}, "labels"},
		{"reserved label prefix", `{"labels":{"kjobs.dev/job-id":"x"}}`, Request{}, "labels"},
		{"reserved managed-by label", `{"labels":{"app.kubernetes.io/managed-by":"me"}}`, Request{}, "labels"},
		{"label value not a string", `{"labels":{"n":1}}`, Request{}, "labels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tc.body))
			if tc.wantField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tc.wantField {
					t.Fatalf("error = %v, want a FieldError on %q", err, tc.wantField)
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

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"0199a6a0-1c2b-7d3e-8f40-123456789abc", "a", "job-1"} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "A", "a_b", "a.b", strings.Repeat("a", 49)} {
		if ValidateID(bad) == nil {
			t.Errorf("ValidateID(%q) accepted", bad)
		}
	}
}

// FuzzDecodeRequest feeds the job-request decoder, the first thing every
// untrusted POST /jobs body meets: it must never panic, every error must be
// a FieldError naming a field, and every request it accepts must be valid.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{"", "null", `{"function":"sleep","args":{"seconds":"1"}}`, `{"function":5}`,
		`{"args":{"a":"b"},"schedule":"x"}`, `{"timeout":"2s","labels":{"a":"b"}}`, `{"function":"a"} {}`, `[`, `{"args":{"":""}}`, "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeRequest([]byte(body))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Detail == "" {
				t.Fatalf("error %v is not a FieldError naming a field", err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request %+v: %v", req, err)
		}
	})
}

// TestJobRequest checks that a job's record gives back every field of the
// request it was created from, which the sweep sends again.
func TestJobRequest(t *testing.T) {
	want := Request{Function: "sleep", Args: Args{"seconds": "1"}, Schedule: "s1", Timeout: Duration(time.Minute), Labels: map[string]string{"team": "data"}}
	j := Job{ID: "j1", Function: want.Function, Args: want.Args, Schedule: want.Schedule, Timeout: want.Timeout, Labels: want.Labels, Status: Running}
	if diff := cmp.Diff(want, j.Request()); diff != "" {
		t.Errorf("Request() (-want +got):\n%s", diff)
	}
}

// TestIsLabel checks the hand-written DNS-label check against the pattern
// it replaces, on the edges of each rule.
func TestIsLabel(t *testing.T) {
	pattern := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	for _, s := range []string{"a", "0", "a-b", "a--b", "sleep", "-", "-a", "a-", "A", "a_b", "a.b", "a b", "é", "",
		strings.Repeat("a", maxFunctionName), strings.Repeat("a", maxFunctionName+1)} {
		want := pattern.MatchString(s) && len(s) <= maxFunctionName
		if got := isLabel(s, maxFunctionName); got != want {
			t.Errorf("isLabel(%q) = %v, want %v", s, got, want)
		}
	}
}
