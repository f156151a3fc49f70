package dataplane

import (
	"net/http"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/testenv"
)

// TestFilterRestart kills the Broker filter and starts it again: an event
// sent while it is down is delivered once it is back (the channel retries
// its delivery to the filter with the Broker's backoff), and an event sent
// after the restart is delivered.
//
// Not parallel: the filter serves every test's Triggers.
func TestFilterRestart(t *testing.T) {
	cfg, ns, eventing := setup(t)
	testenv.Broker(t, cfg, ns, "default", nil)
	subscriber := newSink(t, http.StatusOK, 0)
	testenv.Trigger(t, cfg, ns, "default", "restart", subscriber.URL, nil)
	url := eventing.BrokerURL(ns, "default")

	before := newEvent("dev.kjobs.test.before")
	if status, _ := send(t, url, before); !is2xx(status) {
		t.Fatalf("the ingress answered %d, want 2xx", status)
	}
	checkEvent(t, subscriber.next(t, "the event before the restart"), before)

	eventing.Stop(t, testenv.BrokerFilter)
	during := newEvent("dev.kjobs.test.during")
	sent := sendLater(t, url, during)
	subscriber.none(t, 2*time.Second, "with the filter down")
	eventing.Start(t, testenv.BrokerFilter)
	checkEvent(t, subscriber.next(t, "the event sent while the filter was down"), during)
	if status := <-sent; !is2xx(status) {
		t.Errorf("the ingress answered %d for the event sent while the filter was down, want 2xx", status)
	}

	after := newEvent("dev.kjobs.test.after")
	if status, _ := send(t, url, after); !is2xx(status) {
		t.Fatalf("the ingress answered %d, want 2xx", status)
	}
	checkEvent(t, subscriber.next(t, "the event after the restart"), after)
}

// TestComponentRestarts kills each other component of the data plane and
// starts it again; events still flow through a Trigger created after the
// restart, which the controllers must reconcile.
//
// Not parallel: every test's events pass through these components.
func TestComponentRestarts(t *testing.T) {
	for _, component := range []string{
		testenv.BrokerIngress, testenv.ChannelDispatcher, testenv.EventingControllers, testenv.PingSourceAdapter,
	} {
		t.Run(component, func(t *testing.T) {
			cfg, ns, eventing := setup(t)
			testenv.Broker(t, cfg, ns, "default", nil)
			eventing.Stop(t, component)
			eventing.Start(t, component)
			subscriber := newSink(t, http.StatusOK, 0)
			testenv.Trigger(t, cfg, ns, "default", "after", subscriber.URL, nil)
			e := newEvent("dev.kjobs.test.restarted")
			if status, _ := send(t, eventing.BrokerURL(ns, "default"), e); !is2xx(status) {
				t.Fatalf("the ingress answered %d, want 2xx", status)
			}
			checkEvent(t, subscriber.next(t, "the event after "+component+" restarted"), e)
		})
	}
}
