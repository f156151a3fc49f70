package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinary builds the real processor and runs it as a runner would.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "processor")
	// go test puts its own go first in PATH; GOFLAGS and CGO_ENABLED pass
	// through, so the build shares the test's cache.
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	tests := []struct {
		name     string
		function string
		args     string
		wantCode int
		wantMsg  string
	}{
		{"success", "echo", `{"x":1,"y":["z"]}`, 0, `{"x":1,"y":["z"]}`},
		{"failure", "fail", `{"message":"boom"}`, 1, "boom"},
		{"unknown function", "resize", `{}`, 2, `unknown function "resize"; this image has: echo, fail, flaky, sample, sleep`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd, termLog := command(t, bin, tt.function, tt.args)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if got := exitCode(t, err); got != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", got, tt.wantCode, &stderr)
			}
			if got := readFile(t, termLog); got != tt.wantMsg {
				t.Errorf("termination message %q, want %q", got, tt.wantMsg)
			}
			if !strings.Contains(stderr.String(), `"jobId":"job-1","attempt":1,"function":"`+tt.function+`"`) {
				t.Errorf("stderr is not the labelled JSON log:\n%s", &stderr)
			}
		})
	}

	// A Job's deadline and the local runner send SIGTERM: the function stops
	// early and the attempt fails with the signal in its message.
	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		cmd, termLog := command(t, bin, "sleep", `{"seconds":"60"}`)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the function has started, the signal handler is installed.
		lines := bufio.NewScanner(stderr)
		for lines.Scan() && !strings.Contains(lines.Text(), `"msg":"starting function"`) {
		}
		start := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Read stderr to its end, as Wait requires of a pipe.
		for lines.Scan() {
		}
		if got := exitCode(t, cmd.Wait()); got != 1 {
			t.Errorf("exit code %d, want 1", got)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("exited %s after SIGTERM", d)
		}
		if got := readFile(t, termLog); !strings.HasSuffix(got, "of 1m0s: terminated signal received") {
			t.Errorf("termination message %q, want the sleep interrupted by the signal", got)
		}
	})
}

// command returns the processor run with the contract's environment and
// nothing else, and the path of its termination log.
func command(t *testing.T, bin, function, args string) (*exec.Cmd, string) {
	termLog := filepath.Join(t.TempDir(), "termination-log")
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"KJOBS_FUNCTION=" + function,
		"KJOBS_ARGS=" + args,
		"KJOBS_JOB_ID=job-1",
		"KJOBS_ATTEMPT=1",
		"KJOBS_TERMINATION_LOG=" + termLog,
	}
	return cmd, termLog
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("running the processor: %v", err)
	return -1
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the termination message: %v", err)
	}
	return string(b)
}
