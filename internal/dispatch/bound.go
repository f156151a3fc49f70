package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// SetBindings gives the dispatcher the bindings whose Triggers deliver to
// its binding routes. Without it those routes answer 404.
func (d *Dispatcher) SetBindings(g binding.Getter) { d.bindings = g }

// ReceiveBound handles one delivery of an event of any type and source
// that binding name selected: it records the event's job, whose ID the
// event's source and id derive, so that the event delivered again or sent
// twice is one job, and runs it as Receive runs any job. The function gets
// the whole event.
func (d *Dispatcher) ReceiveBound(ctx context.Context, name string, e cloudevents.Event) protocol.Result {
	id := event.JobID(name, e.Source(), e.ID())
	log := d.log.With("job", id, "binding", name, "type", e.Type(), "source", e.Source(), "eventId", e.ID())
	b, err := d.binding(ctx, log, name)
	switch {
	case errors.Is(err, binding.ErrNotFound):
		// 404, which the Broker retries before it dead-letters the event.
		log.Warn("an event for a binding that does not exist", "error", err)
		return cloudevents.NewHTTPResult(http.StatusNotFound, "binding %q: %v", name, err)
	case err != nil:
		return d.unavailable(log, err)
	}
	req, ce, err := boundRequest(b, e)
	if err == nil {
		err = d.check(req)
	}
	if err != nil {
		log.Warn("refusing an event that can never become a job", "error", err)
		return cloudevents.NewHTTPResult(http.StatusBadRequest, "%s", err)
	}
	var j job.Job
	err = d.retry(ctx, log, "recording the job", func() (err error) {
		j, _, err = d.store.CreateBound(ctx, id, req, ce)
		if errors.Is(err, store.ErrCollision) {
			return permanent(err)
		}
		return err
	})
	switch {
	case errors.Is(err, store.ErrCollision):
		log.Error("refusing an event whose job ID another event's job holds", "error", err)
		return cloudevents.NewHTTPResult(http.StatusBadRequest, "%s", err)
	case err != nil:
		return d.unavailable(log, err)
	}
	return d.run(ctx, log, id, j, req, ce)
}

// DeadLetterBound handles an event of binding name that the Broker gave up
// on, as DeadLetter does for kjobs' own events. The dead letter of a
// binding that no longer exists records nothing: its events start no job.
func (d *Dispatcher) DeadLetterBound(ctx context.Context, name string, e cloudevents.Event) protocol.Result {
	id := event.JobID(name, e.Source(), e.ID())
	log := d.log.With("job", id, "binding", name, "type", e.Type(), "source", e.Source(), "eventId", e.ID())
	reason := deadLetterReason(e)
	b, err := d.binding(ctx, log, name)
	switch {
	case errors.Is(err, binding.ErrNotFound):
		log.Info("dead letter of an event of a binding that does not exist dropped", "reason", reason)
		return cloudevents.ResultACK
	case err != nil:
		d.metrics.droppedDeadLetters.Inc()
		return d.unavailable(log, err)
	}
	req, ce, err := boundRequest(b, e)
	if err != nil {
		log.Warn("dead-lettered event is not a job", "error", err, "reason", reason)
		return cloudevents.ResultACK
	}
	return d.deadLetter(ctx, log, id, reason, nil, func() (job.Job, error) {
		j, _, err := d.store.CreateBound(ctx, id, req, ce)
		return j, err
	})
}

// binding reads binding name, retrying an error of the store behind it.
// It returns binding.ErrNotFound for a binding that does not exist: not
// yet, for a dispatcher whose cache lags behind a new Trigger, or not any
// more.
func (d *Dispatcher) binding(ctx context.Context, log *slog.Logger, name string) (binding.Binding, error) {
	if d.bindings == nil {
		return binding.Binding{}, fmt.Errorf("this dispatcher serves no bindings: %w", binding.ErrNotFound)
	}
	var b binding.Binding
	err := d.retry(ctx, log, "reading the binding", func() (err error) {
		b, err = d.bindings.Get(ctx, name)
		if errors.Is(err, binding.ErrNotFound) {
			return permanent(err)
		}
		return err
	})
	return b, err
}

// boundRequest returns the job request that binding b makes of event e, and
// e in CloudEvents JSON, which the job's function receives.
func boundRequest(b binding.Binding, e cloudevents.Event) (job.Request, []byte, error) {
	req := job.Request{
		Function: b.Function,
		Binding:  b.Name,
		Event:    &job.EventRef{Source: e.Source(), ID: e.ID(), Type: e.Type()},
	}
	if len(b.Args) > 0 {
		if err := json.Unmarshal(b.Args, &req.Args); err != nil {
			return job.Request{}, nil, fmt.Errorf("binding %s: args: %w", b.Name, err)
		}
	}
	ce, err := json.Marshal(e)
	if err != nil {
		return job.Request{}, nil, fmt.Errorf("encoding the event: %w", err)
	}
	return req, ce, req.Validate()
}
