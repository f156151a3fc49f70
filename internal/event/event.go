// Package event holds the kjobs CloudEvents contract: the event types,
// sources and extensions that the API, the schedules and the dispatcher
// agree on, and the Sender the API and schedules hand events to.
package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/kjobs/kjobs/internal/job"
)

const (
	// TypeRequested asks for a job; its data is a job.Request.
	TypeRequested = "dev.kjobs.job.requested"
	// SourceAPI is the source of the events the API sends.
	SourceAPI = "/kjobs/api"
	// TypePing is the type of a PingSource tick; a schedule's tick keeps it.
	TypePing = "dev.knative.sources.ping"
	// ExtOrigin is the extension a schedule's PingSource sets so that its
	// Trigger selects schedule ticks and no other pings.
	ExtOrigin = "kjobsorigin"
	// OriginSchedule is ExtOrigin's value on schedule ticks.
	OriginSchedule = "schedule"
	// ExtPaused is "true" on the ticks of a paused schedule: its
	// PingSource's ceOverrides carry it while it is paused, so that every
	// tick says which state it was sent in.
	ExtPaused = "kjobspaused"
)

// Sender hands an event to the Broker, or to the local stack's in-process
// delivery. It returns once the event is accepted for delivery, not once a
// job has run. An error that wraps ErrNotSent means the event certainly was
// not accepted; any other error leaves that unknown.
type Sender interface {
	Send(ctx context.Context, e cloudevents.Event) error
}

// ErrNotSent is wrapped by a Sender's error when the event certainly did not
// reach the Broker.
var ErrNotSent = errors.New("event not sent")

// NewRequested returns the dev.kjobs.job.requested event for job id.
func NewRequested(id string, req job.Request) (cloudevents.Event, error) {
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetType(TypeRequested)
	e.SetSource(SourceAPI)
	if err := e.SetData(cloudevents.ApplicationJSON, req); err != nil {
		return e, fmt.Errorf("event.NewRequested: %w", err)
	}
	return e, nil
}

// Known reports whether typ is one of the event types kjobs' Triggers
// deliver to the dispatcher.
func Known(typ string) bool { return typ == TypeRequested || typ == TypePing }

// Paused reports whether e is the tick of a schedule that was paused when
// it was sent.
func Paused(e cloudevents.Event) bool {
	v, _ := e.Extensions()[ExtPaused].(string)
	return v == "true"
}

// Request reads the job request an event carries. It accepts both
// dev.kjobs.job.requested and a schedule's ping. The error says why an
// event can never become a job.
func Request(e cloudevents.Event) (job.Request, error) {
	if !Known(e.Type()) {
		return job.Request{}, fmt.Errorf("event type %q is not %s or %s", e.Type(), TypeRequested, TypePing)
	}
	if e.Type() == TypePing {
		if origin, _ := e.Extensions()[ExtOrigin].(string); origin != OriginSchedule {
			return job.Request{}, fmt.Errorf("ping event without %s=%s is not a kjobs schedule tick", ExtOrigin, OriginSchedule)
		}
	}
	if ct := e.DataContentType(); ct != "" && ct != cloudevents.ApplicationJSON {
		return job.Request{}, fmt.Errorf("data content type %q is not %s", ct, cloudevents.ApplicationJSON)
	}
	var req job.Request
	if err := json.Unmarshal(e.Data(), &req); err != nil {
		return job.Request{}, fmt.Errorf("event data is not a job request: %w", err)
	}
	if req.Function == "" {
		req.Function = job.DefaultFunction
	}
	if err := req.Validate(); err != nil {
		return job.Request{}, err
	}
	return req, nil
}
