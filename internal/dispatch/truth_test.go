package dispatch

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner/local"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

func TestNext(t *testing.T) {
	running := func(n int) job.Attempt { return job.Attempt{Attempt: n, Outcome: job.OutcomeRunning} }
	failed := func(n int) job.Attempt { return job.Attempt{Attempt: n, Outcome: job.OutcomeFailed} }
	succeeded := func(n int) job.Attempt { return job.Attempt{Attempt: n, Outcome: job.OutcomeSucceeded} }
	tests := []struct {
		name      string
		stored    []job.Attempt
		inCluster []job.Attempt
		want      int
		done      bool
	}{
		{"first delivery", nil, nil, 1, false},
		{"attempt running: adopt it", []job.Attempt{running(1)}, []job.Attempt{running(1)}, 1, false},
		{"attempt failed: the next one", []job.Attempt{failed(1)}, []job.Attempt{failed(1)}, 2, false},
		{"attempt succeeded: answer again", []job.Attempt{succeeded(2)}, []job.Attempt{failed(1), succeeded(2)}, 2, true},
		{"the cluster knows the outcome before the store", []job.Attempt{running(2)}, []job.Attempt{failed(1), failed(2)}, 3, false},
		{"failed Jobs deleted: number on", []job.Attempt{failed(1), failed(2)}, nil, 3, false},
		{"succeeded Job deleted: answer again", []job.Attempt{failed(1), succeeded(2)}, nil, 2, true},
		{"Job not created yet, or cached late: start the same attempt", []job.Attempt{failed(1), running(2)}, []job.Attempt{failed(1)}, 2, false},
		{"a Job the store never saw start", nil, []job.Attempt{running(1)}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, done := next(tc.stored, tc.inCluster)
			if n != tc.want || (done != nil) != tc.done {
				t.Errorf("next = %d, done %v; want %d, done %v", n, done != nil, tc.want, tc.done)
			}
		})
	}
}

// cut returns a context that ends after d, as a Broker's delivery that
// times out, or a channel that restarts, ends a held request.
func cut(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitStatus(t *testing.T, st *store.Store, id string, want job.Status) job.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := st.Get(context.Background(), id)
		if err == nil && j.Status == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s (%v), want %s", id, j.Status, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkStats(t *testing.T, st *store.Store, want job.Stats) {
	t.Helper()
	got, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// counts are the dispatcher's metrics of one function's jobs.
type counts struct {
	Succeeded, Failed                 float64 // kjobs_jobs_finished_total
	AttemptsSucceeded, AttemptsFailed float64 // kjobs_attempts_total
	Durations, Waits                  uint64  // the histograms' counts
}

func countsOf(d *Dispatcher, fn string) counts {
	count := func(h *prometheus.HistogramVec) uint64 {
		var m dto.Metric
		_ = h.WithLabelValues(fn).(prometheus.Histogram).Write(&m)
		return m.GetHistogram().GetSampleCount()
	}
	return counts{
		Succeeded:         testutil.ToFloat64(d.metrics.finished.WithLabelValues(fn, "succeeded")),
		Failed:            testutil.ToFloat64(d.metrics.finished.WithLabelValues(fn, "failed")),
		AttemptsSucceeded: testutil.ToFloat64(d.metrics.attempts.WithLabelValues(fn, "succeeded")),
		AttemptsFailed:    testutil.ToFloat64(d.metrics.attempts.WithLabelValues(fn, "failed")),
		Durations:         count(d.metrics.duration),
		Waits:             count(d.metrics.queueWait),
	}
}

// checkCounts checks d's metrics of function fn's jobs. A count follows the
// store's move that it counts, so it is given a moment to.
func checkCounts(t *testing.T, d *Dispatcher, fn string, want counts) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for countsOf(d, fn) != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if diff := cmp.Diff(want, countsOf(d, fn)); diff != "" {
		t.Errorf("metrics of %s (-want +got):\n%s", fn, diff)
	}
}

// reconciling runs d's reconciler until the test ends.
func reconciling(t *testing.T, d *Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Reconcile(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestCutDeliveryLosesNothing checks that an attempt whose delivery was cut
// is recorded by the reconciler, with no redelivery.
func TestCutDeliveryLosesNothing(t *testing.T) {
	d, st := setup(t)
	reconciling(t, d)
	e := requested(t, `{"function":"sleep","args":{"seconds":"1"}}`)
	if got := status(t, d.Receive(cut(t, 200*time.Millisecond), e)); got != http.StatusServiceUnavailable {
		t.Fatalf("cut delivery answered %d, want 503", got)
	}
	j := waitStatus(t, st, e.ID(), job.Succeeded)
	if len(j.Attempts) != 1 || j.Attempts[0].FinishedAt == nil {
		t.Errorf("attempts %+v, want one finished", j.Attempts)
	}
	checkStats(t, st, job.Stats{Succeeded: 1})
	// The reconciler recorded the attempt's end; the cut delivery did not.
	checkCounts(t, d, "sleep", counts{Succeeded: 1, AttemptsSucceeded: 1, Durations: 1, Waits: 1})
}

// TestDeadLetterAfterSuccess checks that a dead letter for a job whose
// attempt succeeded after its last delivery was cut records the success.
func TestDeadLetterAfterSuccess(t *testing.T) {
	d, st := setup(t)
	ctx := context.Background()
	e := requested(t, `{"function":"sleep","args":{"seconds":"1"}}`)
	d.Receive(cut(t, 100*time.Millisecond), e)
	if _, err := d.runner.Wait(ctx, e.ID(), 1); err != nil {
		t.Fatal(err)
	}
	e.SetExtension("knativeerrorcode", "503")
	if got := status(t, d.DeadLetter(ctx, e)); got != http.StatusOK {
		t.Fatalf("dead letter answered %d", got)
	}
	waitStatus(t, st, e.ID(), job.Succeeded)
	checkStats(t, st, job.Stats{Succeeded: 1})
	checkCounts(t, d, "sleep", counts{Succeeded: 1, AttemptsSucceeded: 1, Durations: 1, Waits: 1})
}

// TestDeadLetterWhileRunning checks that a dead letter for a job whose
// attempt still runs leaves the outcome to that attempt: a failure fails
// the job with the Broker's reason, once.
func TestDeadLetterWhileRunning(t *testing.T) {
	st := store.New(testenv.Redis(t), store.Options{})
	r := local.New(local.Config{Processor: processor, Dir: t.TempDir(), Deadline: time.Second})
	t.Cleanup(r.Close)
	d := New(st, r, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	// Its deadline stops it after a second: a failure that takes time.
	e := requested(t, `{"function":"sleep","args":{"seconds":"30"}}`)
	d.Receive(cut(t, 100*time.Millisecond), e)
	if got := status(t, d.DeadLetter(ctx, e)); got != http.StatusOK {
		t.Fatalf("dead letter answered %d", got)
	}
	if j, _ := st.Get(ctx, e.ID()); j.Status != job.Running {
		t.Fatalf("job %s right after the dead letter, want running: its attempt decides", j.Status)
	}
	reconciling(t, d)
	j := waitStatus(t, st, e.ID(), job.Failed)
	if j.Error != "dead-lettered" || len(j.Attempts) != 1 || j.Attempts[0].Reason != local.ReasonDeadlineExceeded {
		t.Errorf("job error %q, attempts %+v; want the dead letter's reason and one attempt stopped by its deadline", j.Error, j.Attempts)
	}
	checkStats(t, st, job.Stats{Failed: 1})
	// The attempt's end failed the job, counted once, as failed rather
	// than retrying; the dead letter that was kept counted nothing.
	checkCounts(t, d, "sleep", counts{Failed: 1, AttemptsFailed: 1, Durations: 1, Waits: 1})
}

// TestTransientRedisError pauses Redis for longer than a client's timeouts
// while an attempt runs: the delivery rides it out and answers for the
// attempt, so no Broker retry is used up.
func TestTransientRedisError(t *testing.T) {
	srv := testenv.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Options{})
	r := local.New(local.Config{Processor: processor, Dir: t.TempDir()})
	t.Cleanup(r.Close)
	d := New(st, r, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e := requested(t, `{"function":"sleep","args":{"seconds":"1"}}`)
	answer := make(chan int, 1)
	go func() { answer <- status(t, d.Receive(context.Background(), e)) }()
	waitStatus(t, st, e.ID(), job.Running)
	srv.Pause(t)
	time.Sleep(3 * time.Second)
	srv.Resume(t)
	if got := <-answer; got != http.StatusOK {
		t.Errorf("delivery answered %d, want 200", got)
	}
	j := waitStatus(t, st, e.ID(), job.Succeeded)
	if len(j.Attempts) != 1 {
		t.Errorf("%d attempts, want 1", len(j.Attempts))
	}
	checkStats(t, st, job.Stats{Succeeded: 1})
}

// TestHandlerRefuses checks the answers to what is not a kjobs delivery,
// on both routes: the Broker does not retry a 4xx.
func TestHandlerRefuses(t *testing.T) {
	d, st := setup(t)
	srv := httptest.NewServer(d.Handler(prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	foreign := requested(t, `{"function":"echo"}`)
	foreign.SetType("com.example.order.placed")
	huge := requested(t, `{"function":"echo","args":{"a":"`+strings.Repeat("x", MaxEventSize)+`"}}`)
	tests := []struct {
		name string
		e    cloudevents.Event
		want int
	}{
		{"foreign event type", foreign, http.StatusBadRequest},
		{"body over the cap", huge, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		for _, path := range []string{"/", DeadLetterPath} {
			t.Run(tc.name+" on "+path, func(t *testing.T) {
				req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), srv.URL+path, tc.e)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("answered %d, want %d", resp.StatusCode, tc.want)
				}
				if _, err := st.Get(context.Background(), tc.e.ID()); err == nil {
					t.Error("a job was recorded")
				}
			})
		}
	}
	resp, err := http.Post(srv.URL+"/", "application/json", bytes.NewReader([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a request that is no CloudEvent answered %d, want 400", resp.StatusCode)
	}
}

// sent is an event.Sender that keeps what it is given.
type sent struct {
	mu     sync.Mutex
	events []cloudevents.Event
}

func (s *sent) Send(_ context.Context, e cloudevents.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

func (s *sent) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, e := range s.events {
		ids = append(ids, e.ID())
	}
	return ids
}

// TestSweepResendsLostEvents checks that a job recorded but never
// delivered gets its event again, with its ID and request, once; and that
// the re-sent event runs it. So does a job whose attempt was recorded
// running but never started, but not one whose attempt runs.
func TestSweepResendsLostEvents(t *testing.T) {
	d, st := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	record := func(e cloudevents.Event) {
		t.Helper()
		req, err := event.Request(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Create(ctx, e.ID(), req, ""); err != nil {
			t.Fatal(err)
		}
	}
	lost := requested(t, `{"function":"echo","args":{"k":"v"}}`)
	record(lost)
	neverStarted := requested(t, `{"function":"echo"}`)
	record(neverStarted)
	if _, err := st.Start(ctx, neverStarted.ID(), job.Attempt{Attempt: 1, Job: "kjobs-x-1", Outcome: job.OutcomeRunning}); err != nil {
		t.Fatal(err)
	}
	busy := requested(t, `{"function":"sleep","args":{"seconds":"5"}}`)
	go d.Receive(ctx, busy)
	waitStatus(t, st, busy.ID(), job.Running)
	s := &sent{}
	// Jobs older than 2 s are stale; the sweep runs every second and a
	// claim lasts 2 s, so the second sweep below is within the claim.
	go func() { _ = d.Sweep(ctx, s, 2*time.Second) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.ids()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a second sweep, within the claim
	if diff := cmp.Diff([]string{lost.ID(), neverStarted.ID()}, s.ids(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Fatalf("re-sent events (-want +got):\n%s", diff)
	}
	var again cloudevents.Event
	for _, e := range s.events {
		if e.ID() == lost.ID() {
			again = e
		}
	}
	if got := status(t, d.Receive(ctx, again)); got != http.StatusOK {
		t.Fatalf("the re-sent event answered %d", got)
	}
	j := waitStatus(t, st, lost.ID(), job.Succeeded)
	if diff := cmp.Diff(job.Args{"k": "v"}, j.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
}

// TestTickOfDeletedSchedule checks that a tick of a schedule marked deleted
// runs no job, while a job that an earlier tick made goes on.
func TestTickOfDeletedSchedule(t *testing.T) {
	d, st := setup(t)
	ctx := context.Background()
	tick := func() cloudevents.Event {
		e := requested(t, `{"function":"echo","schedule":"nightly"}`)
		return e
	}
	before := tick()
	if _, _, err := st.Create(ctx, before.ID(), job.Request{Function: "echo", Schedule: "nightly"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkScheduleDeleted(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	after := tick()
	if got := status(t, d.Receive(ctx, after)); got != http.StatusOK {
		t.Errorf("tick after the deletion answered %d, want 200", got)
	}
	if _, err := st.Get(ctx, after.ID()); err == nil {
		t.Error("a tick after the deletion made a job")
	}
	if got := status(t, d.Receive(ctx, before)); got != http.StatusOK {
		t.Errorf("redelivery of a tick from before the deletion answered %d, want 200", got)
	}
	waitStatus(t, st, before.ID(), job.Succeeded)
}
