// Package runner defines how a job's attempt is run and awaited. The
// dispatcher depends only on Runner; the local runner runs the processor
// binary as a child process and the Kubernetes runner runs it as a
// batch/v1 Job.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kjobs/kjobs/internal/job"
)

// Spec says what one attempt runs.
type Spec struct {
	JobID    string
	Attempt  int
	Function string
	Args     job.Args
	// Timeout bounds the attempt; zero, or more than the runner's own
	// deadline, means that deadline.
	Timeout time.Duration
	// Labels are the job's own, for the attempt's Job and pod.
	Labels map[string]string
	// Event is the CloudEvent that started the job, in CloudEvents JSON,
	// for a job a binding's event started; nil otherwise. The function
	// reads it from function.EnvEvent, or, when it is larger than
	// MaxEventEnv, from the file function.EnvEventFile names.
	Event []byte
}

// MaxEventEnv is the largest event a runner puts in a function's
// environment: well under the 128 KiB that Linux allows one environment
// string (MAX_ARG_STRLEN), with room for the rest of the environment.
const MaxEventEnv = 32 << 10

// Deadline returns how long the attempt may run under a runner whose own
// deadline is max: the spec's timeout, when it has one within max. A
// timeout above max comes from an API configured with a longer deadline
// than the dispatcher; the dispatcher's wins, as it is the one that bounds
// the Broker's delivery timeout.
func (s Spec) Deadline(max time.Duration) time.Duration {
	if s.Timeout > 0 && s.Timeout < max {
		return s.Timeout
	}
	return max
}

// Name is the deterministic name of an attempt: the Kubernetes Job name,
// and the local process's name. Two deliveries of one attempt derive the same
// name, which is what makes starting an attempt idempotent.
func Name(jobID string, attempt int) string {
	return fmt.Sprintf("kjobs-%s-%d", jobID, attempt)
}

// ErrNotFound is returned by Wait, and by Logs.Open, for an attempt that
// was never started.
var ErrNotFound = errors.New("attempt not found")

// ErrLogGone is returned by Logs.Open for an attempt that was started but
// whose output is no longer kept: its pod was deleted, or the local runner
// removed its log file.
var ErrLogGone = errors.New("attempt's log is no longer kept")

// Logs reads attempts' output.
type Logs interface {
	// Open returns the output of the attempt runner.Name(jobID, attempt). With follow it streams until the attempt ends or ctx is done.
	// It returns ErrLogGone when the attempt's output is no longer kept, ErrNotFound when no such attempt was started.
	Open(ctx context.Context, jobID string, attempt int, follow bool) (io.ReadCloser, error)
}

// Recorder keeps what a runner observes of attempts: that one started, and
// how it ended. The dispatcher's store is the one Recorder; its moves are
// idempotent, so a Recorder may be told the same thing any number of times,
// by any number of runners.
type Recorder interface {
	Record(ctx context.Context, jobID string, a job.Attempt) error
}

// Runner starts attempts and waits for them.
type Runner interface {
	// Attempts returns what is known of a job's attempts, ordered by
	// attempt number. The dispatcher derives the next attempt from it, never
	// from a delivery count.
	Attempts(ctx context.Context, jobID string) ([]job.Attempt, error)
	// Start launches the attempt unless it already exists, in which case it
	// adopts it. Either way it returns the attempt as it stands; concurrent
	// calls for one attempt start it once.
	Start(ctx context.Context, spec Spec) (job.Attempt, error)
	// Wait blocks until the attempt has finished, or ctx is done.
	Wait(ctx context.Context, jobID string, attempt int) (job.Attempt, error)
	// Reconcile tells rec of every attempt's start and end until ctx is
	// done, whether or not a delivery waits for it, including the attempts
	// that started or ended before it was called. A Record that fails is
	// retried with backoff. It returns when ctx is done.
	Reconcile(ctx context.Context, rec Recorder) error
	// Stop stops every attempt of the job that still runs: its Job is
	// deleted with its pods, or its child process killed. The attempt then
	// ends as any deleted attempt does. Stopping a job with nothing
	// running is a no-op.
	Stop(ctx context.Context, jobID string) error
}
