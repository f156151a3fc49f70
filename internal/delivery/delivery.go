// Package delivery holds the Triggers' delivery spec and the local stack's
// in-process Broker, which delivers events with that spec through Knative's
// own dispatcher code (knative.dev/eventing/pkg/kncloudevents): the retry
// count, the backoff and the status codes that are retried are Knative's,
// not a second copy that could drift.
package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	"knative.dev/eventing/pkg/eventingtls"
	"knative.dev/eventing/pkg/kncloudevents"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/ptr"

	"github.com/kjobs/kjobs/internal/event"
)

// TriggerSpec is the delivery spec of both kjobs Triggers, as
// config/300-trigger-*.yaml write it: two retries, exponential backoff from
// 2 s (so 2 s, then 4 s), and a request timeout longer than a job may run.
// The dead-letter sink is the dispatcher's /dead-letter.
func TriggerSpec() eventingduckv1.DeliverySpec {
	policy := eventingduckv1.BackoffPolicyExponential
	return eventingduckv1.DeliverySpec{
		Retry:         ptr.Int32(2),
		BackoffPolicy: &policy,
		BackoffDelay:  ptr.String("PT2S"),
		Timeout:       ptr.String("PT10M"),
	}
}

// ErrFull is returned by Send when the local queue is full; the API answers
// 503 and the client may retry.
var ErrFull = fmt.Errorf("delivery queue is full: %w", event.ErrNotSent)

// Options configure a Local broker.
type Options struct {
	// Spec is the delivery spec. Defaults to TriggerSpec().
	Spec *eventingduckv1.DeliverySpec
	// Queue is how many events may wait to be delivered. Defaults to 10000.
	Queue int
	// InFlight is how many deliveries may be waiting for their subscriber
	// at once. Each holds an attempt, so it bounds concurrent attempts too.
	// Defaults to 256.
	InFlight int
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// Local is an in-process Broker with one subscriber and its dead-letter
// sink: what the Triggers do in a cluster, for the local stack.
type Local struct {
	dispatcher *kncloudevents.Dispatcher
	subscriber duckv1.Addressable
	deadLetter duckv1.Addressable
	retry      kncloudevents.RetryConfig
	queue      chan queued
	inFlight   int
	log        *slog.Logger
}

// NewLocal returns a Local broker that delivers to subscriber, and to
// deadLetter when the subscriber gave up.
func NewLocal(subscriber, deadLetter *url.URL, opts Options) (*Local, error) {
	if opts.Spec == nil {
		spec := TriggerSpec()
		opts.Spec = &spec
	}
	if opts.Queue <= 0 {
		opts.Queue = 10000
	}
	if opts.InFlight <= 0 {
		opts.InFlight = 256
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	retry, err := kncloudevents.RetryConfigFromDeliverySpec(*opts.Spec)
	if err != nil {
		return nil, fmt.Errorf("delivery.NewLocal: %w", err)
	}
	return &Local{
		dispatcher: kncloudevents.NewDispatcher(eventingtls.ClientConfig{}, nil),
		subscriber: duckv1.Addressable{URL: (*apis.URL)(subscriber)},
		deadLetter: duckv1.Addressable{URL: (*apis.URL)(deadLetter)},
		retry:      retry,
		queue:      make(chan queued, opts.Queue),
		inFlight:   opts.InFlight,
		log:        opts.Log,
	}, nil
}

// queued is an event waiting for delivery to a subscriber, and to its
// dead-letter sink once the subscriber gave up.
type queued struct {
	event                  cloudevents.Event
	subscriber, deadLetter duckv1.Addressable
}

// Send queues an event for delivery to the subscriber and returns without
// waiting for it, as a Broker's ingress does.
func (l *Local) Send(_ context.Context, e cloudevents.Event) error {
	return l.enqueue(queued{e, l.subscriber, l.deadLetter})
}

// SendTo queues an event for delivery to another subscriber and its
// dead-letter sink, with the same delivery spec: what a Broker does for
// each further Trigger that selects the event.
func (l *Local) SendTo(_ context.Context, e cloudevents.Event, subscriber, deadLetter *url.URL) error {
	return l.enqueue(queued{e, duckv1.Addressable{URL: (*apis.URL)(subscriber)}, duckv1.Addressable{URL: (*apis.URL)(deadLetter)}})
}

func (l *Local) enqueue(q queued) error {
	select {
	case l.queue <- q:
		return nil
	default:
		return ErrFull
	}
}

// Run delivers queued events until ctx is done, then waits for the
// deliveries in flight to end.
func (l *Local) Run(ctx context.Context) error {
	sem := make(chan struct{}, l.inFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case q := <-l.queue:
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Go(func() {
				defer func() { <-sem }()
				l.deliver(ctx, q)
			})
		}
	}
}

func (l *Local) deliver(ctx context.Context, q queued) {
	e := q.event
	info, err := l.dispatcher.SendEvent(ctx, e, q.subscriber,
		kncloudevents.WithRetryConfig(&l.retry),
		kncloudevents.WithDeadLetterSink(&q.deadLetter))
	if err != nil {
		l.log.Error("event lost: neither the subscriber nor the dead-letter sink took it", "id", e.ID(), "error", err)
		return
	}
	l.log.Debug("event delivered", "id", e.ID(), "status", info.ResponseCode)
}
