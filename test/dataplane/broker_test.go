package dataplane

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/ptr"

	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/testenv"
)

// TestTriggerDelivers sends an event to a Broker's ingress: the Trigger
// whose filter it passes delivers it to its URI subscriber, the other
// Trigger does not.
func TestTriggerDelivers(t *testing.T) {
	t.Parallel()
	cfg, ns, eventing := setup(t)
	b := testenv.Broker(t, cfg, ns, "default", nil)
	if b.Status.Address.URL == nil {
		t.Fatal("the Ready Broker has no address")
	}
	want := "http://broker-ingress.knative-eventing.svc.cluster.local/" + ns + "/default"
	if got := b.Status.Address.URL.String(); got != want {
		t.Errorf("Broker address %s, want %s", got, want)
	}
	subscriber := newSink(t, http.StatusOK, 0)
	other := newSink(t, http.StatusOK, 0)
	testenv.Trigger(t, cfg, ns, "default", "matching", subscriber.URL, &testenv.TriggerOptions{
		Filter: map[string]string{"type": "dev.kjobs.test.delivered"},
	})
	testenv.Trigger(t, cfg, ns, "default", "other", other.URL, &testenv.TriggerOptions{
		Filter: map[string]string{"type": "dev.kjobs.test.other"},
	})

	e := newEvent("dev.kjobs.test.delivered")
	status, took := send(t, eventing.BrokerURL(ns, "default"), e)
	if !is2xx(status) {
		t.Fatalf("the ingress answered %d, want 2xx", status)
	}
	t.Logf("the ingress answered %d after %s", status, took)
	checkEvent(t, subscriber.next(t, "the matching Trigger's subscriber"), e)
	other.none(t, time.Second, "the other Trigger's subscriber")
}

// TestRetriesThenDeadLetter: a subscriber that always answers 500 gets the
// event 1 + retry times, with exponential backoff (backoffDelay, then
// twice that), and then the dead-letter sink gets it with the error's
// extensions.
func TestRetriesThenDeadLetter(t *testing.T) {
	t.Parallel()
	cfg, ns, eventing := setup(t)
	testenv.Broker(t, cfg, ns, "default", nil)
	subscriber := newSink(t, http.StatusInternalServerError, 0)
	deadLetter := newSink(t, http.StatusOK, 0)
	dls, err := apis.ParseURL(deadLetter.URL)
	if err != nil {
		t.Fatal(err)
	}
	policy := eventingduckv1.BackoffPolicyExponential
	testenv.Trigger(t, cfg, ns, "default", "failing", subscriber.URL, &testenv.TriggerOptions{
		Delivery: &eventingduckv1.DeliverySpec{
			Retry:          ptr.Int32(2),
			BackoffPolicy:  &policy,
			BackoffDelay:   ptr.String("PT2S"),
			DeadLetterSink: &duckv1.Destination{URI: dls},
		},
	})

	e := newEvent("dev.kjobs.test.failing")
	sent := sendLater(t, eventing.BrokerURL(ns, "default"), e)
	var attempts []delivery
	for i := range 3 {
		d := subscriber.next(t, fmt.Sprintf("attempt %d", i+1))
		checkEvent(t, d, e)
		attempts = append(attempts, d)
	}
	dead := deadLetter.next(t, "the dead-letter sink")
	checkEvent(t, dead, e)
	if got := dead.header.Get("Ce-Knativeerrorcode"); got != "500" {
		t.Errorf("dead letter's ce-knativeerrorcode %q, want 500", got)
	}
	if got := dead.header.Get("Ce-Knativeerrordest"); got != subscriber.URL {
		t.Errorf("dead letter's ce-knativeerrordest %q, want the subscriber %s", got, subscriber.URL)
	}
	subscriber.none(t, time.Second, "the subscriber after the dead letter")

	// Exponential: backoffDelay × 2^(retry-1). Knative waits at least
	// that; a loaded machine may add to it.
	gaps := []time.Duration{attempts[1].at.Sub(attempts[0].at), attempts[2].at.Sub(attempts[1].at)}
	t.Logf("attempts %s and %s apart, dead letter %s after the last", gaps[0], gaps[1], dead.at.Sub(attempts[2].at))
	for i, r := range []struct{ min, max time.Duration }{
		{1500 * time.Millisecond, 3500 * time.Millisecond},
		{3500 * time.Millisecond, 6500 * time.Millisecond},
	} {
		if gaps[i] < r.min || gaps[i] > r.max {
			t.Errorf("attempt %d came %s after attempt %d, want %s-%s", i+2, gaps[i], i+1, r.min, r.max)
		}
	}
	select {
	case status := <-sent:
		// The delivery ended in a dead letter, which is a success for
		// the channel.
		if !is2xx(status) {
			t.Errorf("the ingress answered %d, want 2xx", status)
		}
	case <-time.After(deliveryTimeout):
		t.Error("the ingress did not answer the sender")
	}
}

// TestIngressWaitsForDelivery: the ingress answers a sender only once the
// subscriber has answered, unless the Broker was created with
// messaging.knative.dev/async-handler: "true" (which is copied to its
// channel); then it answers 202 at once and delivers all the same.
func TestIngressWaitsForDelivery(t *testing.T) {
	t.Parallel()
	const sleep = 3 * time.Second
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		async       bool
	}{
		{name: "default"},
		{name: "async-handler", annotations: map[string]string{testenv.AsyncHandlerAnnotation: "true"}, async: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, ns, eventing := setup(t)
			testenv.Broker(t, cfg, ns, "default", tc.annotations)
			subscriber := newSink(t, http.StatusOK, sleep)
			testenv.Trigger(t, cfg, ns, "default", "slow", subscriber.URL, nil)

			e := newEvent("dev.kjobs.test.slow")
			status, took := send(t, eventing.BrokerURL(ns, "default"), e)
			t.Logf("the ingress answered %d after %s", status, took)
			if !is2xx(status) {
				t.Errorf("the ingress answered %d, want 2xx", status)
			}
			d := subscriber.next(t, "the slow subscriber")
			checkEvent(t, d, e)
			if tc.async {
				if status != http.StatusAccepted {
					t.Errorf("the ingress answered %d, want 202", status)
				}
				// Measured: 3 ms.
				if took > 1500*time.Millisecond {
					t.Errorf("the ingress answered after %s, want at once", took)
				}
				return
			}
			if took < sleep {
				t.Errorf("the ingress answered after %s, before the subscriber did (it sleeps %s)", took, sleep)
			}
		})
	}
}
