// Package dataplane tests Knative Eventing's real data plane that the
// control plane `make test` starts runs as kjobs expects: a Broker turns
// Ready and its Triggers deliver to URI subscribers, with Knative's retries,
// backoff and dead letters; the ingress answers a sender only after the
// delivery unless the Broker was created with the async-handler annotation;
// and a data-plane component killed and started again goes on delivering.
//
// Every test runs in its own namespace. The tests that stop components do
// not call t.Parallel, so that they run alone, before the parallel ones.
package dataplane

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"k8s.io/client-go/rest"

	"github.com/kjobs/kjobs/internal/testenv"
)

// deliveryTimeout bounds the wait for an event that should arrive; one
// arrives in well under a second on a quiet machine.
const deliveryTimeout = 30 * time.Second

// setup returns the control plane's client configuration, a namespace of
// the test's own and the data plane.
func setup(t *testing.T) (*rest.Config, string, *testenv.Eventing) {
	t.Helper()
	cfg := testenv.Kube(t)
	eventing := testenv.DataPlane(t)
	return cfg, testenv.Namespace(t, cfg, nil), eventing
}

// delivery is one request a sink received.
type delivery struct {
	at     time.Time
	host   string // the Host header
	path   string
	header http.Header
	body   string
}

// sink is an HTTP server on 127.0.0.1 that records every request and
// answers each with status after delay.
type sink struct {
	URL string
	got chan delivery
}

func newSink(t *testing.T, status int, delay time.Duration) *sink {
	t.Helper()
	s := &sink{got: make(chan delivery, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		s.got <- delivery{at: at, host: r.Host, path: r.URL.Path, header: r.Header.Clone(), body: string(body)}
		time.Sleep(delay)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// next returns the next request the sink receives, or fails the test.
func (s *sink) next(t *testing.T, what string) delivery {
	t.Helper()
	select {
	case d := <-s.got:
		return d
	case <-time.After(deliveryTimeout):
		t.Fatalf("%s: nothing arrived in %s", what, deliveryTimeout)
		return delivery{}
	}
}

// none fails the test if the sink receives a request within d.
func (s *sink) none(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case got := <-s.got:
		t.Errorf("%s: unexpected delivery of event %s", what, got.header.Get("Ce-Id"))
	case <-time.After(d):
	}
}

// event is a binary-mode CloudEvent.
type event struct {
	id, typ, body string
}

func newEvent(typ string) event {
	return event{id: uuid.NewString(), typ: typ, body: fmt.Sprintf(`{"test":%q}`, typ)}
}

// sendClient never goes through a proxy of the environment; the ingress
// answers a synchronous send after the whole delivery.
var sendClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}}

// send POSTs e to url as a sender of kjobs does, and returns the ingress's
// status and how long it took to answer.
func send(t *testing.T, url string, e event) (int, time.Duration) {
	t.Helper()
	status, took, err := trySend(url, e)
	if err != nil {
		t.Fatal(err)
	}
	return status, took
}

// sendLater is send in the background: it returns at once, and the
// ingress's status, or 0 after an error, on the channel.
func sendLater(t *testing.T, url string, e event) <-chan int {
	t.Helper()
	sent := make(chan int, 1)
	done := make(chan struct{})
	t.Cleanup(func() { <-done }) // it reports to t
	go func() {
		defer close(done)
		status, _, err := trySend(url, e)
		if err != nil {
			t.Error(err)
		}
		sent <- status
	}()
	return sent
}

func trySend(url string, e event) (int, time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(e.body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", e.id)
	req.Header.Set("Ce-Source", "kjobs.dev/test/dataplane")
	req.Header.Set("Ce-Type", e.typ)
	req.Header.Set("Content-Type", "application/json")
	begin := time.Now()
	resp, err := sendClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("sending event %s to %s: %v", e.id, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(begin), nil
}

// checkEvent fails the test unless d carries e.
func checkEvent(t *testing.T, d delivery, e event) {
	t.Helper()
	if got := d.header.Get("Ce-Id"); got != e.id {
		t.Errorf("delivered ce-id %q, want %q", got, e.id)
	}
	if got := d.header.Get("Ce-Type"); got != e.typ {
		t.Errorf("delivered ce-type %q, want %q", got, e.typ)
	}
	if d.body != e.body {
		t.Errorf("delivered body %q, want %q", d.body, e.body)
	}
}

func is2xx(status int) bool { return status >= 200 && status < 300 }
