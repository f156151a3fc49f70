package dispatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
)

// bindings is a binding.Getter over a map, for the dispatcher's logic; the
// stores behind the real ones are tested in their own packages and through
// Knative's data plane in test/knative.
type bindings map[string]binding.Binding

func (m bindings) Get(_ context.Context, name string) (binding.Binding, error) {
	b, ok := m[name]
	if !ok {
		return binding.Binding{}, binding.ErrNotFound
	}
	return b, nil
}

// s3Event is shaped like the object-created event of an S3 source, with an
// id that is no DNS label.
func s3Event(t *testing.T, id string) cloudevents.Event {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetType("com.amazonaws.s3.object-created")
	e.SetSource("arn:aws:s3:::photos")
	e.SetSubject("cat.png")
	if err := e.SetData(cloudevents.ApplicationJSON, map[string]string{"key": "cat.png"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func boundServer(t *testing.T) (*Dispatcher, *httptest.Server) {
	t.Helper()
	d, _ := setup(t)
	d.SetBindings(bindings{
		"uploads": {Name: "uploads", Function: "echo", Args: []byte(`{"bucket":"photos"}`)},
		"broken":  {Name: "broken", Function: "fail"},
	})
	srv := httptest.NewServer(d.Handler(prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	return d, srv
}

// TestReceiveBound delivers one event of a foreign type five times on a
// binding's route: it is one job, run once, with the binding's function
// and args, that names the event it came from.
func TestReceiveBound(t *testing.T) {
	d, srv := boundServer(t)
	e := s3Event(t, "3f1c/2026-12-01T10:00:00Z#17")
	for i := range 5 {
		if resp, body := deliver(t, srv.URL+binding.SubscriberPath("uploads"), e); resp.StatusCode != http.StatusOK {
			t.Fatalf("delivery %d answered %d: %s", i+1, resp.StatusCode, body)
		}
	}
	id := event.JobID("uploads", e.Source(), e.ID())
	j, err := d.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Succeeded || len(j.Attempts) != 1 || j.Function != "echo" || j.Args["bucket"] != "photos" {
		t.Errorf("job %+v; want echo with the binding's args, succeeded in one attempt", j)
	}
	want := job.EventRef{Source: e.Source(), ID: e.ID(), Type: e.Type()}
	if j.Binding != "uploads" || j.Event == nil || *j.Event != want {
		t.Errorf("job names binding %q, event %+v; want uploads, %+v", j.Binding, j.Event, want)
	}
	checkStats(t, d.store, job.Stats{Succeeded: 1})
}

// TestBoundRefuses checks what a binding's route refuses, and that it then
// records nothing: an unknown binding is 404, which the Broker retries in
// case the dispatcher's cache lags behind a new Trigger, and its dead
// letter is taken and dropped.
func TestBoundRefuses(t *testing.T) {
	d, srv := boundServer(t)
	e := s3Event(t, "1")
	for _, tc := range []struct {
		path string
		want int
	}{
		{binding.SubscriberPath("gone"), http.StatusNotFound},
		{binding.DeadLetterPath("gone"), http.StatusOK},
	} {
		if resp, body := deliver(t, srv.URL+tc.path, e); resp.StatusCode != tc.want {
			t.Errorf("%s answered %d (%s), want %d", tc.path, resp.StatusCode, body, tc.want)
		}
	}
	checkStats(t, d.store, job.Stats{})
}

// TestDeadLetterBound checks that the dead letter of a bound event fails
// its job, recorded under the same derived ID, once.
func TestDeadLetterBound(t *testing.T) {
	d, srv := boundServer(t)
	e := s3Event(t, "2")
	for range 3 {
		if resp, body := deliver(t, srv.URL+binding.SubscriberPath("broken"), e); resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("delivery of a failing function answered %d: %s", resp.StatusCode, body)
		}
	}
	dl := e.Clone()
	dl.SetExtension(extErrorCode, "500")
	for range 2 {
		if resp, body := deliver(t, srv.URL+binding.DeadLetterPath("broken"), dl); resp.StatusCode != http.StatusOK {
			t.Fatalf("dead letter answered %d: %s", resp.StatusCode, body)
		}
	}
	j := waitStatus(t, d.store, event.JobID("broken", e.Source(), e.ID()), job.Failed)
	if len(j.Attempts) != 3 {
		t.Errorf("%d attempts, want 3", len(j.Attempts))
	}
	checkStats(t, d.store, job.Stats{Failed: 1, Retries: 2})
}

// TestResendBound checks that a bound job whose event was lost, which the
// sweep or a hand-off sends again as a job request, still gives its
// function the event that started it.
func TestResendBound(t *testing.T) {
	d, _ := boundServer(t)
	ctx := context.Background()
	e := s3Event(t, "lost")
	b := binding.Binding{Name: "uploads", Function: "echo"}
	req, ce, err := boundRequest(b, e)
	if err != nil {
		t.Fatal(err)
	}
	id := event.JobID("uploads", e.Source(), e.ID())
	j, _, err := d.store.CreateBound(ctx, id, req, ce)
	if err != nil {
		t.Fatal(err)
	}
	var s sent
	if err := resend(ctx, &s, j); err != nil {
		t.Fatal(err)
	}
	if res := d.Receive(ctx, s.events[0]); status(t, res) != http.StatusOK {
		t.Fatalf("the re-sent request answered %v", res)
	}
	got := waitStatus(t, d.store, id, job.Succeeded)
	if msg := got.Attempts[0].Message; !strings.Contains(msg, `"id":"lost"`) || !strings.Contains(msg, `"data":{"key":"cat.png"}`) {
		t.Errorf("echo was given %s, want the job's event", msg)
	}
}
