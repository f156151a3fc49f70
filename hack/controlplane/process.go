//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// component is one run of one process of the control plane.
type component struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited; err is set then
	err  error
	// logStart is where this run's output begins in log: a service
	// started again appends to the log of its earlier runs.
	logStart int64
	// stopped is set before the process is signalled on purpose, by the
	// control plane's own stop or the control server, so that its exit
	// does not fail the cluster.
	stopped atomic.Bool
}

func (comp *component) exited() bool {
	select {
	case <-comp.done:
		return true
	default:
		return false
	}
}

// output returns what this run has written to its log so far.
func (comp *component) output() []byte {
	f, err := os.Open(comp.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(comp.logStart, io.SeekStart); err != nil {
		return nil
	}
	out, _ := io.ReadAll(f)
	return out
}

// exitError is the cause a component's exit cancels the cluster with.
type exitError struct{ c *component }

func (e exitError) Error() string { return fmt.Sprintf("%s exited: %v", e.c.name, e.c.err) }

// run starts a component in its own process group, with its output in its
// log file, and keeps it for stop. A component started with run alone is
// watched at once; serve watches the ones it starts only once they are
// ready, because it may retry them.
func (c *cluster) run(name, bin string, env []string, args ...string) *component {
	comp := c.launch(name, bin, env, args, false)
	if name != "etcd" && name != "kube-apiserver" {
		c.watch(comp)
	}
	return comp
}

// launch starts a component, with its output in its log file, which it
// appends to when again is set (a service started again), and keeps it for
// stop. It does not watch it.
func (c *cluster) launch(name, bin string, env, args []string, again bool) *component {
	comp := &component{name: name, log: filepath.Join(c.logs, name+".log"), done: make(chan struct{})}
	c.mu.Lock()
	c.components = append(c.components, comp)
	c.mu.Unlock()
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if again {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	log, err := os.OpenFile(comp.log, flags, 0o644)
	if err != nil {
		comp.err = err
		close(comp.done)
		return comp
	}
	defer log.Close()
	if again {
		if info, err := log.Stat(); err == nil {
			comp.logStart = info.Size()
		}
		fmt.Fprintf(log, "--- controlplane: %s started again at %s\n", name, time.Now().Format(time.StampMilli))
	}
	comp.cmd = exec.Command(bin, args...)
	comp.cmd.Stdout, comp.cmd.Stderr = log, log
	comp.cmd.Env = append(environ(), env...)
	// Its own process group lets stop signal everything it started, and
	// keeps a terminal's Ctrl-C from reaching it before we stop it in
	// order; Pdeathsig ends it if this process dies without stopping it.
	comp.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if comp.err = comp.cmd.Start(); comp.err != nil {
		close(comp.done)
		return comp
	}
	go func() {
		comp.err = comp.cmd.Wait()
		close(comp.done)
	}()
	return comp
}

// environ is this process's environment without ETCD_* variables: etcd
// reads every one of them as a flag.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// watch cancels the cluster when comp exits, unless it was stopped on
// purpose.
func (c *cluster) watch(comp *component) {
	go func() {
		<-comp.done
		if !comp.stopped.Load() {
			c.fail(exitError{comp})
		}
	}()
}

// serve starts a component that listens on free ports, through launch, and
// waits until its ready check passes. Another process may take a port
// between freePort and the component's bind, so a start that fails with
// "address already in use" is retried on new ports.
func (c *cluster) serve(ctx context.Context, timeout time.Duration, launch func() (*component, func() error)) error {
	for attempt := 1; ; attempt++ {
		comp, ready := launch()
		err := waitUntil(ctx, comp, timeout, ready)
		if err == nil {
			c.watch(comp)
			return nil
		}
		c.kill(comp)
		if attempt < 3 && bytes.Contains(comp.output(), []byte("address already in use")) {
			continue
		}
		return err
	}
}

// waitUntil polls ready until it passes, the component exits, or the
// timeout passes.
func waitUntil(ctx context.Context, comp *component, timeout time.Duration, ready func() error) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-comp.done:
			return exitError{comp}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline:
			return fmt.Errorf("%s not ready after %s: %v", comp.name, timeout, err)
		case <-tick.C:
		}
	}
}

// stop stops the components in the reverse order of their start.
func (c *cluster) stop() {
	if c.control != nil {
		c.control.Close()
	}
	c.mu.Lock()
	comps := c.components
	c.mu.Unlock()
	for i := len(comps) - 1; i >= 0; i-- {
		c.kill(comps[i])
	}
	if c.proxy != nil {
		c.proxy.close()
	}
}

// kill sends SIGTERM to comp's process group, and SIGKILL if it has not
// exited 10 s later.
func (c *cluster) kill(comp *component) {
	signalGroup(comp, syscall.SIGTERM)
}

// signalGroup marks comp as stopped on purpose, sends sig to its process
// group and waits until it has exited; after a SIGTERM it sends SIGKILL if
// that takes more than 10 s.
func signalGroup(comp *component, sig syscall.Signal) {
	if comp.exited() {
		return
	}
	comp.stopped.Store(true)
	pgid := comp.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-comp.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-comp.done
	}
}

// service is a data-plane component that the control server can stop and
// start again: the same binary, arguments, environment and ports each time.
type service struct {
	name string
	bin  string
	args []string
	env  func() []string // read at every start
	// ready tells whether comp, a run of the service, serves.
	ready func(comp *component) error
	// repick, when set, chooses new ports: the first start is retried on
	// them if the ports were taken in the meantime.
	repick func()

	mu     sync.Mutex // held while the service starts or stops
	comp   *component // the last run; nil before the first
	starts int
}

// serviceTimeout bounds a data-plane component's start; they are ready in
// a few seconds even on a busy machine.
const serviceTimeout = time.Minute

var (
	errRunning    = errors.New("it is running")
	errNotRunning = errors.New("it is not running")
)

// startService starts s and waits until it is ready; from then on its exit
// fails the cluster unless it is stopped through stopService. A start that
// fails leaves it stopped.
func (c *cluster) startService(ctx context.Context, s *service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.comp != nil && !s.comp.exited() {
		return errRunning
	}
	for attempt := 1; ; attempt++ {
		comp := c.launch(s.name, s.bin, s.env(), s.args, s.starts > 0)
		s.comp = comp
		s.starts++
		err := waitUntil(ctx, comp, serviceTimeout, func() error { return s.ready(comp) })
		if err == nil {
			c.watch(comp)
			return nil
		}
		c.kill(comp)
		if attempt < 3 && s.repick != nil && s.starts == attempt &&
			bytes.Contains(comp.output(), []byte("address already in use")) {
			s.repick()
			continue
		}
		return fmt.Errorf("starting %s: %w\n--- its log since the start:\n%s", s.name, err, lastLines(comp.output(), 20))
	}
}

// stopService stops s with sig (SIGKILL, or SIGTERM for a graceful stop)
// and waits until it has exited.
func (c *cluster) stopService(s *service, sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.comp == nil || s.comp.exited() {
		return errNotRunning
	}
	signalGroup(s.comp, sig)
	return nil
}

// state is "running", "stopped" (on purpose, or never started) or "failed"
// (it exited on its own, which fails the cluster), with the pid of the
// running process.
func (s *service) state() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.comp == nil:
		return "stopped", 0
	case !s.comp.exited():
		return "running", s.comp.cmd.Process.Pid
	case s.comp.stopped.Load():
		return "stopped", 0
	default:
		return "failed", 0
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error() + "\n"
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// lastLines returns the last n lines of out.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n") + "\n"
}
