package function

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
)

func TestNames(t *testing.T) {
	want := []string{"echo", "fail", "flaky", "sample", "sleep"}
	if diff := cmp.Diff(want, Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
	for _, name := range want {
		f, ok := Lookup(name)
		if !ok || f.Name != name || f.Doc == "" {
			t.Errorf("Lookup(%q) = {Name: %q, Doc: %q}, %t; want the function, documented", name, f.Name, f.Doc, ok)
		}
	}
	if _, ok := Lookup("missing"); ok {
		t.Error(`Lookup("missing") found a function`)
	}
}

func TestRegisterPanics(t *testing.T) {
	run := func(context.Context, Env) (string, error) { return "", nil }
	check := func(job.Args) error { return nil }
	tests := []struct {
		name string
		f    Func
		want string
	}{
		{"taken name", Func{Name: "echo", Check: check, Run: run}, "echo is registered twice"},
		{"invalid name", Func{Name: "Not_A_Name", Check: check, Run: run}, `"Not_A_Name" is not a function name`},
		{"empty name", Func{Check: check, Run: run}, `"" is not a function name`},
		{"no Run", Func{Name: "no-run", Check: check}, "no-run has no Check or no Run"},
		{"no Check", Func{Name: "no-check", Run: run}, "no-check has no Check or no Run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				got, _ := recover().(string)
				if !strings.Contains(got, tt.want) {
					t.Errorf("Register panicked with %q, want it to contain %q", got, tt.want)
				}
				if _, ok := Lookup(tt.f.Name); ok && tt.f.Name != "echo" {
					t.Errorf("Register left %q registered", tt.f.Name)
				}
			}()
			Register(tt.f)
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fn      string
		args    job.Args
		wantErr string // "" for valid arguments
	}{
		{"sleep", job.Args{"seconds": "0"}, ""},
		{"sleep", job.Args{"seconds": "1.5"}, ""},
		{"sleep", job.Args{"seconds": "3600"}, ""},
		{"sleep", nil, "args.seconds: missing; want a number from 0 to 3600"},
		{"sleep", job.Args{"seconds": "-1"}, `args.seconds: got "-1", want a number from 0 to 3600`},
		{"sleep", job.Args{"seconds": "3600.5"}, `args.seconds: got "3600.5", want a number from 0 to 3600`},
		{"sleep", job.Args{"seconds": "NaN"}, `args.seconds: got "NaN", want a number from 0 to 3600`},
		{"sleep", job.Args{"seconds": "ten"}, `args.seconds: got "ten", want a number from 0 to 3600`},
		{"sleep", job.Args{"seconds": "1", "secs": "1"}, `args: unknown argument "secs"; sleep accepts seconds`},
		{"fail", nil, ""},
		{"fail", job.Args{"message": "boom"}, ""},
		{"fail", job.Args{"message": ""}, `args.message: empty; want the error message to fail with, or leave it out for "failed"`},
		{"fail", job.Args{"msg": "x", "error": "y"}, `args: unknown arguments "error", "msg"; fail accepts message`},
		{"flaky", nil, ""},
		{"flaky", job.Args{"failures": "0"}, ""},
		{"flaky", job.Args{"failures": "5"}, ""},
		{"flaky", job.Args{"failures": "-1"}, `args.failures: got "-1", want a whole number of at least 0`},
		{"flaky", job.Args{"failures": "1.5"}, `args.failures: got "1.5", want a whole number of at least 0`},
		{"flaky", job.Args{"retries": "1"}, `args: unknown argument "retries"; flaky accepts failures`},
		{"sample", nil, ""},
		{"sample", job.Args{"steps": "3", "stepSeconds": "0.1", "failureChance": "0.25"}, ""},
		{"sample", job.Args{"steps": "0"}, `args.steps: got "0", want a whole number from 1 to 1000`},
		{"sample", job.Args{"stepSeconds": "61"}, `args.stepSeconds: got "61", want a number from 0 to 60`},
		{"sample", job.Args{"failureChance": "1.1"}, `args.failureChance: got "1.1", want a number from 0 to 1`},
		{"sample", job.Args{"items": "3"}, `args: unknown argument "items"; sample accepts steps, stepSeconds, failureChance`},
		{"echo", nil, ""},
		{"echo", job.Args{"anything": "goes"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.fn+"/"+argsName(tt.args), func(t *testing.T) {
			t.Parallel()
			f, _ := Lookup(tt.fn)
			err := f.Check(tt.args)
			if got := errString(err); got != tt.wantErr {
				t.Errorf("Check(%v) = %q, want %q", tt.args, got, tt.wantErr)
			}
			var fe *job.FieldError
			if err != nil && !errors.As(err, &fe) {
				t.Errorf("Check(%v) returned %T, want a *job.FieldError", tt.args, err)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fn      string
		args    job.Args
		attempt int
		want    string
		wantErr string
	}{
		{"sleep", "sleep", job.Args{"seconds": "0.01"}, 1, "slept 10ms", ""},
		{"fail default", "fail", nil, 1, "", "failed"},
		{"fail message", "fail", job.Args{"message": "disk full"}, 1, "", "disk full"},
		{"flaky first attempt", "flaky", nil, 1, "", "attempt 1 failed on purpose (failures=1)"},
		{"flaky second attempt", "flaky", nil, 2, "attempt 2 succeeded (failures=1)", ""},
		{"flaky no failures", "flaky", job.Args{"failures": "0"}, 1, "attempt 1 succeeded (failures=0)", ""},
		{"flaky third of three", "flaky", job.Args{"failures": "3"}, 3, "", "attempt 3 failed on purpose (failures=3)"},
		{"sample", "sample", job.Args{"steps": "3", "stepSeconds": "0"}, 1, "processed 3 items", ""},
		{"sample certain failure", "sample", job.Args{"steps": "3", "stepSeconds": "0", "failureChance": "1"}, 1, "", "step 1 of 3 failed (failureChance=1)"},
		{"echo", "echo", job.Args{"b": "2", "a": "<1>"}, 1, `{"a":"<1>","b":"2"}`, ""},
		{"echo nothing", "echo", nil, 1, "{}", ""},
		{"run rechecks", "sleep", job.Args{"seconds": "-1"}, 1, "", `args.seconds: got "-1", want a number from 0 to 3600`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := Lookup(tt.fn)
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
		args job.Args
		want string
	}{
		{"sleep", job.Args{"seconds": "60"}, "interrupted after "},
		{"sample", job.Args{"stepSeconds": "60"}, "interrupted at step 1 of 10: "},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(10*time.Millisecond, func() { cancel(errors.New("terminated signal received")) })
			f, _ := Lookup(tt.fn)
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

func testEnv(attempt int, args job.Args) Env {
	return Env{JobID: "test", Attempt: attempt, Args: args, Log: slog.New(slog.DiscardHandler)}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func argsName(args job.Args) string {
	if len(args) == 0 {
		return "no args"
	}
	var parts []string
	for k, v := range args {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
