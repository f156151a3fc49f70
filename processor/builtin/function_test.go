package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/processor/function"
)

func TestFuncs(t *testing.T) {
	want := []string{"echo", "fail", "flaky", "sample", "sleep"}
	var got []string
	for _, f := range Funcs() {
		got = append(got, f.Name)
		if f.Doc == "" || f.Schema == "" || f.Run == nil {
			t.Errorf("%s has no Doc, Schema or Run", f.Name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Funcs() names mismatch (-want +got):\n%s", diff)
	}
	if _, ok := lookup("missing"); ok {
		t.Error(`lookup("missing") found a function`)
	}
}

// TestCheck checks each function's Check, and that its declared schema,
// which the API applies, accepts and refuses the same args.
func TestCheck(t *testing.T) {
	t.Parallel()
	declared := catalog.New(false)
	tests := []struct {
		fn      string
		args    string
		wantErr string // "" for valid arguments
	}{
		{"sleep", `{"seconds": 0}`, ""},
		{"sleep", `{"seconds": 1.5}`, ""},
		{"sleep", `{"seconds": "1.5"}`, ""},
		{"sleep", `{"seconds": "3600"}`, ""},
		{"sleep", `{"seconds": 3600}`, ""},
		{"sleep", `{"seconds": "999.25"}`, ""},
		{"sleep", `{"seconds": "2999"}`, ""},
		{"sleep", `{}`, "args.seconds: missing; want a number from 0 to 3600"},
		{"sleep", `{"seconds": -1}`, `args.seconds: got -1, want a number from 0 to 3600`},
		{"sleep", `{"seconds": "-1"}`, `args.seconds: got "-1", want a number from 0 to 3600`},
		{"sleep", `{"seconds": "3600.5"}`, `args.seconds: got "3600.5", want a number from 0 to 3600`},
		{"sleep", `{"seconds": 3600.5}`, `args.seconds: got 3600.5, want a number from 0 to 3600`},
		{"sleep", `{"seconds": "3601"}`, `args.seconds: got "3601", want a number from 0 to 3600`},
		{"sleep", `{"seconds": "NaN"}`, `args.seconds: got "NaN", want a number from 0 to 3600`},
		{"sleep", `{"seconds": "ten"}`, `args.seconds: got "ten", want a number from 0 to 3600`},
		{"sleep", `{"seconds": true}`, `args.seconds: got true, want a number from 0 to 3600`},
		{"sleep", `{"seconds": 1, "secs": 1}`, `args: unknown argument "secs"; sleep accepts seconds`},
		{"fail", `{}`, ""},
		{"fail", `{"message": "boom"}`, ""},
		{"fail", `{"message": ""}`, `args.message: got ""; want the error message to fail with, or leave it out for "failed"`},
		{"fail", `{"message": 1}`, `args.message: got 1; want the error message to fail with, or leave it out for "failed"`},
		{"fail", `{"msg": "x", "error": "y"}`, `args: unknown arguments "error", "msg"; fail accepts message`},
		{"flaky", `{}`, ""},
		{"flaky", `{"failures": 0}`, ""},
		{"flaky", `{"failures": "5"}`, ""},
		{"flaky", `{"failures": -1}`, `args.failures: got -1, want a whole number of at least 0`},
		{"flaky", `{"failures": "-1"}`, `args.failures: got "-1", want a whole number of at least 0`},
		{"flaky", `{"failures": 1.5}`, `args.failures: got 1.5, want a whole number of at least 0`},
		{"flaky", `{"retries": 1}`, `args: unknown argument "retries"; flaky accepts failures`},
		{"sample", `{}`, ""},
		{"sample", `{"steps": 3, "stepSeconds": 0.1, "failureChance": 0.25}`, ""},
		{"sample", `{"steps": "1000", "stepSeconds": "60", "failureChance": "1"}`, ""},
		{"sample", `{"steps": "3", "stepSeconds": "59.5", "failureChance": "0.25"}`, ""},
		{"sample", `{"steps": 0}`, `args.steps: got 0, want a whole number from 1 to 1000`},
		{"sample", `{"steps": "1001"}`, `args.steps: got "1001", want a whole number from 1 to 1000`},
		{"sample", `{"stepSeconds": 61}`, `args.stepSeconds: got 61, want a number from 0 to 60`},
		{"sample", `{"stepSeconds": "60.5"}`, `args.stepSeconds: got "60.5", want a number from 0 to 60`},
		{"sample", `{"failureChance": "1.1"}`, `args.failureChance: got "1.1", want a number from 0 to 1`},
		{"sample", `{"items": 3}`, `args: unknown argument "items"; sample accepts steps, stepSeconds, failureChance`},
		{"echo", `{}`, ""},
		{"echo", `{"anything": {"goes": [1, null]}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.fn+"/"+tt.args, func(t *testing.T) {
			t.Parallel()
			args := decode(t, tt.args)
			f, _ := lookup(tt.fn)
			var err error
			if f.Check != nil {
				err = f.Check(args)
			}
			if got := errString(err); got != tt.wantErr {
				t.Errorf("Check(%s) = %q, want %q", tt.args, got, tt.wantErr)
			}
			serr := declared.Check(tt.fn, args)
			if (serr == nil) != (tt.wantErr == "") {
				t.Errorf("the declared schema says %v of %s, Check says %q: they must agree", serr, tt.args, tt.wantErr)
			}
		})
	}
}

// TestDeclarationsGenerated fails when internal/catalog/builtin.yaml is not
// what go generate ./processor/builtin writes from the schemas here.
func TestDeclarationsGenerated(t *testing.T) {
	want, err := Declarations()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../internal/catalog/builtin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("internal/catalog/builtin.yaml is stale; run go generate ./processor/builtin (-want +got):\n%s", diff)
	}
}

// lookup returns the built-in function called name.
func lookup(name string) (function.Func, bool) {
	fs := Funcs()
	i := slices.IndexFunc(fs, func(f function.Func) bool { return f.Name == name })
	if i < 0 {
		return function.Func{}, false
	}
	return fs[i], true
}

func decode(t *testing.T, s string) function.Args {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var args function.Args
	if err := dec.Decode(&args); err != nil {
		t.Fatal(err)
	}
	return args
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fn      string
		args    function.Args
		attempt int
		want    string
		wantErr string
	}{
		{"sleep", "sleep", function.Args{"seconds": json.Number("0.01")}, 1, "slept 10ms", ""},
		{"sleep string", "sleep", function.Args{"seconds": "0.01"}, 1, "slept 10ms", ""},
		{"fail default", "fail", nil, 1, "", "failed"},
		{"fail message", "fail", function.Args{"message": "disk full"}, 1, "", "disk full"},
		{"flaky first attempt", "flaky", nil, 1, "", "attempt 1 failed on purpose (failures=1)"},
		{"flaky second attempt", "flaky", nil, 2, "attempt 2 succeeded (failures=1)", ""},
		{"flaky no failures", "flaky", function.Args{"failures": "0"}, 1, "attempt 1 succeeded (failures=0)", ""},
		{"flaky third of three", "flaky", function.Args{"failures": "3"}, 3, "", "attempt 3 failed on purpose (failures=3)"},
		{"sample", "sample", function.Args{"steps": "3", "stepSeconds": "0"}, 1, "processed 3 items", ""},
		{"sample certain failure", "sample", function.Args{"steps": "3", "stepSeconds": "0", "failureChance": "1"}, 1, "", "step 1 of 3 failed (failureChance=1)"},
		{"echo", "echo", function.Args{"b": json.Number("2"), "a": "<1>", "c": []any{true}}, 1, `{"a":"<1>","b":2,"c":[true]}`, ""},
		{"echo nothing", "echo", nil, 1, "{}", ""},
		{"run rechecks", "sleep", function.Args{"seconds": "-1"}, 1, "", `args.seconds: got "-1", want a number from 0 to 3600`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := lookup(tt.fn)
			got, err := f.Run(context.Background(), testEnv(tt.attempt, tt.args))
			if got != tt.want || errString(err) != tt.wantErr {
				t.Errorf("Run() = %q, %q; want %q, %q", got, errString(err), tt.want, tt.wantErr)
			}
		})
	}
}

// TestRunInterrupted checks that the long-running functions stop when their
// context ends and say why, as they must when the processor gets SIGTERM.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fn   string
		args function.Args
		want string
	}{
		{"sleep", function.Args{"seconds": "60"}, "interrupted after "},
		{"sample", function.Args{"stepSeconds": "60"}, "interrupted at step 1 of 10: "},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(10*time.Millisecond, func() { cancel(errors.New("terminated signal received")) })
			f, _ := lookup(tt.fn)
			start := time.Now()
			got, err := f.Run(ctx, testEnv(1, tt.args))
			if got != "" || !strings.HasPrefix(errString(err), tt.want) || !strings.HasSuffix(errString(err), ": terminated signal received") {
				t.Errorf("Run() = %q, %q; want an error %q... ending with the cause", got, errString(err), tt.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Run took %s to notice its context ended", d)
			}
		})
	}
}

func testEnv(attempt int, args function.Args) function.Env {
	return function.Env{JobID: "test", Attempt: attempt, Args: args, Log: slog.New(slog.DiscardHandler)}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestEchoEvent checks that echo shows what a bound job's function is
// given: its args and the whole event.
func TestEchoEvent(t *testing.T) {
	t.Parallel()
	e := cloudevents.NewEvent()
	e.SetID("3f1c/2026-12-01T10:00:00Z#17")
	e.SetSource("arn:aws:s3:::photos")
	e.SetType("com.amazonaws.s3.object-created")
	if err := e.SetData(cloudevents.ApplicationJSON, map[string]string{"key": "cat.png"}); err != nil {
		t.Fatal(err)
	}
	env := testEnv(1, function.Args{"size": json.Number("64")})
	env.Event = &e
	f, _ := lookup("echo")
	got, err := f.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"args":{"size":64},"event":{"specversion":"1.0","id":"3f1c/2026-12-01T10:00:00Z#17","source":"arn:aws:s3:::photos","type":"com.amazonaws.s3.object-created","datacontenttype":"application/json","data":{"key":"cat.png"}}}`
	if got != want {
		t.Errorf("Run() = %s\nwant %s", got, want)
	}
}
