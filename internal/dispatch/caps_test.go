package dispatch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjobs/kjobs/internal/delivery"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// handedOff waits until the Dispatcher has sent the event of job id again.
func handedOff(t *testing.T, s *sent, id string) cloudevents.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, e := range s.events {
			if e.ID() == id {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the event of job %s was not handed off within 10 s", id)
	return cloudevents.Event{}
}

// TestReceiveWaitsBehindCap checks the hand-off: a delivery over the cap is
// answered 202 at once, without a body (a Broker's filter takes a body for
// a reply event), and the job's event is sent again when a slot frees; that
// delivery runs it, with no retry spent.
func TestReceiveWaitsBehindCap(t *testing.T) {
	d, st := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := st.SetCaps(ctx, store.Caps{Functions: map[string]int{"sleep": 1}}); err != nil {
		t.Fatal(err)
	}
	broker := &sent{}
	go func() { _ = d.HandOff(ctx, broker) }()
	go func() { _ = d.Reconcile(ctx) }()

	first := requested(t, `{"function":"sleep","args":{"seconds":"1"}}`)
	second := requested(t, `{"function":"sleep","args":{"seconds":"0"}}`)
	done := make(chan int, 1)
	go func() { done <- status(t, d.Receive(ctx, first)) }()
	waitStatus(t, st, first.ID(), job.Running)

	srv := httptest.NewServer(d.Handler(prometheus.NewRegistry()))
	defer srv.Close()
	resp, body := deliver(t, srv.URL, second)
	if resp.StatusCode != http.StatusAccepted || body != "" {
		t.Fatalf("delivery over the cap = %d %q, want 202 without a body", resp.StatusCode, body)
	}
	waitStatus(t, st, second.ID(), job.Waiting)

	if got := <-done; got != http.StatusOK {
		t.Fatalf("first job's delivery = %d, want 200", got)
	}
	again := handedOff(t, broker, second.ID())
	if got := status(t, d.Receive(ctx, again)); got != http.StatusOK {
		t.Errorf("the handed-off delivery = %d, want 200", got)
	}
	j := waitStatus(t, st, second.ID(), job.Succeeded)
	if len(j.Attempts) != 1 {
		t.Errorf("%d attempts, want 1: waiting spends no retry", len(j.Attempts))
	}
}

func deliver(t *testing.T, url string, e cloudevents.Event) (*http.Response, string) {
	t.Helper()
	data, _ := e.MarshalJSON()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp, b.String()
}

// TestCancelStopsAttempt cancels a running job: its child is stopped, the
// held delivery is answered 200 so that the Broker does not retry, and the
// job ends canceled with its stopped attempt on record.
func TestCancelStopsAttempt(t *testing.T) {
	d, st := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Cancels(ctx) }()
	go func() { _ = d.Reconcile(ctx) }()

	e := requested(t, `{"function":"sleep","args":{"seconds":"60"}}`)
	done := make(chan int, 1)
	go func() { done <- status(t, d.Receive(ctx, e)) }()
	waitStatus(t, st, e.ID(), job.Running)
	if ok, err := st.Cancel(ctx, e.ID()); !ok || err != nil {
		t.Fatalf("Cancel = %v, %v", ok, err)
	}
	select {
	case got := <-done:
		if got != http.StatusOK {
			t.Errorf("held delivery = %d, want 200", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the held delivery was not answered within 15 s of the cancel")
	}
	if got := status(t, d.Receive(ctx, e)); got != http.StatusOK {
		t.Errorf("a redelivery = %d, want 200", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := st.Get(ctx, e.ID())
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == job.Canceled && len(j.Attempts) == 1 && j.Attempts[0].Outcome == job.OutcomeFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job = %s with %+v; want canceled with one stopped attempt", j.Status, j.Attempts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := st.Stats(ctx); st.Canceled != 1 || st.Running != 0 || st.Retries != 0 {
		t.Errorf("stats = %+v; want canceled 1", st)
	}
}

// TestCancelWaitingJob cancels a job that waits behind a cap: it never
// starts, and a later delivery of it is answered 200 with nothing run.
func TestCancelWaitingJob(t *testing.T) {
	d, st := setup(t)
	ctx := context.Background()
	if err := st.SetCaps(ctx, store.Caps{Install: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Create(ctx, "holder", job.Request{Function: "sleep"}, ""); err != nil {
		t.Fatal(err)
	}
	e := requested(t, `{"function":"echo"}`)
	if got := status(t, d.Receive(ctx, e)); got != http.StatusAccepted {
		t.Fatalf("delivery over the cap = %d, want 202", got)
	}
	if _, err := st.Cancel(ctx, e.ID()); err != nil {
		t.Fatal(err)
	}
	if got := status(t, d.Receive(ctx, e)); got != http.StatusOK {
		t.Errorf("delivery of a canceled job = %d, want 200", got)
	}
	j, err := st.Get(ctx, e.ID())
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Canceled || len(j.Attempts) != 0 {
		t.Errorf("job = %s with %d attempts, want canceled with none", j.Status, len(j.Attempts))
	}
}

// TestMaxAttemptsMatchesTriggers keeps the dispatcher's default from
// drifting from the Triggers' delivery spec, which make run applies.
func TestMaxAttemptsMatchesTriggers(t *testing.T) {
	if want := int(*delivery.TriggerSpec().Retry) + 1; DefaultMaxAttempts != want {
		t.Errorf("DefaultMaxAttempts = %d, want the Triggers' retry + 1 = %d", DefaultMaxAttempts, want)
	}
}

// TestNoAttemptPastTheLast delivers a job whose three attempts failed once
// more, as a hand-off or the sweep does with a new round of the Broker's
// retries: the job fails, with its last attempt's message, and no fourth
// attempt starts.
func TestNoAttemptPastTheLast(t *testing.T) {
	d, st := setup(t)
	ctx := context.Background()
	e := requested(t, `{"function":"fail","args":{"message":"boom"}}`)
	for n := 1; n <= DefaultMaxAttempts; n++ {
		if got := status(t, d.Receive(ctx, e)); got != http.StatusInternalServerError {
			t.Fatalf("delivery %d = %d, want 500", n, got)
		}
	}
	if got := status(t, d.Receive(ctx, e)); got != http.StatusOK {
		t.Errorf("a delivery past the last attempt = %d, want 200", got)
	}
	j, err := st.Get(ctx, e.ID())
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Failed || len(j.Attempts) != DefaultMaxAttempts || j.Error != "attempt 3 of 3 failed: boom" {
		t.Errorf("job = %s with %d attempts, error %q; want failed after 3, attempt 3 of 3 failed: boom", j.Status, len(j.Attempts), j.Error)
	}
}
