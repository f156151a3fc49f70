package function

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"time"
)

// testFuncs are the functions of the tests' image: echo returns its args,
// fail fails with args.message, attempt reports its attempt, panics panics
// (a failure that may be retried, not ExitInvalid), positive's Check wants
// args.n > 0, wait waits for its context and event reports the event's
// type and data.
var testFuncs = []Func{
	{Name: "echo", Run: func(_ context.Context, env Env) (string, error) {
		b, err := json.Marshal(env.Args)
		return string(b), err
	}},
	{Name: "fail", Run: func(_ context.Context, env Env) (string, error) {
		return "", fmt.Errorf("%v", env.Args["message"])
	}},
	{Name: "attempt", Run: func(_ context.Context, env Env) (string, error) {
		return fmt.Sprintf("attempt %d", env.Attempt), nil
	}},
	{Name: "panics", Run: func(context.Context, Env) (string, error) { panic("out of range") }},
	{Name: "positive", Check: func(a Args) error {
		if n, _ := a["n"].(json.Number).Int64(); n <= 0 {
			return fmt.Errorf("args.n: got %v, want a whole number above 0", a["n"])
		}
		return nil
	}, Run: func(context.Context, Env) (string, error) { return "ok", nil }},
	{Name: "wait", Run: func(ctx context.Context, _ Env) (string, error) {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("interrupted: %w", context.Cause(ctx))
		case <-time.After(time.Minute):
			return "waited", nil
		}
	}},
	{Name: "event", Run: func(_ context.Context, env Env) (string, error) {
		if env.Event == nil {
			return "no event", nil
		}
		return env.Event.Type() + " " + string(env.Event.Data()), nil
	}},
}

// TestRunEvent checks how the triggering event reaches the function: from
// KJOBS_EVENT, or from the file KJOBS_EVENT_FILE names, and that a
// malformed one is a request that can never succeed.
func TestRunEvent(t *testing.T) {
	t.Parallel()
	const upload = `{"specversion":"1.0","type":"com.amazonaws.s3.object-created","source":"arn:aws:s3:::photos",` +
		`"id":"3f1c/2026-12-01T10:00:00Z#17","datacontenttype":"application/json","data":{"key":"cat.png"}}`
	file := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(file, []byte(upload), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		wantCode int
		wantMsg  string
	}{
		{"no event", map[string]string{}, ExitSucceeded, "no event"},
		{"inline", map[string]string{EnvEvent: upload}, ExitSucceeded, `com.amazonaws.s3.object-created {"key":"cat.png"}`},
		{"file", map[string]string{EnvEventFile: file}, ExitSucceeded, `com.amazonaws.s3.object-created {"key":"cat.png"}`},
		{"base64 data", map[string]string{EnvEvent: `{"specversion":"1.0","type":"t","source":"s","id":"1","data_base64":"aGk="}`}, ExitSucceeded, "t hi"},
		{"both", map[string]string{EnvEvent: upload, EnvEventFile: file}, ExitInvalid, "both KJOBS_EVENT and KJOBS_EVENT_FILE are set; a runner sets one"},
		{"malformed JSON", map[string]string{EnvEvent: `{"specversion":`}, ExitInvalid, "KJOBS_EVENT is not a CloudEvent in JSON format: unexpected end of JSON input"},
		{"no id", map[string]string{EnvEvent: `{"specversion":"1.0","type":"t","source":"s"}`}, ExitInvalid, "KJOBS_EVENT is not a valid CloudEvent: id: MUST be a non-empty string\n"},
		{"missing file", map[string]string{EnvEventFile: file + ".missing"}, ExitInvalid, "KJOBS_EVENT_FILE: open " + file + ".missing: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{EnvFunction: "event"}
			for k, v := range tt.env {
				env[k] = v
			}
			got := runMain(t, context.Background(), env)
			if got.code != tt.wantCode || got.message != tt.wantMsg {
				t.Errorf("Run() = %d with termination message %q, want %d with %q", got.code, got.message, tt.wantCode, tt.wantMsg)
			}
		})
	}
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
			env:      map[string]string{EnvFunction: "echo", EnvArgs: `{"b":{"c":[true,null]},"a":12345678901234567890}`},
			wantCode: ExitSucceeded,
			wantMsg:  `{"a":12345678901234567890,"b":{"c":[true,null]}}`,
		},
		{
			name:     "no args",
			env:      map[string]string{EnvFunction: "echo"},
			wantCode: ExitSucceeded,
			wantMsg:  `null`,
		},
		{
			name:     "function failure",
			env:      map[string]string{EnvFunction: "fail", EnvArgs: `{"message":"disk full"}`},
			wantCode: ExitFailed,
			wantMsg:  "disk full",
		},
		{
			name:     "attempt reaches the function",
			env:      map[string]string{EnvFunction: "attempt", EnvAttempt: "2"},
			wantCode: ExitSucceeded,
			wantMsg:  "attempt 2",
		},
		{
			name:     "attempt defaults to 1",
			env:      map[string]string{EnvFunction: "attempt"},
			wantCode: ExitSucceeded,
			wantMsg:  "attempt 1",
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
			wantMsg:  `unknown function "resize"; this image has: attempt, echo, event, fail, panics, positive, wait`,
		},
		{
			name:     "malformed args",
			env:      map[string]string{EnvFunction: "echo", EnvArgs: `{"a":`},
			wantCode: ExitInvalid,
			wantMsg:  "KJOBS_ARGS is not a JSON object: unexpected EOF",
		},
		{
			name:     "args not an object",
			env:      map[string]string{EnvFunction: "echo", EnvArgs: `["a"]`},
			wantCode: ExitInvalid,
			wantMsg:  "KJOBS_ARGS is not a JSON object: json: cannot unmarshal array into Go value of type function.Args",
		},
		{
			name:     "check error",
			env:      map[string]string{EnvFunction: "positive", EnvArgs: `{"n":-1}`},
			wantCode: ExitInvalid,
			wantMsg:  `invalid arguments for positive: args.n: got -1, want a whole number above 0`,
		},
		{
			name:     "check passed",
			env:      map[string]string{EnvFunction: "positive", EnvArgs: `{"n":1}`},
			wantCode: ExitSucceeded,
			wantMsg:  "ok",
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
				t.Errorf("Run() = %d with termination message %q, want %d with %q", got.code, got.message, tt.wantCode, tt.wantMsg)
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
	got := runMain(t, ctx, map[string]string{EnvFunction: "wait"})
	if want := "interrupted: terminated signal received"; got.code != ExitFailed || got.message != want {
		t.Errorf("Run() = %d with termination message %q, want %d with %q", got.code, got.message, ExitFailed, want)
	}
}

// TestMainTerminationLogUnwritable checks that a lost termination message is
// logged and leaves the exit code alone.
func TestMainTerminationLogUnwritable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "termination-log")
	var stderr bytes.Buffer
	env := map[string]string{EnvFunction: "echo", EnvJobID: "job-1", EnvTerminationLog: path}
	code := Run(context.Background(), func(k string) string { return env[k] }, &stderr, testFuncs...)
	if code != ExitSucceeded {
		t.Errorf("Run() = %d, want %d", code, ExitSucceeded)
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

// runMain runs Run over testFuncs with env as the environment, job ID job-1 and a
// termination log of the test's own.
func runMain(t *testing.T, ctx context.Context, env map[string]string) result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "termination-log")
	full := map[string]string{EnvJobID: "job-1", EnvTerminationLog: path}
	for k, v := range env {
		full[k] = v
	}
	var stderr bytes.Buffer
	code := Run(ctx, func(k string) string { return full[k] }, &stderr, testFuncs...)
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
