// Package dispatch turns one delivery of a job's event into one attempt of
// the job: it derives the attempt from the store's record and the runner's
// view of earlier ones, starts or adopts it, waits for it and answers the
// Broker with a status code its delivery spec understands. The outcome does
// not depend on that answer: Reconcile records every attempt from the
// cluster. Its dead-letter path fails a job when no attempt is left to wait
// for, and Sweep re-sends the events of jobs that no delivery will move.
package dispatch

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/processor/function"
)

// Extensions the Broker sets on an event it sends to a dead-letter sink.
const (
	extErrorCode = "knativeerrorcode"
	extErrorData = "knativeerrordata"
)

// Dispatcher handles deliveries of job events, and records every attempt's
// start and end that its runner observes.
type Dispatcher struct {
	store  *store.Store
	runner runner.Runner
	log    *slog.Logger
	now    func() time.Time
	// transient bounds how long one step of a delivery retries an error of
	// Redis or the API server before the delivery answers 503.
	transient time.Duration
	// metrics count jobs and attempts; Handler registers them.
	metrics metrics
	// maxAttempts is how many attempts a job gets; see SetMaxAttempts.
	maxAttempts int
	// bindings are read by the binding routes; see SetBindings.
	bindings binding.Getter
	// functions are the declared functions; see SetFunctions.
	functions *catalog.Catalog
}

// DefaultMaxAttempts is the attempts a job gets under the Triggers'
// delivery spec: the first, and its two retries.
const DefaultMaxAttempts = 3

// transientBudget is how long a delivery retries Redis or the API server
// before it gives up with a 503, which costs the job one of the Broker's
// retries. It covers a Redis failover or an apiserver restart, and stays
// well inside the Triggers' delivery timeout.
const transientBudget = 30 * time.Second

var _ runner.Recorder = (*Dispatcher)(nil)

// New returns a Dispatcher that records jobs in s and runs them with r.
func New(s *store.Store, r runner.Runner, log *slog.Logger) *Dispatcher {
	return &Dispatcher{
		store: s, runner: r, log: log, now: time.Now, transient: transientBudget, maxAttempts: DefaultMaxAttempts,
		functions: catalog.New(false), metrics: newMetrics(),
	}
}

// SetMaxAttempts sets how many attempts a job gets: the Triggers' retry
// count plus one (KJOBS_MAX_ATTEMPTS). The Broker's retries end a job's
// attempts on their own, except for an event sent again (a hand-off after
// a wait behind a cap, or the sweep), which starts a new round of them: the
// dispatcher then ends the job failed rather than start one attempt too
// many.
func (d *Dispatcher) SetMaxAttempts(n int) { d.maxAttempts = n }

// SetFunctions sets the declared functions, which the dispatcher refuses
// an event for a function outside of, as the API does a request. Defaults
// to the built-in functions alone.
func (d *Dispatcher) SetFunctions(c *catalog.Catalog) { d.functions = c }

// Reconcile records every attempt the runner observes until ctx is done;
// see runner.Runner.Reconcile.
func (d *Dispatcher) Reconcile(ctx context.Context) error {
	return d.runner.Reconcile(ctx, d)
}

// Record keeps what the runner observed of attempt a of job id. Repeating it
// is a no-op, so the reconciler and the delivery that waited for the attempt
// may both record it, and only the one whose record moved the job counts
// it in the metrics. An attempt of a job that has no record, such as one
// whose record expired, is ignored: nothing could show it. A running
// attempt of a canceled job is stopped.
func (d *Dispatcher) Record(ctx context.Context, id string, a job.Attempt) error {
	var m store.Move
	var err error
	if a.Outcome == job.OutcomeRunning {
		if m, err = d.store.Start(ctx, id, a); m.Moved() {
			d.started(m, a)
		}
	} else {
		if m, err = d.store.Finish(ctx, id, a); m.Moved() {
			d.ended(m, a)
		}
	}
	switch {
	case errors.Is(err, store.ErrCanceled):
		// The job was canceled and its attempt runs all the same: the
		// dispatcher that took the cancel died before stopping it, or a
		// delivery created the Job as the cancel landed.
		d.log.Info("stopping an attempt of a canceled job", "job", id, "attempt", a.Attempt)
		return d.runner.Stop(ctx, id)
	case errors.Is(err, store.ErrNotFound):
		d.log.Warn("an attempt of a job without a record", "job", id, "attempt", a.Attempt, "outcome", a.Outcome)
		return nil
	case errors.Is(err, store.ErrTransition):
		return nil
	}
	return err
}

// count reads job id, whose function never changes, and counts a move of
// it that has happened with fn: the cancel of a job, which the store hands
// over by ID alone (Start and Finish report the function with their move).
// The read outlives the caller's context, such as a delivery cut right
// after the move. A read that Redis does not answer within the transient
// budget loses that count, which is logged: the move itself is recorded,
// and repeating it would not count it again.
func (d *Dispatcher) count(ctx context.Context, id string, fn func(job.Job)) {
	ctx = context.WithoutCancel(ctx)
	var j job.Job
	err := d.retry(ctx, d.log, "reading a job to count its move", func() (err error) {
		j, err = d.store.Get(ctx, id)
		return err
	})
	if err != nil {
		d.log.Warn("a move of a job is left out of the metrics", "job", id, "error", err)
		return
	}
	fn(j)
}

// Receive handles one delivery of a job's event. It answers 2xx when the
// attempt succeeded, 5xx when it failed (the Broker retries with backoff)
// and 400 for an event that can never succeed (the Broker dead-letters it).
// A tick of a paused schedule starts nothing: it is counted skipped and
// answered 2xx.
// The answer is all the delivery decides: the reconciler records the
// attempt from the cluster whether or not this delivery lasts until it
// ends.
func (d *Dispatcher) Receive(ctx context.Context, e cloudevents.Event) protocol.Result {
	id := e.ID()
	log := d.log.With("job", id, "type", e.Type())
	req, err := d.request(e)
	if err != nil {
		log.Warn("refusing an event that can never become a job", "error", err)
		return cloudevents.NewHTTPResult(http.StatusBadRequest, "%s", err)
	}
	if req.Schedule != "" {
		var skip bool
		if err := d.retry(ctx, log, "checking whether the schedule is paused", func() (err error) {
			skip, err = d.store.DropPausedTick(ctx, id, req.Schedule, event.Paused(e))
			return err
		}); err != nil {
			return d.unavailable(log, err)
		}
		if skip {
			// 2xx: a paused schedule's tick is not a failure for the
			// Broker to retry, only one that runs nothing.
			log.Info("dropping a tick of a paused schedule", "schedule", req.Schedule)
			return cloudevents.ResultACK
		}
	}
	var j job.Job
	err = d.retry(ctx, log, "recording the job", func() (err error) {
		j, _, err = d.store.Create(ctx, id, req, "")
		return err
	})
	switch {
	case errors.Is(err, store.ErrScheduleDeleted):
		// Its PingSource ticks on until Knative has deleted it; a tick
		// from before the deletion made its job, which goes on.
		log.Info("dropping a tick of a deleted schedule", "schedule", req.Schedule)
		return cloudevents.ResultACK
	case err != nil:
		return d.unavailable(log, err)
	}
	return d.run(ctx, log, id, j, req, nil)
}

// run starts or adopts the next attempt of job j, recorded from req, and
// answers for it. ce is the event that started the job, for its function,
// when a binding's event did; nil for a bound job's request that the sweep
// or a hand-off sent again, whose event is then read from the store when an
// attempt starts.
func (d *Dispatcher) run(ctx context.Context, log *slog.Logger, id string, j job.Job, req job.Request, ce []byte) protocol.Result {
	if j.Status.Terminal() {
		// A redelivery racing the dead-letter sink, a duplicate tick or a
		// sweep's re-send of a job that ended meanwhile: the job has its
		// outcome and is not run again.
		log.Info("job already finished", "status", j.Status)
		return cloudevents.ResultACK
	}

	var inCluster []job.Attempt
	if err := d.retry(ctx, log, "reading the attempts", func() (err error) {
		inCluster, err = d.runner.Attempts(ctx, id)
		return err
	}); err != nil {
		return d.unavailable(log, err)
	}
	n, done := next(j.Attempts, inCluster)
	if done != nil {
		return d.finish(ctx, log, id, *done)
	}
	log = log.With("attempt", n)
	if !exists(inCluster, n) {
		if n > d.maxAttempts {
			return d.exhausted(ctx, log, j, inCluster)
		}
		// A new attempt needs a slot when a cap holds its function. A job
		// without one is answered at once, so that however long it waits
		// it meets no delivery timeout and spends none of its retries; its
		// event is sent again when it is admitted (HandOff).
		var adm store.Admission
		err := d.retry(ctx, log, "taking a slot", func() (err error) {
			adm, err = d.store.Acquire(ctx, id)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrFinished) {
				return permanent(err)
			}
			return err
		})
		switch {
		case errors.Is(err, store.ErrFinished):
			log.Info("job ended before its attempt started")
			return cloudevents.ResultACK
		case err != nil:
			return d.unavailable(log, err)
		case adm == store.Wait:
			log.Info("waiting for a slot")
			return cloudevents.NewHTTPResult(http.StatusAccepted, "")
		}
	}
	start := job.Attempt{Attempt: n, Job: runner.Name(id, n), StartedAt: d.now().UTC(), Outcome: job.OutcomeRunning}
	var started store.Move
	err := d.retry(ctx, log, "starting the attempt", func() (err error) {
		started, err = d.store.Start(ctx, id, start)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCanceled) {
			// Expired between Create and here, and the redelivery creates
			// it; or canceled, and nothing is to run.
			return permanent(err)
		}
		return err
	})
	switch {
	case errors.Is(err, store.ErrCanceled):
		log.Info("job canceled before its attempt started")
		return cloudevents.ResultACK
	case err != nil:
		return d.unavailable(log, err)
	}
	if started.Moved() {
		d.started(started, start)
	}
	if ce == nil && req.Binding != "" {
		if err := d.retry(ctx, log, "reading the job's event", func() (err error) {
			ce, err = d.store.Event(ctx, id)
			return err
		}); err != nil {
			return d.unavailable(log, err)
		}
	}
	if err := d.retry(ctx, log, "creating the attempt's Job", func() error {
		_, err := d.runner.Start(ctx, runner.Spec{
			JobID: id, Attempt: n, Function: req.Function, Args: req.Args,
			Timeout: time.Duration(req.Timeout), Labels: req.Labels, Event: ce,
		})
		return err
	}); err != nil {
		return d.unavailable(log, err)
	}
	a, err := d.runner.Wait(ctx, id, n)
	// A cancel stops the attempt, which then ends failed: only then is the
	// job's status worth a read.
	if (err != nil || a.Outcome != job.OutcomeSucceeded) && d.canceled(ctx, id) {
		// Its attempt was stopped; the Broker must not try again.
		log.Info("job canceled while its attempt ran")
		return cloudevents.ResultACK
	}
	if err != nil {
		// Most likely the Broker's delivery timeout ended the request. The
		// attempt goes on and the reconciler records it; a redelivery
		// adopts it.
		log.Warn("stopped waiting for the attempt", "error", err)
		return cloudevents.NewHTTPResult(http.StatusServiceUnavailable, "waiting for attempt %d: %v", n, err)
	}
	return d.finish(ctx, log, id, a)
}

// next decides what a delivery does from the attempts the store recorded and
// those whose Jobs exist: the attempt number to start or adopt, or a
// succeeded attempt to answer for again. The higher attempt number wins, so
// an attempt whose Job was deleted never restarts the numbering. An attempt
// the store recorded as running whose Job is not there (yet) is started
// again under its number: its Job may be about to be created by another
// delivery, and AlreadyExists makes both adopt the same one.
func next(stored, inCluster []job.Attempt) (int, *job.Attempt) {
	var last *job.Attempt
	if len(stored) > 0 {
		last = &stored[len(stored)-1]
	}
	if len(inCluster) > 0 && (last == nil || inCluster[len(inCluster)-1].Attempt >= last.Attempt) {
		last = &inCluster[len(inCluster)-1]
	}
	switch {
	case last == nil:
		return 1, nil
	case last.Outcome == job.OutcomeSucceeded:
		return last.Attempt, last
	case last.Outcome == job.OutcomeFailed:
		return last.Attempt + 1, nil
	}
	return last.Attempt, nil
}

// exhausted fails job j, whose every attempt has failed, when a delivery
// would start one more, and answers 200: the job has its outcome.
func (d *Dispatcher) exhausted(ctx context.Context, log *slog.Logger, j job.Job, inCluster []job.Attempt) protocol.Result {
	id := j.ID
	var last job.Attempt
	for _, a := range slices.Concat(j.Attempts, inCluster) {
		if a.Attempt >= last.Attempt {
			last = a
		}
	}
	reason := fmt.Sprintf("attempt %d of %d failed: %s", last.Attempt, d.maxAttempts, failure(last))
	var result store.DeadLetterResult
	if err := d.retry(ctx, log, "failing the job", func() (err error) {
		result, err = d.store.DeadLetter(ctx, id, reason)
		return err
	}); err != nil {
		return d.unavailable(log, err)
	}
	if result == store.DeadLetterFailed {
		d.finished(j.Function, job.Failed)
	}
	log.Info("job failed: no attempt left", "reason", reason)
	return cloudevents.ResultACK
}

// exists reports whether attempt n is one the runner knows of: a delivery
// that adopts it needs no slot, since the attempt already runs.
func exists(attempts []job.Attempt, n int) bool {
	for _, a := range attempts {
		if a.Attempt == n {
			return true
		}
	}
	return false
}

// canceled reports whether job id is canceled. An error reads as not
// canceled: the delivery then answers as it would have.
func (d *Dispatcher) canceled(ctx context.Context, id string) bool {
	st, err := d.store.Status(ctx, id)
	return err == nil && st == job.Canceled
}

// finish records a finished attempt and answers for it.
func (d *Dispatcher) finish(ctx context.Context, log *slog.Logger, id string, a job.Attempt) protocol.Result {
	if err := d.retry(ctx, log, "recording the attempt", func() error { return d.Record(ctx, id, a) }); err != nil {
		return d.unavailable(log, err)
	}
	if a.Outcome == job.OutcomeSucceeded {
		log.Info("attempt succeeded", "attempt", a.Attempt, "message", a.Message)
		return cloudevents.ResultACK
	}
	log.Info("attempt failed", "attempt", a.Attempt, "exitCode", a.ExitCode, "reason", a.Reason, "message", a.Message)
	// A function exits function.ExitInvalid for a request that can never
	// succeed, such as a function its image lacks: 400 makes the Broker
	// dead-letter it at once instead of retrying.
	if a.ExitCode != nil && *a.ExitCode == function.ExitInvalid {
		return cloudevents.NewHTTPResult(http.StatusBadRequest, "attempt %d can never succeed: %s", a.Attempt, a.Message)
	}
	return cloudevents.NewHTTPResult(http.StatusInternalServerError, "attempt %d failed: %s", a.Attempt, failure(a))
}

func failure(a job.Attempt) string {
	switch {
	case a.Message != "":
		return a.Message
	case a.Reason != "":
		return a.Reason
	}
	return "no message"
}

// unavailable answers an error of the dispatcher's own, not the job's, that
// outlasted retry. 503 makes the Broker deliver again later.
func (d *Dispatcher) unavailable(log *slog.Logger, err error) protocol.Result {
	log.Error("delivery failed", "error", err)
	return cloudevents.NewHTTPResult(http.StatusServiceUnavailable, "%v", err)
}

// request reads the job an event asks for, and checks it against the
// function's declaration.
func (d *Dispatcher) request(e cloudevents.Event) (job.Request, error) {
	req, err := parse(e)
	if err != nil {
		return job.Request{}, err
	}
	return req, d.check(req)
}

// check checks req against its function's declaration.
func (d *Dispatcher) check(req job.Request) error {
	if err := d.functions.Check(req.Function, req.Args); err != nil {
		var unknown *catalog.UnknownError
		if errors.As(err, &unknown) {
			return fmt.Errorf("unknown function %q", req.Function)
		}
		return fmt.Errorf("function %s: %w", req.Function, err)
	}
	return nil
}

// parse reads the job an event asks for, without checking that its
// function exists.
func parse(e cloudevents.Event) (job.Request, error) {
	if err := job.ValidateID(e.ID()); err != nil {
		return job.Request{}, err
	}
	return event.Request(e)
}

// DeadLetter handles an event the Broker gave up on: every retry failed, the
// dispatcher refused it, or a delivery timed out. It fails the job only when
// no attempt is left to wait for: it first records what the cluster shows of
// the latest attempt, so a job whose attempt succeeded is recorded
// succeeded, and a job whose attempt still runs fails only if that attempt
// fails (the reconciler records it). The extensions the Broker adds are read
// when present; some dead letters carry none.
func (d *Dispatcher) DeadLetter(ctx context.Context, e cloudevents.Event) protocol.Result {
	id := e.ID()
	log := d.log.With("job", id, "type", e.Type())
	reason := deadLetterReason(e)
	req, err := parse(e)
	if err != nil {
		// Nothing can be recorded for an event that is not a job; taking
		// it stops the Broker from retrying the dead-letter delivery.
		log.Warn("dead-lettered event is not a job", "error", err, "reason", reason)
		return cloudevents.ResultACK
	}
	var drop func() (bool, error)
	if req.Schedule != "" {
		// A tick of a paused schedule, refused for an unknown function or
		// dead-lettered after 5xx, is dropped here as Receive would have:
		// a paused schedule records no job, not even a failed one.
		log = log.With("schedule", req.Schedule)
		drop = func() (bool, error) { return d.store.DropPausedTick(ctx, id, req.Schedule, event.Paused(e)) }
	}
	return d.deadLetter(ctx, log, id, reason, drop, func() (job.Job, error) {
		j, _, err := d.store.Create(ctx, id, req, "")
		return j, err
	})
}

// deadLetter records a dead letter of job id, which create records unless
// it exists, and which drop, when not nil, may say to drop instead.
func (d *Dispatcher) deadLetter(ctx context.Context, log *slog.Logger, id, reason string, drop func() (bool, error), create func() (job.Job, error)) protocol.Result {
	var (
		result  store.DeadLetterResult
		skipped bool
		j       job.Job
	)
	err := d.retry(ctx, log, "recording the dead letter", func() error {
		if drop != nil {
			var err error
			if skipped, err = drop(); err != nil || skipped {
				return err
			}
		}
		// A job refused before it was ever recorded, such as a schedule
		// tick for an unknown function, still counts as one failed job.
		var err error
		j, err = create()
		if errors.Is(err, store.ErrScheduleDeleted) || errors.Is(err, store.ErrCollision) {
			result = store.DeadLetterIgnored
			return nil
		}
		if err != nil {
			return err
		}
		if j.Status.Terminal() {
			result = store.DeadLetterIgnored
			return nil
		}
		inCluster, err := d.runner.Attempts(ctx, id)
		if err != nil {
			return err
		}
		if len(inCluster) > 0 {
			if err := d.Record(ctx, id, inCluster[len(inCluster)-1]); err != nil {
				return err
			}
		}
		result, err = d.store.DeadLetter(ctx, id, reason)
		return err
	})
	if err != nil {
		// The Broker retries a dead-letter delivery answered 5xx, but only
		// as often as its delivery spec says; past that the job keeps its
		// status until the sweep re-sends its event.
		d.metrics.droppedDeadLetters.Inc()
		log.Error("a dead letter could not be recorded", "reason", reason, "error", err)
		return cloudevents.NewHTTPResult(http.StatusServiceUnavailable, "recording the dead letter: %v", err)
	}
	if skipped {
		log.Info("dead letter of a paused schedule's tick dropped", "reason", reason)
		return cloudevents.ResultACK
	}
	switch result {
	case store.DeadLetterFailed:
		d.finished(j.Function, job.Failed)
		log.Info("job dead-lettered", "reason", reason)
	case store.DeadLetterKept:
		log.Info("job dead-lettered while an attempt runs; that attempt decides", "reason", reason)
	default:
		log.Info("dead letter of a finished job ignored", "reason", reason)
	}
	return cloudevents.ResultACK
}

// deadLetterReason tells why the Broker gave up, from the extensions it adds.
func deadLetterReason(e cloudevents.Event) string {
	ext := e.Extensions()
	code := fmt.Sprint(ext[extErrorCode])
	if ext[extErrorCode] == nil {
		return "dead-lettered"
	}
	reason := "dead-lettered after HTTP " + code
	if data, _ := ext[extErrorData].(string); data != "" {
		if body := strings.TrimSpace(decodeTruncatedBase64(data)); body != "" {
			reason += ": " + body
		}
	}
	return reason
}

// decodeTruncatedBase64 decodes what it can of the Broker's error data,
// which it cuts to a maximum length, possibly mid-quantum.
func decodeTruncatedBase64(s string) string {
	s = s[:len(s)-len(s)%4]
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return string(b)
}
