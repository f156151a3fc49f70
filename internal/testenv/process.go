package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a child process of a test: one of the project's binaries run
// as it runs in a cluster, so that a test can kill it as a node failure
// would and start it again.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once it exited
	err  error         // its exit, once done is closed
}

// StartProcess runs path with the test's environment plus env, its output
// in a file shown when the test fails, and SIGKILLs it when the test ends.
// The last value of a repeated variable wins, so env overrides the test's
// own (a KUBECONFIG of the developer's, say).
func StartProcess(t testing.TB, name, path string, env ...string) *Process {
	t.Helper()
	p := &Process{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child has its own descriptor
	p.cmd = exec.Command(path)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testenv: starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s", p.Output())
		}
	})
	return p
}

// Kill SIGKILLs the process, as the kubelet does after the grace period or
// the kernel on OOM, and waits until it is gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process, such as the SIGTERM of a rollout.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// RSS returns the process's resident set size, from /proc, as the kernel
// counts it: what a memory limit would be checked against.
func (p *Process) RSS() (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

// CPU returns the CPU time the process has used so far, user and system,
// from /proc as the kernel counts it (in clock ticks of 10 ms).
func (p *Process) CPU() (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, want 13 or more", p.cmd.Process.Pid, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", p.cmd.Process.Pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux the tests run on.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process exited, once Done is closed.
func (p *Process) Err() error { return p.err }

// Log is what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Output is the process's output and state, for a failure message.
func (p *Process) Output() string {
	return fmt.Sprintf("output of %s (%v):\n%s", p.name, p.cmd.ProcessState, p.Log())
}

// direct never goes through a proxy of the environment and has no timeout
// of its own: the tests' contexts bound every request.
var direct = &http.Client{Transport: &http.Transport{Proxy: nil}}

// WaitReady polls url until it answers 200; it fails the test if the
// process exits first.
func (p *Process) WaitReady(t testing.TB, ctx context.Context, url string) {
	t.Helper()
	p.WaitReadyEvery(t, ctx, url, 100*time.Millisecond)
}

// WaitReadyEvery is WaitReady polling every interval, for a benchmark that
// measures how soon the process is ready.
func (p *Process) WaitReadyEvery(t testing.TB, ctx context.Context, url string, interval time.Duration) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := direct.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("testenv: %s exited before %s answered 200: %v\n%s", p.name, url, p.err, p.Output())
		case <-ctx.Done():
			t.Fatalf("testenv: %s did not answer 200 on %s: %v (last error %v)", p.name, url, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}
