package run

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/processor/function"
)

// panics exists in this test binary only, to show that a panic is a failure
// that may be retried and not ExitInvalid.
func init() {
	function.Register(function.Func{
		Name:  "panics",
		Check: func(job.Args) error { return nil },
		Run:   func(context.Context, function.Env) (string, error) { panic("out of range") },
	})
}

// TestMainOutcomes checks the exit code, termination message and log of each
// way an attempt can end.
func TestMainOutcomes(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 3000) // 6000 bytes of 2-byte runes
	tests := []struct {
		name     string
		env      map[string]string
		wantCode int
		wantMsg  string
	}{
		{
			name:     "success",
			env:      map[string]string{EnvFunction: "echo", EnvArgs: `{"b":"2","a":"1"}`},
			wantCode: ExitSucceeded,
			wantMsg:  `{"a":"1","b":"2"}`,
		},
		{
			name:     "no args",
			env:      map[string]string{EnvFunction: "echo"},
			wantCode: ExitSucceeded,
			wantMsg:  `{}`,
		},
		{
			name:     "function failure",
			env:      map[string]string{EnvFunction: "fail", EnvArgs: `{"message":"disk full"}`},
			wantCode: ExitFailed,
			wantMsg:  "disk full",
		},
		{
			name:     "attempt reaches the function",
			env:      map[string]string{EnvFunction: "flaky", EnvAttempt: "2"},
			wantCode: ExitSucceeded,
			wantMsg:  "attempt 2 succeeded (failures=1)",
		},
		{
			name:     "attempt defaults to 1",
			env:      map[string]string{EnvFunction: "flaky"},
			wantCode: ExitFailed,
			wantMsg:  "attempt 1 failed on purpose (failures=1)",
		},
		{
			name:     "panic is a failure",
			env:      map[string]string{EnvFunction: "panics"},
			wantCode: ExitFailed,
			wantMsg:  "panic: out of range",
		},
		{
			name:     "no function",
			env:      map[string]string{},
			wantCode: ExitInvalid,
			wantMsg:  "KJOBS_FUNCTION is not set; it names the function to run",
		},
		{
			name:     "unknown function",
			env:      map[string]string{EnvFunction: "resize"},
			wantCode: ExitInvalid,
			wantMsg:  `unknown function "resize"; known functions: echo, fail, flaky, panics, sample, sleep`,
		},
		{
			name:     "malformed args",
			env:      map[string]string{EnvFunction: "echo", EnvArgs: `{"a":`},
			wantCode: ExitInvalid,
			wantMsg:  "KJOBS_ARGS is not a JSON object of string values: unexpected end of JSON input",
		},
		{
			name:     "args not strings",
			env:      map[string]string{EnvFunction: "echo", EnvArgs: `{"a":1}`},
			wantCode: ExitInvalid,
			wantMsg:  "KJOBS_ARGS is not a JSON object of string values: json: cannot unmarshal number into Go value of type string",
		},
		{
			name:     "check error",
			env:      map[string]string{EnvFunction: "sleep", EnvArgs: `{"seconds":"-1"}`},
			wantCode: ExitInvalid,
			wantMsg:  `invalid arguments for sleep: args.seconds: got "-1", want a number from 0 to 3600`,
		},
		{
			name:     "attempt zero",
			env:      map[string]string{EnvFunction: "echo", EnvAttempt: "0"},
			wantCode: ExitInvalid,
			wantMsg:  `KJOBS_ATTEMPT="0" is not an attempt number; want a whole number from 1`,
		},
		{
			name:     "attempt not a number",
			env:      map[string]string{EnvFunction: "echo", EnvAttempt: "two"},
			wantCode: ExitInvalid,
			wantMsg:  `KJOBS_ATTEMPT="two" is not an attempt number; want a whole number from 1`,
		},
		{
			name:     "long message truncated at a rune boundary",
			env:      map[string]string{EnvFunction: "echo", EnvArgs: `{"a":"` + long + `"}`},
			wantCode: ExitSucceeded,
			// 4093 bytes would split an é, so the cut is at 4092: `{"a":"` and
			// 2043 é, then the ellipsis.
			wantMsg: `{"a":"` + strings.Repeat("é", 2043) + "…",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runMain(t, context.Background(), tt.env)
			if got.code != tt.wantCode || got.message != tt.wantMsg {
				t.Errorf("Main() = %d with termination message %q, want %d with %q", got.code, got.message, tt.wantCode, tt.wantMsg)
			}
			if len(got.message) > MaxMessage || !utf8.ValidString(got.message) {
				t.Errorf("termination message is %d bytes, valid UTF-8 %t; want at most %d, valid", len(got.message), utf8.ValidString(got.message), MaxMessage)
			}
			// Every line is labelled so that the attempt's log can be found.
			for _, line := range got.logs {
				if line["jobId"] != "job-1" || line["function"] != tt.env[EnvFunction] {
					t.Errorf("log line %v lacks jobId job-1 and function %q", line, tt.env[EnvFunction])
				}
			}
			// The reason for a failure is in the log as well as in the
			// termination message.
			if tt.wantCode != ExitSucceeded && !got.logged("error", tt.wantMsg) {
				t.Errorf("no log line has error %q; log:\n%s", tt.wantMsg, got.stderr)
			}
		})
	}
}

// TestMainInterrupted checks that a function stopped by SIGTERM fails with
// the signal in its message.
func TestMainInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("terminated signal received"))
	got := runMain(t, ctx, map[string]string{EnvFunction: "sleep", EnvArgs: `{"seconds":"60"}`})
	if got.code != ExitFailed || !strings.HasPrefix(got.message, "interrupted after ") || !strings.HasSuffix(got.message, "of 1m0s: terminated signal received") {
		t.Errorf("Main() = %d with termination message %q, want %d with %q", got.code, got.message, ExitFailed, "interrupted after ... of 1m0s: terminated signal received")
	}
}

// TestMainTerminationLogUnwritable checks that a lost termination message is
// logged and leaves the exit code alone.
func TestMainTerminationLogUnwritable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "termination-log")
	var stderr bytes.Buffer
	env := map[string]string{EnvFunction: "echo", EnvJobID: "job-1", EnvTerminationLog: path}
	code := Main(context.Background(), func(k string) string { return env[k] }, &stderr)
	if code != ExitSucceeded {
		t.Errorf("Main() = %d, want %d", code, ExitSucceeded)
	}
	if !strings.Contains(stderr.String(), `"msg":"writing the termination message"`) || !strings.Contains(stderr.String(), path) {
		t.Errorf("log does not report the lost termination message at %s:\n%s", path, &stderr)
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		s     string
		limit int
		want  string
	}{
		{"short", "abc", 8, "abc"},
		{"exact", "abcdefgh", 8, "abcdefgh"},
		{"ascii", "abcdefghi", 8, "abcde…"},
		{"inside a rune", "aé€xyzuvw", 8, "aé…"}, // € would end at byte 6, past 8-3
		{"invalid UTF-8 replaced", "a\xffb", 8, "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := truncate(tt.s, tt.limit); got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.s, tt.limit, got, tt.want)
			}
		})
	}
}

type result struct {
	code    int
	message string
	stderr  string
	logs    []map[string]any
}

// logged reports whether a log line has key set to value.
func (r result) logged(key, value string) bool {
	for _, line := range r.logs {
		if line[key] == value {
			return true
		}
	}
	return false
}

// runMain runs Main with env as the environment, job ID job-1 and a
// termination log of the test's own.
func runMain(t *testing.T, ctx context.Context, env map[string]string) result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "termination-log")
	full := map[string]string{EnvJobID: "job-1", EnvTerminationLog: path}
	for k, v := range env {
		full[k] = v
	}
	var stderr bytes.Buffer
	code := Main(ctx, func(k string) string { return full[k] }, &stderr)
	msg, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the termination message: %v", err)
	}
	r := result{code: code, message: string(msg), stderr: stderr.String()}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		r.logs = append(r.logs, m)
	}
	return r
}
