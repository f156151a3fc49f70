package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// processor is the real processor binary, built once by TestMain.
var processor string

func TestMain(m *testing.M) {
	testenv.Main(m, map[*string]string{&processor: "github.com/kjobs/kjobs/processor"})
}

// TestOutcomes runs one attempt to its end for each way an attempt ends.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		function string
		args     job.Args
		deadline time.Duration
		timeout  time.Duration
		want     job.Attempt // StartedAt and FinishedAt are checked apart
		// wantSuffix, when set, is checked instead of want.Message, for
		// messages that hold a duration.
		wantSuffix string
	}{
		{
			name:     "success",
			function: "echo",
			args:     job.Args{"b": "2", "a": "1"},
			want:     job.Attempt{Outcome: job.OutcomeSucceeded, ExitCode: ptr(0), Message: `{"a":"1","b":"2"}`},
		},
		{
			name:     "failure",
			function: "fail",
			args:     job.Args{"message": "disk full"},
			want:     job.Attempt{Outcome: job.OutcomeFailed, ExitCode: ptr(1), Message: "disk full", Reason: ReasonError},
		},
		{
			name:     "request that can never succeed",
			function: "resize",
			want:     job.Attempt{Outcome: job.OutcomeFailed, ExitCode: ptr(2), Message: `unknown function "resize"; this image has: echo, fail, flaky, sample, sleep`, Reason: ReasonError},
		},
		{
			name:     "deadline exceeded",
			function: "sleep",
			args:     job.Args{"seconds": "60"},
			deadline: 2 * time.Second,
			// SIGTERM reached the processor, which said so before exiting.
			want:       job.Attempt{Outcome: job.OutcomeFailed, ExitCode: ptr(1), Reason: ReasonDeadlineExceeded},
			wantSuffix: "of 1m0s: terminated signal received",
		},
		{
			name:     "the job's timeout, shorter than the deadline",
			function: "sleep",
			args:     job.Args{"seconds": "60"},
			timeout:  time.Second,
			// SIGTERM reached the processor, which said so before exiting.
			want:       job.Attempt{Outcome: job.OutcomeFailed, ExitCode: ptr(1), Reason: ReasonDeadlineExceeded},
			wantSuffix: "of 1m0s: terminated signal received",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := setup(t, Config{Processor: processor, Deadline: tt.deadline})
			id := jobID(t)
			spec := runner.Spec{JobID: id, Attempt: 1, Function: tt.function, Args: tt.args, Timeout: tt.timeout}
			started, err := r.Start(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, r, id, 1)

			// The deadline timer starts with the process, a moment before
			// StartedAt is read: allow that moment.
			least := max(tt.deadline, tt.timeout)
			if got.FinishedAt == nil || got.FinishedAt.Sub(got.StartedAt) < least-100*time.Millisecond {
				t.Errorf("Wait() ran from %v to %v, want at least the deadline %v", got.StartedAt, got.FinishedAt, least)
			}
			if tt.timeout > 0 && got.FinishedAt.Sub(got.StartedAt) > 10*tt.timeout {
				t.Errorf("Wait() ran from %v to %v, want about the timeout %v", got.StartedAt, got.FinishedAt, tt.timeout)
			}
			tt.want.Attempt = 1
			tt.want.Job = runner.Name(id, 1)
			tt.want.StartedAt = started.StartedAt
			tt.want.FinishedAt = got.FinishedAt
			if tt.wantSuffix != "" && strings.HasSuffix(got.Message, tt.wantSuffix) {
				tt.want.Message = got.Message
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Wait() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeclaredBinary checks that a declared function with a local binary
// runs that binary, with the same environment as the processor, and that
// the built-in functions still run in the processor.
func TestDeclaredBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "resize")
	script := "#!/bin/sh\nprintf '%s %s %s' \"$KJOBS_FUNCTION\" \"$KJOBS_ARGS\" \"$KJOBS_ATTEMPT\" > \"$KJOBS_TERMINATION_LOG\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	functions := catalog.New(true)
	if err := functions.Set(map[string]string{"resize": "image: ghcr.io/team/resize:1\nlocal: " + bin}); err != nil {
		t.Fatal(err)
	}
	r := setup(t, Config{Processor: processor, Functions: functions})
	for _, tt := range []struct {
		function string
		args     job.Args
		want     string
	}{
		{"resize", job.Args{"width": json.Number("300"), "tags": []any{"a"}}, `resize {"tags":["a"],"width":300} 1`},
		{"echo", job.Args{"width": json.Number("300")}, `{"width":300}`},
	} {
		id := jobID(t)
		if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1, Function: tt.function, Args: tt.args}); err != nil {
			t.Fatal(err)
		}
		if got := wait(t, r, id, 1); got.Outcome != job.OutcomeSucceeded || got.Message != tt.want {
			t.Errorf("%s: Wait() = %+v, want succeeded with message %q", tt.function, got, tt.want)
		}
	}
}

// TestStartOutlivesContext checks that an attempt keeps running when the
// request that started it ends, so that a redelivery can adopt it.
func TestStartOutlivesContext(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: processor})
	id := jobID(t)
	ctx, cancel := context.WithCancel(context.Background())
	started, err := r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "sleep", Args: job.Args{"seconds": "0.5"}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if started.Outcome != job.OutcomeRunning || started.FinishedAt != nil {
		t.Errorf("Start() = %+v, want a running attempt", started)
	}
	if got := wait(t, r, id, 1); got.Outcome != job.OutcomeSucceeded || got.Message != "slept 500ms" {
		t.Errorf("Wait() = %+v, want succeeded with message %q", got, "slept 500ms")
	}
	// Adopting a finished attempt returns its outcome and starts nothing.
	again, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1, Function: "sleep", Args: job.Args{"seconds": "0.5"}})
	if err != nil || again.Outcome != job.OutcomeSucceeded || !again.StartedAt.Equal(started.StartedAt) {
		t.Errorf("Start() again = %+v, %v; want the finished attempt", again, err)
	}
}

// TestConcurrentStart checks that concurrent deliveries of one attempt
// start one process and all adopt it.
func TestConcurrentStart(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: processor})
	id := jobID(t)
	spec := runner.Spec{JobID: id, Attempt: 1, Function: "sleep", Args: job.Args{"seconds": "60"}}

	const calls = 20
	got := make([]job.Attempt, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			var err error
			if got[i], err = r.Start(context.Background(), spec); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, a := range got {
		if diff := cmp.Diff(got[0], a); diff != "" {
			t.Errorf("Start() call %d returned another attempt (-first +this):\n%s", i, diff)
		}
	}
	if list, _ := r.Attempts(context.Background(), id); len(list) != 1 {
		t.Errorf("Attempts() = %d attempts, want 1", len(list))
	}
	if pids := children(t, id); len(pids) != 1 {
		t.Errorf("%d processes run attempt 1 (pids %v), want 1", len(pids), pids)
	}
}

// TestEnvironment checks that a child gets the contract's environment plus
// PATH and HOME, and none of the parent's other variables.
func TestEnvironment(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://:secret@redis:6379")
	t.Setenv("HOME", t.TempDir())
	r := setup(t, Config{Processor: processor})
	id := jobID(t)
	if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 3, Function: "sleep", Args: job.Args{"seconds": "60"}}); err != nil {
		t.Fatal(err)
	}
	pids := children(t, id)
	if len(pids) != 1 {
		t.Fatalf("%d processes run the attempt, want 1", len(pids))
	}
	env := environ(t, pids[0])
	termLog := env["KJOBS_TERMINATION_LOG"]
	want := map[string]string{
		"KJOBS_FUNCTION":        "sleep",
		"KJOBS_ARGS":            `{"seconds":"60"}`,
		"KJOBS_JOB_ID":          id,
		"KJOBS_ATTEMPT":         "3",
		"KJOBS_TERMINATION_LOG": termLog,
		"PATH":                  os.Getenv("PATH"),
		"HOME":                  os.Getenv("HOME"),
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("child environment mismatch (-want +got):\n%s", diff)
	}
	if filepath.Dir(termLog) != r.cfg.Dir {
		t.Errorf("termination log %s is not in Config.Dir %s", termLog, r.cfg.Dir)
	}
}

// TestClose checks that Close stops running children and that the runner
// starts nothing after it.
func TestClose(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: processor})
	id := jobID(t)
	spec := runner.Spec{JobID: id, Attempt: 1, Function: "sleep", Args: job.Args{"seconds": "60"}}
	if _, err := r.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if pids := children(t, id); len(pids) != 0 {
		t.Errorf("processes %v still run after Close", pids)
	}
	got := wait(t, r, id, 1)
	if got.Outcome != job.OutcomeFailed || got.Reason != ReasonError || got.Message == "" {
		t.Errorf("Wait() after Close = %+v, want failed with reason %s and a message", got, ReasonError)
	}
	spec.Attempt = 2
	if _, err := r.Start(context.Background(), spec); !errors.Is(err, errClosed) {
		t.Errorf("Start() after Close = %v, want %v", err, errClosed)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: processor})
	id := jobID(t)

	if _, err := r.Wait(context.Background(), id, 1); !errors.Is(err, runner.ErrNotFound) {
		t.Errorf("Wait() for an attempt never started = %v, want %v", err, runner.ErrNotFound)
	}

	if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1, Function: "sleep", Args: job.Args{"seconds": "60"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	got, err := r.Wait(ctx, id, 1)
	if !errors.Is(err, context.DeadlineExceeded) || got.Outcome != job.OutcomeRunning {
		t.Errorf("Wait() with a short context = %+v, %v; want the running attempt and %v", got, err, context.DeadlineExceeded)
	}
}

func TestAttempts(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: processor})
	id := jobID(t)
	for _, n := range []int{3, 1, 2} {
		if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: n, Function: "flaky", Args: job.Args{"failures": "2"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Start(context.Background(), runner.Spec{JobID: id + "-other", Attempt: 1, Function: "echo"}); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		wait(t, r, id, n)
	}
	wait(t, r, id+"-other", 1)

	list, err := r.Attempts(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Attempt int
		Job     string
		Outcome job.Outcome
		Message string
	}
	want := []summary{
		{1, runner.Name(id, 1), job.OutcomeFailed, "attempt 1 failed on purpose (failures=2)"},
		{2, runner.Name(id, 2), job.OutcomeFailed, "attempt 2 failed on purpose (failures=2)"},
		{3, runner.Name(id, 3), job.OutcomeSucceeded, "attempt 3 succeeded (failures=2)"},
	}
	var got []summary
	for _, a := range list {
		got = append(got, summary{a.Attempt, a.Job, a.Outcome, a.Message})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Attempts() mismatch (-want +got):\n%s", diff)
	}
	if list, _ := r.Attempts(context.Background(), "unknown"); len(list) != 0 {
		t.Errorf("Attempts() of an unknown job = %+v, want none", list)
	}
}

func TestStartInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		spec runner.Spec
		want string
	}{
		{"no job ID", Config{Processor: processor}, runner.Spec{Attempt: 1, Function: "echo"}, `local.Start: id: "" is not a job ID: use at most 48 lower-case letters, digits and '-', such as a UUID`},
		{"job ID not a name", Config{Processor: processor}, runner.Spec{JobID: "../J", Attempt: 1, Function: "echo"}, `local.Start: id: "../J" is not a job ID: use at most 48 lower-case letters, digits and '-', such as a UUID`},
		{"attempt 0", Config{Processor: processor}, runner.Spec{JobID: "j", Function: "echo"}, "local.Start: attempt 0 of job j: attempt numbers start at 1"},
		{"no processor", Config{}, runner.Spec{JobID: "j", Attempt: 1, Function: "echo"}, "local.Start: kjobs-j-1: Config.Processor is empty; set it to the processor binary's path"},
		{"missing processor", Config{Processor: "/nonexistent/processor"}, runner.Spec{JobID: "j", Attempt: 1, Function: "echo"}, "local.Start: kjobs-j-1: fork/exec /nonexistent/processor: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := setup(t, tt.cfg)
			_, err := r.Start(context.Background(), tt.spec)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Start() = %v, want %q", err, tt.want)
			}
			// A failed start leaves nothing behind to adopt.
			if list, _ := r.Attempts(context.Background(), tt.spec.JobID); len(list) != 0 {
				t.Errorf("Attempts() = %+v after a failed Start, want none", list)
			}
		})
	}
}

// TestProcessGroup uses shell scripts as the processor to check what a
// child's own children get: they are stopped with it, at the deadline and
// when it exits, as a pod's processes are. Each script writes its
// background sleep's pid as its termination message.
func TestProcessGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		script   string
		deadline time.Duration
		want     job.Outcome
		reason   string
	}{
		{"deadline", `sleep 300 & echo $! > "$KJOBS_TERMINATION_LOG"; wait`, time.Second, job.OutcomeFailed, ReasonDeadlineExceeded},
		{"exit", `sleep 300 & echo $! > "$KJOBS_TERMINATION_LOG"; exit 0`, 0, job.OutcomeSucceeded, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := setup(t, Config{Processor: script(t, tt.script), Deadline: tt.deadline})
			id := jobID(t)
			if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			got := wait(t, r, id, 1)
			if got.Outcome != tt.want || got.Reason != tt.reason {
				t.Errorf("Wait() = %+v, want outcome %s, reason %q", got, tt.want, tt.reason)
			}
			pid, err := strconv.Atoi(got.Message)
			if err != nil {
				t.Fatalf("termination message %q is not the background sleep's pid", got.Message)
			}
			waitFor(t, func() bool { return !alive(pid) })
		})
	}
}

// TestMessageFallback checks the message of a child that wrote no
// termination message: on failure the end of its stderr, else how it ended;
// on success none.
func TestMessageFallback(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name     string
		script   string
		deadline time.Duration
		want     job.Attempt
	}{
		{
			name:   "stderr tail",
			script: `echo "` + long + `" >&2; echo "panic: out of memory" >&2; exit 3`,
			want:   job.Attempt{Outcome: job.OutcomeFailed, ExitCode: ptr(3), Reason: ReasonError, Message: long[:4096-len("\npanic: out of memory\n")] + "\npanic: out of memory"},
		},
		{
			name:   "success without a message",
			script: `echo "some log line" >&2`,
			want:   job.Attempt{Outcome: job.OutcomeSucceeded, ExitCode: ptr(0)},
		},
		{
			name:   "killed",
			script: `kill -KILL $$`,
			want:   job.Attempt{Outcome: job.OutcomeFailed, ExitCode: ptr(137), Reason: ReasonError, Message: "signal: killed"},
		},
		{
			name:     "deadline without a message",
			script:   `exec sleep 300`,
			deadline: 500 * time.Millisecond,
			want:     job.Attempt{Outcome: job.OutcomeFailed, ExitCode: ptr(143), Reason: ReasonDeadlineExceeded, Message: "stopped after its deadline of 500ms: signal: terminated"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := setup(t, Config{Processor: script(t, tt.script), Deadline: tt.deadline})
			id := jobID(t)
			if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			got := wait(t, r, id, 1)
			tt.want.Attempt, tt.want.Job = 1, runner.Name(id, 1)
			tt.want.StartedAt, tt.want.FinishedAt = got.StartedAt, got.FinishedAt
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Wait() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// setup returns a Runner for cfg whose Dir is the test's own; when the test
// ends it closes the runner and checks that no file was left in Dir.
func setup(t *testing.T, cfg Config) *Runner {
	t.Helper()
	cfg.Dir = t.TempDir()
	r := New(cfg)
	t.Cleanup(func() {
		r.Close()
		if left, _ := os.ReadDir(cfg.Dir); len(left) != 0 {
			t.Errorf("files left in Config.Dir after the attempts ended: %v", left)
		}
	})
	return r
}

var lastID atomic.Int64

// jobID returns a valid job ID unique to the test, to find its processes
// by.
func jobID(*testing.T) string {
	return fmt.Sprintf("local-test-%d-%d", os.Getpid(), lastID.Add(1))
}

func wait(t *testing.T, r *Runner, jobID string, n int) job.Attempt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := r.Wait(ctx, jobID, n)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 30s")
		}
	}
}

// children returns the pids of the live processes whose environment has
// KJOBS_JOB_ID=jobID: the operating system's own count of an attempt's
// processes.
func children(t *testing.T, jobID string) []int {
	t.Helper()
	paths, err := filepath.Glob("/proc/[0-9]*/environ")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("\x00KJOBS_JOB_ID="+jobID+"\x00")) && !bytes.HasPrefix(b, []byte("KJOBS_JOB_ID="+jobID+"\x00")) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid is a process that has not exited: a zombie
// waiting to be reaped has.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

func environ(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// script writes body as an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "processor.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func ptr[T any](v T) *T { return &v }

// TestLogs checks what Open serves of a finished attempt: its stdout and
// stderr interleaved as written, the end of a log beyond MaxLogRead.
func TestLogs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		want   func(string) bool
	}{
		{
			name:   "stdout and stderr",
			script: `echo out 1; echo err 1 >&2; echo out 2; echo err 2 >&2; exit 1`,
			want:   func(s string) bool { return s == "out 1\nerr 1\nout 2\nerr 2\n" },
		},
		{
			name:   "beyond MaxLogRead",
			script: fmt.Sprintf(`echo first; head -c %d /dev/zero | tr '\0' x; echo; echo last`, MaxLogRead),
			want: func(s string) bool {
				return len(s) == MaxLogRead && strings.HasSuffix(s, "x\nlast\n") && !strings.Contains(s, "first")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := setup(t, Config{Processor: script(t, tt.script)})
			id := jobID(t)
			if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			wait(t, r, id, 1)
			for _, follow := range []bool{false, true} {
				if got := readLog(t, r, id, 1, follow); !tt.want(got) {
					t.Errorf("Open(follow=%t) = %q (%d bytes), not the attempt's output", follow, trim(got), len(got))
				}
			}
		})
	}
}

// TestLogsMessage checks that a failed attempt's message is still the end
// of its log, now that the log holds stdout too and outlives the attempt.
func TestLogsMessage(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: script(t, `echo progress; echo "no such bucket" >&2; exit 4`)})
	id := jobID(t)
	if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, r, id, 1); got.Message != "progress\nno such bucket" {
		t.Errorf("Wait() message = %q, want the end of the log", got.Message)
	}
	if got := readLog(t, r, id, 1, false); got != "progress\nno such bucket\n" {
		t.Errorf("Open() = %q after the message was read from it", got)
	}
}

// TestFollowLogs checks that a followed log gives each line as the child
// writes it and ends when the child exits, or when its context is done.
func TestFollowLogs(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: script(t, `echo one; sleep 1; echo two >&2; sleep 1; echo three`)})
	id := jobID(t)
	if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	log, err := r.Open(context.Background(), id, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	lines := bufio.NewReader(log)
	for _, want := range []string{"one\n", "two\n"} {
		got, err := lines.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("followed line = %q, %v; want %q", got, err, want)
		}
		// The line came while the child ran, not at its end.
		if a, _ := r.Attempts(context.Background(), id); a[0].Outcome != job.OutcomeRunning {
			t.Fatalf("line %q read only once the attempt had %s", got, a[0].Outcome)
		}
	}
	rest, err := io.ReadAll(lines)
	if err != nil || string(rest) != "three\n" {
		t.Errorf("rest of the followed log = %q, %v; want %q and its end", rest, err, "three\n")
	}
	if a, _ := r.Attempts(context.Background(), id); a[0].Outcome != job.OutcomeSucceeded {
		t.Errorf("followed log ended with the attempt %s, want it ended", a[0].Outcome)
	}

	// A follower whose context ends stops, although the child runs on.
	if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if log, err = r.Open(ctx, id, 2, true); err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if _, err := io.ReadAll(log); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("followed log past its context = %v, want %v", err, context.DeadlineExceeded)
	}
}

// TestKeepLogs checks which logs are kept: those of the last KeepLogs
// attempts and of every running one, none after Close.
func TestKeepLogs(t *testing.T) {
	t.Parallel()
	r := setup(t, Config{Processor: processor, KeepLogs: 2})
	id := jobID(t)
	if _, err := r.Open(context.Background(), id, 1, false); !errors.Is(err, runner.ErrNotFound) {
		t.Errorf("Open() of an attempt never started = %v, want %v", err, runner.ErrNotFound)
	}
	// Attempt 1 runs while 2 and 3 start and end: being the oldest does
	// not remove a running attempt's log.
	if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 1, Function: "sleep", Args: job.Args{"seconds": "2"}}); err != nil {
		t.Fatal(err)
	}
	for n := 2; n <= 3; n++ {
		if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: n, Function: "echo"}); err != nil {
			t.Fatal(err)
		}
		wait(t, r, id, n)
	}
	for _, tt := range []struct {
		attempt int
		want    error
	}{{1, nil}, {2, runner.ErrLogGone}, {3, nil}} {
		if log, err := r.Open(context.Background(), id, tt.attempt, false); !errors.Is(err, tt.want) {
			t.Errorf("Open() of attempt %d while 1 runs = %v, want %v", tt.attempt, err, tt.want)
		} else if err == nil {
			log.Close()
		}
	}
	// Once attempt 1 has ended, it is the oldest of three.
	wait(t, r, id, 1)
	if _, err := r.Start(context.Background(), runner.Spec{JobID: id, Attempt: 4, Function: "echo"}); err != nil {
		t.Fatal(err)
	}
	wait(t, r, id, 4)
	if _, err := r.Open(context.Background(), id, 1, false); !errors.Is(err, runner.ErrLogGone) {
		t.Errorf("Open() of attempt 1 once ended and attempt 4 started = %v, want %v", err, runner.ErrLogGone)
	}
	if got := readLog(t, r, id, 3, false); !strings.Contains(got, `"msg":"function succeeded"`) {
		t.Errorf("Open() of attempt 3 = %q, want the processor's log", got)
	}
	r.Close()
	if _, err := r.Open(context.Background(), id, 3, false); !errors.Is(err, runner.ErrLogGone) {
		t.Errorf("Open() after Close = %v, want %v", err, runner.ErrLogGone)
	}
}

// readLog returns the whole log Open serves.
func readLog(t *testing.T, r *Runner, jobID string, n int, follow bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log, err := r.Open(ctx, jobID, n, follow)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	b, err := io.ReadAll(log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// trim shortens a long log for a message.
func trim(s string) string {
	if len(s) > 200 {
		return s[:100] + "..." + s[len(s)-100:]
	}
	return s
}
