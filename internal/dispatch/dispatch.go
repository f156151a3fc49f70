// Package dispatch turns one delivery of a job's event into one attempt of
// the job: it derives the attempt from the runner's record of earlier ones,
// starts or adopts it, waits for it and answers the Broker with a status
// code its delivery spec understands. Its dead-letter path marks a job
// failed for good.
package dispatch

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/processor/function"
	"github.com/kjobs/kjobs/processor/run"
)

// Extensions the Broker sets on an event it sends to a dead-letter sink.
const (
	extErrorCode = "knativeerrorcode"
	extErrorData = "knativeerrordata"
)

// Dispatcher handles deliveries of job events.
type Dispatcher struct {
	store  *store.Store
	runner runner.Runner
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Dispatcher that records jobs in s and runs them with r.
func New(s *store.Store, r runner.Runner, log *slog.Logger) *Dispatcher {
	return &Dispatcher{store: s, runner: r, log: log, now: time.Now}
}

// Receive handles one delivery of a job's event. It answers 2xx when the
// attempt succeeded, 5xx when it failed (the Broker retries with backoff)
// and 400 for an event that can never succeed (the Broker dead-letters it).
func (d *Dispatcher) Receive(ctx context.Context, e cloudevents.Event) protocol.Result {
	id := e.ID()
	log := d.log.With("job", id, "type", e.Type())
	req, err := request(e)
	if err != nil {
		log.Warn("refusing an event that can never become a job", "error", err)
		return cloudevents.NewHTTPResult(http.StatusBadRequest, "%s", err)
	}
	j, _, err := d.store.Create(ctx, id, req, "")
	if err != nil {
		return d.unavailable(log, err)
	}
	if j.Status.Terminal() {
		// Only a redelivery racing the dead-letter sink, or a duplicate
		// tick, gets here; the job has its outcome and is not run again.
		log.Info("job already finished", "status", j.Status)
		return cloudevents.ResultACK
	}

	attempts, err := d.runner.Attempts(ctx, id)
	if err != nil {
		return d.unavailable(log, err)
	}
	n := 1
	if len(attempts) > 0 {
		last := attempts[len(attempts)-1]
		switch last.Outcome {
		case job.OutcomeSucceeded:
			return d.finish(ctx, log, id, last)
		case job.OutcomeFailed:
			n = last.Attempt + 1
		default:
			n = last.Attempt
		}
	}
	log = log.With("attempt", n)
	if _, err := d.store.Start(ctx, id, job.Attempt{
		Attempt: n, Job: runner.Name(id, n), StartedAt: d.now().UTC(), Outcome: job.OutcomeRunning,
	}); err != nil {
		return d.unavailable(log, err)
	}
	if _, err := d.runner.Start(ctx, runner.Spec{JobID: id, Attempt: n, Function: req.Function, Args: req.Args}); err != nil {
		return d.unavailable(log, err)
	}
	a, err := d.runner.Wait(ctx, id, n)
	if err != nil {
		// Most likely the Broker's delivery timeout ended the request. The
		// attempt goes on; the redelivery adopts it.
		log.Warn("stopped waiting for the attempt", "error", err)
		return cloudevents.NewHTTPResult(http.StatusServiceUnavailable, "waiting for attempt %d: %v", n, err)
	}
	return d.finish(ctx, log, id, a)
}

// finish records a finished attempt and answers for it.
func (d *Dispatcher) finish(ctx context.Context, log *slog.Logger, id string, a job.Attempt) protocol.Result {
	if _, err := d.store.Finish(ctx, id, a); err != nil && !errors.Is(err, store.ErrTransition) {
		return d.unavailable(log, err)
	}
	if a.Outcome == job.OutcomeSucceeded {
		log.Info("attempt succeeded", "attempt", a.Attempt, "message", a.Message)
		return cloudevents.ResultACK
	}
	log.Info("attempt failed", "attempt", a.Attempt, "exitCode", a.ExitCode, "reason", a.Reason, "message", a.Message)
	// The processor exits run.ExitInvalid for a request that can never
	// succeed, such as a function its image lacks: 400 makes the Broker
	// dead-letter it at once instead of retrying.
	if a.ExitCode != nil && *a.ExitCode == run.ExitInvalid {
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

// unavailable answers an error of the dispatcher's own, not the job's. 503
// makes the Broker retry the delivery, which is right for Redis or the API
// server being briefly away.
func (d *Dispatcher) unavailable(log *slog.Logger, err error) protocol.Result {
	log.Error("delivery failed", "error", err)
	return cloudevents.NewHTTPResult(http.StatusServiceUnavailable, "%v", err)
}

// request reads and checks the job an event asks for.
func request(e cloudevents.Event) (job.Request, error) {
	req, err := parse(e)
	if err != nil {
		return job.Request{}, err
	}
	fn, ok := function.Lookup(req.Function)
	if !ok {
		return job.Request{}, fmt.Errorf("unknown function %q", req.Function)
	}
	if err := fn.Check(req.Args); err != nil {
		return job.Request{}, fmt.Errorf("function %s: %w", req.Function, err)
	}
	return req, nil
}

// parse reads the job an event asks for, without checking that its
// function exists.
func parse(e cloudevents.Event) (job.Request, error) {
	if err := job.ValidateID(e.ID()); err != nil {
		return job.Request{}, err
	}
	return event.Request(e)
}

// DeadLetter handles an event the Broker gave up on: every retry failed, or
// the dispatcher refused it. The job is marked failed for good, with the
// last answer the Broker got as its error.
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
	// A job refused before it was ever recorded, such as a schedule tick
	// for an unknown function, still counts as one failed job.
	if _, _, err := d.store.Create(ctx, id, req, ""); err != nil {
		return d.unavailable(log, err)
	}
	moved, err := d.store.Fail(ctx, id, reason)
	if err != nil {
		return d.unavailable(log, err)
	}
	log.Info("job dead-lettered", "reason", reason, "moved", moved)
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
