// Package local is the runner of `make run`: it runs each attempt as a
// child process of the processor binary, with the environment, exit codes
// and termination message of a Kubernetes Job's container, so that the
// dispatcher behaves the same with either runner.
//
// Attempts are kept in memory for the runner's lifetime, keyed by job ID and
// attempt number, the way the Kubernetes runner finds its Jobs by label. A
// child process outlives the request that started it, as a Job does, so that
// a redelivery adopts it; Close stops the children that are still running.
//
// # Logs
//
// A child's stdout and stderr both go to one file per attempt, in
// Config.Dir, as a container's two streams go to one pod log. The file
// outlives the attempt, so that Open can serve it, until Config.KeepLogs
// later attempts have started or the runner closes. The child writes to it
// directly, not through a pipe, so nothing bounds its size as it grows: Open
// serves at most its last MaxLogRead bytes instead.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/processor/function"
)

// Reasons of a failed attempt, as Kubernetes names them for a Job.
const (
	// ReasonDeadlineExceeded is an attempt stopped by its deadline.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonError is an attempt that failed on its own, or was stopped by
	// Close.
	ReasonError = "Error"
	// ReasonStopped is an attempt stopped by Stop, as a Job deleted before
	// it finished.
	ReasonStopped = "Stopped"
)

// MaxLogRead bounds what Open serves of an attempt's log: its last MaxLogRead
// bytes, as a kubelet keeps the end of a container's log once it rotates it.
// The child writes its log file itself, so this bound can only be kept when
// the file is read.
const MaxLogRead = 10 << 20

// logPoll is how often a followed log is read again for what the child has
// written since, while the attempt runs; its end is told by a channel.
const logPoll = 200 * time.Millisecond

// gracePeriod is how long a stopped child has between SIGTERM and SIGKILL,
// as a pod has between the two when its Job's deadline passes.
const gracePeriod = 10 * time.Second

// Config configures a Runner.
type Config struct {
	// Processor is the path of the processor binary, which runs the
	// built-in functions. Required.
	Processor string
	// Functions are the declared functions: one that names a local binary
	// runs that binary instead of Processor. Optional.
	Functions *catalog.Catalog
	// Deadline bounds each attempt, like a Job's activeDeadlineSeconds; a
	// Spec's shorter Timeout bounds its attempt instead. Defaults to 10m.
	Deadline time.Duration
	// Dir is where the children's termination messages are kept while they
	// run, and their logs until KeepLogs later attempts have started or the
	// runner closes. Defaults to os.TempDir().
	Dir string
	// KeepLogs is how many attempts' logs are kept: once more have started,
	// the oldest finished attempts' logs are removed. Defaults to 1000.
	KeepLogs int
}

// Runner runs attempts as child processes. It is safe for concurrent use.
type Runner struct {
	cfg Config
	// life ends when Close is called; every child's context derives from it.
	life    context.Context
	stopAll context.CancelCauseFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	attempts map[key]*attempt
	// logs holds the attempts whose log files are kept, oldest first.
	logs []key
	// changed holds the attempts that started or ended since Reconcile
	// last recorded them.
	changed workqueue.TypedRateLimitingInterface[key]
}

type key struct {
	jobID   string
	attempt int
}

// attempt is one child process. rec and log are guarded by Runner.mu; done
// is closed once rec holds the outcome.
type attempt struct {
	rec job.Attempt
	// log is the path of the file of the child's stdout and stderr, or ""
	// once it is removed.
	log  string
	done chan struct{}
	// stop ends the child's context, which stops the child.
	stop context.CancelCauseFunc
}

var (
	errDeadline = errors.New("deadline exceeded")
	errClosed   = errors.New("local runner closed")
	errStopped  = errors.New("stopped")
)

var (
	_ runner.Runner = (*Runner)(nil)
	_ runner.Logs   = (*Runner)(nil)
)

// New returns a Runner for cfg, with its defaults applied.
func New(cfg Config) *Runner {
	if cfg.Deadline <= 0 {
		cfg.Deadline = 10 * time.Minute
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.KeepLogs <= 0 {
		cfg.KeepLogs = 1000
	}
	life, stopAll := context.WithCancelCause(context.Background())
	return &Runner{
		cfg: cfg, life: life, stopAll: stopAll, attempts: map[key]*attempt{},
		changed: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[key](),
			workqueue.TypedRateLimitingQueueConfig[key]{Name: "kjobs-local-attempts"}),
	}
}

// Start starts the attempt's child process unless it exists, in which case
// it adopts it, and returns the attempt as it stands. ctx only bounds the
// call: the child keeps running after ctx ends, until it exits, its
// deadline passes or the runner is closed.
func (r *Runner) Start(_ context.Context, spec runner.Spec) (job.Attempt, error) {
	// The same checks as the Kubernetes runner's, whose Job names need
	// them, so that the two runners accept the same attempts.
	if err := job.ValidateID(spec.JobID); err != nil {
		return job.Attempt{}, fmt.Errorf("local.Start: %w", err)
	}
	if spec.Attempt < 1 {
		return job.Attempt{}, fmt.Errorf("local.Start: attempt %d of job %s: attempt numbers start at 1", spec.Attempt, spec.JobID)
	}
	// The lock is held while the child starts, so that concurrent calls for
	// one attempt start it once; forking takes milliseconds.
	r.mu.Lock()
	defer r.mu.Unlock()
	k := key{spec.JobID, spec.Attempt}
	if a, ok := r.attempts[k]; ok {
		return snapshot(a.rec), nil
	}
	if r.closed {
		return job.Attempt{}, fmt.Errorf("local.Start: %w", errClosed)
	}
	a, err := r.start(spec)
	if err != nil {
		return job.Attempt{}, fmt.Errorf("local.Start: %s: %w", runner.Name(spec.JobID, spec.Attempt), err)
	}
	r.attempts[k] = a
	r.logs = append(r.logs, k)
	r.trimLogs()
	r.changed.Add(k)
	return snapshot(a.rec), nil
}

// binary returns the program that runs fn: its declared local binary, or
// the processor.
func (r *Runner) binary(fn string) string {
	if r.cfg.Functions != nil {
		if f, err := r.cfg.Functions.Lookup(fn); err == nil && f.Local != "" {
			return f.Local
		}
	}
	return r.cfg.Processor
}

// start launches the child of spec and the goroutine that awaits it.
func (r *Runner) start(spec runner.Spec) (*attempt, error) {
	if r.cfg.Processor == "" {
		return nil, errors.New("Config.Processor is empty; set it to the processor binary's path")
	}
	args := spec.Args
	if args == nil {
		args = job.Args{}
	}
	argsJSON, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	// The child writes its termination message and its log to files rather
	// than pipes, so that a grandchild holding them open cannot delay the
	// attempt's end.
	termLog, err := os.CreateTemp(r.cfg.Dir, "kjobs-*.termination-log")
	if err != nil {
		return nil, err
	}
	termLog.Close()
	logFile, err := os.CreateTemp(r.cfg.Dir, runner.Name(spec.JobID, spec.Attempt)+"-*.log")
	if err != nil {
		os.Remove(termLog.Name())
		return nil, err
	}

	// temps go when the attempt ends; the log stays for Open.
	temps := []string{termLog.Name()}
	eventEnv, eventFile, err := r.eventEnv(spec.Event)
	if err != nil {
		logFile.Close()
		removeAll(append(temps, logFile.Name()))
		return nil, err
	}
	if eventFile != "" {
		temps = append(temps, eventFile)
	}

	stoppable, stop := context.WithCancelCause(r.life)
	deadline := spec.Deadline(r.cfg.Deadline)
	ctx, cancelDeadline := context.WithTimeoutCause(stoppable, deadline, errDeadline)
	cancel := func() { cancelDeadline(); stop(nil) }
	cmd := exec.CommandContext(ctx, r.binary(spec.Function))
	// The contract's environment plus what a program needs to run, and
	// nothing else: the parent's secrets, such as REDIS_URL, stay in it.
	cmd.Env = []string{
		function.EnvFunction + "=" + spec.Function,
		function.EnvArgs + "=" + string(argsJSON),
		function.EnvJobID + "=" + spec.JobID,
		function.EnvAttempt + "=" + strconv.Itoa(spec.Attempt),
		function.EnvTerminationLog + "=" + termLog.Name(),
	}
	if eventEnv != "" {
		cmd.Env = append(cmd.Env, eventEnv)
	}
	for _, name := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(name); ok {
			cmd.Env = append(cmd.Env, name+"="+v)
		}
	}
	// One file for both streams, as a pod's log: the child's two
	// descriptors share one offset, so its lines interleave as written.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// A group of its own lets the deadline stop whatever the child started,
	// as deleting a pod does, and keeps a terminal's Ctrl-C to the runner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = gracePeriod

	err = cmd.Start()
	logFile.Close() // the child has its own descriptors
	if err != nil {
		cancel()
		removeAll(append(temps, logFile.Name()))
		return nil, err
	}
	a := &attempt{
		rec: job.Attempt{
			Attempt:   spec.Attempt,
			Job:       runner.Name(spec.JobID, spec.Attempt),
			StartedAt: time.Now().UTC(),
			Outcome:   job.OutcomeRunning,
		},
		log:  logFile.Name(),
		done: make(chan struct{}),
		stop: stop,
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		r.await(ctx, cmd, spec.JobID, deadline, a, logFile.Name(), temps)
	}()
	return a, nil
}

// eventEnv returns the environment variable that gives the child the event
// that started its job, if any: the event itself, or the name of file, a
// file readable by this user only that holds an event too large for the
// environment, as a pod gets it from a Secret.
func (r *Runner) eventEnv(event []byte) (env, file string, err error) {
	switch {
	case event == nil:
		return "", "", nil
	case len(event) <= runner.MaxEventEnv:
		return function.EnvEvent + "=" + string(event), "", nil
	}
	f, err := os.CreateTemp(r.cfg.Dir, "kjobs-*.event")
	if err != nil {
		return "", "", err
	}
	_, err = f.Write(event)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", "", err
	}
	return function.EnvEventFile + "=" + f.Name(), f.Name(), nil
}

// await waits for the child of a to exit and records how it ended, then
// removes its temporary files, of which temps[0] is its termination log. Its
// log, at logPath, stays: it is removed by trimLogs or Close, only once the
// attempt has finished, so it is still there to be read here.
func (r *Runner) await(ctx context.Context, cmd *exec.Cmd, jobID string, deadline time.Duration, a *attempt, logPath string, temps []string) {
	termLog := temps[0]
	waitErr := cmd.Wait()
	// Whatever the child left behind in its group goes with it, as a pod's
	// processes go with its container.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	finished := time.Now().UTC()
	code := exitCode(cmd.ProcessState)

	outcome, reason := job.OutcomeSucceeded, ""
	msg := readHead(termLog, function.MaxMessage)
	if code != 0 {
		outcome, reason = job.OutcomeFailed, ReasonError
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errDeadline):
			reason = ReasonDeadlineExceeded
		case errors.Is(cause, errStopped):
			reason = ReasonStopped
		}
		// Like a pod's terminationMessagePolicy FallbackToLogsOnError: a
		// failure without a message is explained by the end of its log, or
		// else by how the child ended.
		if msg == "" {
			msg = readTail(logPath, function.MaxMessage)
		}
		if msg == "" {
			msg = describe(waitErr, context.Cause(ctx), deadline)
		}
	}
	removeAll(temps)

	r.mu.Lock()
	defer r.mu.Unlock()
	a.rec.FinishedAt = &finished
	a.rec.ExitCode = &code
	a.rec.Outcome = outcome
	a.rec.Reason = reason
	a.rec.Message = msg
	close(a.done)
	r.changed.Add(key{jobID, a.rec.Attempt})
	// Logs beyond KeepLogs that were kept while this attempt ran may go now.
	r.trimLogs()
}

// trimLogs removes the logs of the oldest finished attempts beyond
// Config.KeepLogs. A running attempt's log is kept, whatever its age, as its
// child still writes it. r.mu must be held.
func (r *Runner) trimLogs() {
	excess := len(r.logs) - r.cfg.KeepLogs
	if excess <= 0 {
		return
	}
	kept := r.logs[:0]
	for _, k := range r.logs {
		if a := r.attempts[k]; excess > 0 && a.rec.FinishedAt != nil {
			os.Remove(a.log)
			a.log = ""
			excess--
			continue
		}
		kept = append(kept, k)
	}
	clear(r.logs[len(kept):])
	r.logs = kept
}

// Open returns the log of attempt n of jobID: what its child wrote to stdout
// and stderr, at most the last MaxLogRead bytes. With follow, the reader
// returns io.EOF only once the attempt has finished and all of it is read,
// or ctx's error once ctx is done. Open returns runner.ErrNotFound for an
// attempt this runner never started and runner.ErrLogGone for one whose log
// was removed.
func (r *Runner) Open(ctx context.Context, jobID string, n int, follow bool) (io.ReadCloser, error) {
	r.mu.Lock()
	a, ok := r.attempts[key{jobID, n}]
	var path string
	if ok {
		path = a.log
	}
	r.mu.Unlock()
	switch {
	case !ok:
		return nil, fmt.Errorf("local.Open: %s: %w", runner.Name(jobID, n), runner.ErrNotFound)
	case path == "":
		return nil, fmt.Errorf("local.Open: %s: %w", runner.Name(jobID, n), runner.ErrLogGone)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed since it was looked up; once open, it stays readable.
		return nil, fmt.Errorf("local.Open: %s: %w", runner.Name(jobID, n), runner.ErrLogGone)
	}
	if err != nil {
		return nil, fmt.Errorf("local.Open: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxLogRead {
		if _, err := f.Seek(fi.Size()-MaxLogRead, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("local.Open: %w", err)
		}
	}
	if !follow {
		return f, nil
	}
	return &follower{f: f, ctx: ctx, done: a.done, tick: time.NewTicker(logPoll)}, nil
}

// follower reads a log file as its child writes it, until the child has
// exited and the file is read to its end.
type follower struct {
	f    *os.File
	ctx  context.Context
	done <-chan struct{}
	tick *time.Ticker
	// ended is set once done is closed: nothing writes the file after that,
	// as the child's whole process group is gone.
	ended bool
}

func (l *follower) Read(p []byte) (int, error) {
	for {
		n, err := l.f.Read(p)
		if n > 0 || err != io.EOF || l.ended {
			return n, err
		}
		select {
		case <-l.done:
			l.ended = true
		case <-l.ctx.Done():
			return 0, l.ctx.Err()
		case <-l.tick.C:
		}
	}
}

func (l *follower) Close() error {
	l.tick.Stop()
	return l.f.Close()
}

// Attempts returns every attempt of jobID this runner started, ordered by
// attempt number.
func (r *Runner) Attempts(_ context.Context, jobID string) ([]job.Attempt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := make([]job.Attempt, 0, 1)
	for k, a := range r.attempts {
		if k.jobID == jobID {
			list = append(list, snapshot(a.rec))
		}
	}
	slices.SortFunc(list, func(x, y job.Attempt) int { return x.Attempt - y.Attempt })
	return list, nil
}

// Wait blocks until the attempt's child has exited, or ctx is done, and
// returns the attempt as it stands. It returns runner.ErrNotFound for an
// attempt this runner never started.
func (r *Runner) Wait(ctx context.Context, jobID string, n int) (job.Attempt, error) {
	r.mu.Lock()
	a, ok := r.attempts[key{jobID, n}]
	r.mu.Unlock()
	if !ok {
		return job.Attempt{}, fmt.Errorf("local.Wait: %s: %w", runner.Name(jobID, n), runner.ErrNotFound)
	}
	var err error
	select {
	case <-a.done:
	case <-ctx.Done():
		err = fmt.Errorf("local.Wait: %s: %w", runner.Name(jobID, n), ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return snapshot(a.rec), err
}

// Stop stops every running child of jobID, SIGTERM first and SIGKILL after
// a grace period, without waiting for them to exit; their attempts end
// failed with ReasonStopped.
func (r *Runner) Stop(_ context.Context, jobID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, a := range r.attempts {
		if k.jobID == jobID && a.rec.FinishedAt == nil {
			a.stop(errStopped)
		}
	}
	return nil
}

// Reconcile tells rec of every attempt's start and end until ctx is done,
// from the children themselves, so that an attempt's outcome is kept even
// when no delivery waits for it any more.
func (r *Runner) Reconcile(ctx context.Context, rec runner.Recorder) error {
	stop := context.AfterFunc(ctx, r.changed.ShutDown)
	defer stop()
	for {
		k, shutdown := r.changed.Get()
		if shutdown {
			return nil
		}
		r.mu.Lock()
		a := snapshot(r.attempts[k].rec)
		r.mu.Unlock()
		if err := rec.Record(ctx, k.jobID, a); err != nil && ctx.Err() == nil {
			r.changed.AddRateLimited(k)
		} else {
			r.changed.Forget(k)
		}
		r.changed.Done(k)
	}
}

// Close stops every running child, SIGTERM first and SIGKILL after a grace
// period, and returns once all have exited, having removed every attempt's
// log. Start fails after Close, and Open of any attempt returns
// runner.ErrLogGone.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stopAll(errClosed)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.logs {
		a := r.attempts[k]
		os.Remove(a.log)
		a.log = ""
	}
	r.logs = nil
}

// snapshot copies rec, so that callers cannot change the runner's record
// through its pointers.
func snapshot(rec job.Attempt) job.Attempt {
	if rec.FinishedAt != nil {
		t := *rec.FinishedAt
		rec.FinishedAt = &t
	}
	if rec.ExitCode != nil {
		c := *rec.ExitCode
		rec.ExitCode = &c
	}
	return rec
}

// exitCode returns the child's exit code, or 128 plus the signal that
// killed it, as Kubernetes reports a container's.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// describe says why a child that left no message failed.
func describe(waitErr, cause error, deadline time.Duration) string {
	switch {
	case errors.Is(cause, errDeadline):
		return fmt.Sprintf("stopped after its deadline of %s: %v", deadline, waitErr)
	case errors.Is(cause, errClosed):
		return fmt.Sprintf("stopped because the local runner closed: %v", waitErr)
	case errors.Is(cause, errStopped):
		return fmt.Sprintf("stopped: the job was canceled: %v", waitErr)
	}
	return fmt.Sprint(waitErr)
}

// readHead returns at most n bytes from the start of the file at path, as
// valid UTF-8 and trimmed, or "" when it cannot be read.
func readHead(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, n))
	// Dropping invalid bytes also drops a rune cut at the limit.
	return strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
}

// readTail returns at most n bytes from the end of the file at path, as
// valid UTF-8 and trimmed, or "" when it cannot be read: the last lines a
// child wrote are the likeliest to say why it failed.
func readTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		if _, err := f.Seek(fi.Size()-n, io.SeekStart); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}
