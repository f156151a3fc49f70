package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/kjobs/kjobs/internal/dispatch"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/runner/kube"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// failMessage is the termination message of the pods kwok fails.
const failMessage = "no such table"

// inProcess is a dispatcher served by httptest, with the Kubernetes runner
// in a namespace of the test's own and the store on a redis-server of the
// test's own.
type inProcess struct {
	cluster
	url   string
	store *store.Store
}

// startInProcess starts a dispatcher as its main would, without the
// process: the same Dispatcher, runner and Handler.
func startInProcess(t *testing.T, functions map[string]string) inProcess {
	t.Helper()
	c := newCluster(t, functions)
	st := store.New(testenv.Redis(t), store.Options{Retention: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := kube.New(ctx, c.client, kube.Config{Namespace: c.ns, Image: processorImage})
	if err != nil {
		cancel()
		t.Fatalf("kube.New: %v", err)
	}
	h := dispatch.New(st, r, testLog(t)).Handler(prometheus.NewRegistry())
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		cancel() // ends the runner's informers and every Wait
		srv.CloseClientConnections()
		// Close waits for the handlers; one stuck for good must not hang
		// the whole test binary.
		closed := make(chan struct{})
		go func() { srv.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Errorf("the dispatcher's handlers were still busy 30s after the test ended")
		}
	})
	return inProcess{cluster: c, url: srv.URL, store: st}
}

func (d inProcess) stats(t *testing.T, ctx context.Context) job.Stats {
	t.Helper()
	s, err := d.store.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (d inProcess) job(t *testing.T, ctx context.Context, id string) job.Job {
	t.Helper()
	j, err := d.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// attemptSummary is what an attempt says, without its times.
type attemptSummary struct {
	Attempt  int
	Job      string
	Outcome  job.Outcome
	ExitCode *int
	Message  string
}

func summarize(attempts []job.Attempt) []attemptSummary {
	out := make([]attemptSummary, 0, len(attempts))
	for _, a := range attempts {
		out = append(out, attemptSummary{a.Attempt, a.Job, a.Outcome, a.ExitCode, a.Message})
	}
	return out
}

// checkJobs checks that exactly the Jobs of attempts 1 to n of job id exist.
func checkJobs(t *testing.T, ctx context.Context, client kubernetes.Interface, ns, id string, n int, function string) {
	t.Helper()
	jobs := jobsOf(t, ctx, client, ns, id)
	if diff := cmp.Diff(attemptNames(id, n), testenv.JobNames(jobs)); diff != "" {
		t.Errorf("Jobs labelled %s=%s (-want +got):\n%s", labelJobID, id, diff)
	}
	checkJobLabels(t, jobs, id, function)
}

// TestRedeliveryConcurrent delivers one event 20 times at once, as a
// Broker's redeliveries racing each other would, and checks that the
// deliveries share one attempt and count the job once.
func TestRedeliveryConcurrent(t *testing.T) {
	t.Parallel()
	const deliveries = 20

	t.Run("succeeds", func(t *testing.T) {
		t.Parallel()
		d := startInProcess(t, nil)
		ctx := timeout(t, 3*time.Minute)
		id := uuid.NewString()

		answers := requested(id, `{"function":"echo"}`).postConcurrently(ctx, d.url+"/", deliveries)
		checkAnswers(t, "concurrent deliveries", answers, http.StatusOK, "")

		checkJobs(t, ctx, d.client, d.ns, id, 1, "echo")
		if diff := cmp.Diff(job.Stats{Succeeded: 1}, d.stats(t, ctx)); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
		j := d.job(t, ctx, id)
		if j.Status != job.Succeeded {
			t.Errorf("job status = %s, want succeeded", j.Status)
		}
		want := []attemptSummary{{1, runner.Name(id, 1), job.OutcomeSucceeded, new(0), ""}}
		if diff := cmp.Diff(want, summarize(j.Attempts)); diff != "" {
			t.Errorf("job attempts (-want +got):\n%s", diff)
		}
		// 20 deliveries recorded the attempt's start and end; one moved
		// the job each time, and only it counted.
		checkMetrics(t, d.url+"/metrics", map[string]float64{
			"kjobs_jobs_finished_total{function=echo,status=succeeded}": 1,
			"kjobs_attempts_total{function=echo,outcome=succeeded}":     1,
			"kjobs_attempt_duration_seconds_count{function=echo}":       1,
			"kjobs_queue_wait_seconds_count{function=echo}":             1,
			"kjobs_dispatcher_deliveries_total{code=200,route=receive}": deliveries,
		})
	})

	t.Run("fails, is retried and dead-lettered", func(t *testing.T) {
		t.Parallel()
		// kwok fails the pods 3 s after they start, so that all 20
		// deliveries of a round arrive while the attempt still runs: a
		// delivery that arrives after the attempt failed is a retry, and
		// rightly starts the next attempt.
		d := startInProcess(t, map[string]string{"fail": testenv.Chaos(3, "FunctionFailed", failMessage, 3*time.Second)})
		ctx := timeout(t, 4*time.Minute)
		id := uuid.NewString()
		ev := requested(id, `{"function":"fail"}`)
		failed := func(n int) attemptSummary {
			return attemptSummary{n, runner.Name(id, n), job.OutcomeFailed, new(3), failMessage}
		}

		// Round 1: one attempt, which fails; every delivery answers 500
		// so that the Broker retries.
		answers := ev.postConcurrently(ctx, d.url+"/", deliveries)
		checkAnswers(t, "round 1", answers, http.StatusInternalServerError, "attempt 1 failed: "+failMessage)
		checkJobs(t, ctx, d.client, d.ns, id, 1, "fail")
		if diff := cmp.Diff(job.Stats{Retrying: 1}, d.stats(t, ctx)); diff != "" {
			t.Errorf("stats after round 1 (-want +got):\n%s", diff)
		}
		j := d.job(t, ctx, id)
		if j.Status != job.Retrying {
			t.Errorf("job status after round 1 = %s, want retrying", j.Status)
		}
		if diff := cmp.Diff([]attemptSummary{failed(1)}, summarize(j.Attempts)); diff != "" {
			t.Errorf("job attempts after round 1 (-want +got):\n%s", diff)
		}

		// Round 2, the Broker's retry: attempt 2, once.
		answers = ev.postConcurrently(ctx, d.url+"/", deliveries)
		checkAnswers(t, "round 2", answers, http.StatusInternalServerError, "attempt 2 failed: "+failMessage)
		checkJobs(t, ctx, d.client, d.ns, id, 2, "fail")
		if diff := cmp.Diff(job.Stats{Retries: 1, Retrying: 1}, d.stats(t, ctx)); diff != "" {
			t.Errorf("stats after round 2 (-want +got):\n%s", diff)
		}
		j = d.job(t, ctx, id)
		if j.Status != job.Retrying {
			t.Errorf("job status after round 2 = %s, want retrying", j.Status)
		}
		if diff := cmp.Diff([]attemptSummary{failed(1), failed(2)}, summarize(j.Attempts)); diff != "" {
			t.Errorf("job attempts after round 2 (-want +got):\n%s", diff)
		}

		// The Broker gives up and sends the event to the dead-letter sink,
		// with the last answer it got.
		lastAnswer := answers[0].body
		dead := ev
		dead.extensions = map[string]string{
			"knativeerrorcode": "500",
			"knativeerrordata": base64.StdEncoding.EncodeToString([]byte(lastAnswer)),
		}
		if a := dead.post(ctx, d.url+dispatch.DeadLetterPath, nil); a.err != nil || a.status != http.StatusOK {
			t.Fatalf("dead letter answered %v, want 200", a)
		}
		final := d.job(t, ctx, id)
		if final.Status != job.Failed {
			t.Errorf("job status after the dead letter = %s, want failed", final.Status)
		}
		if want := "dead-lettered after HTTP 500: attempt 2 failed: " + failMessage; final.Error != want {
			t.Errorf("job error = %q, want %q", final.Error, want)
		}
		if diff := cmp.Diff([]attemptSummary{failed(1), failed(2)}, summarize(final.Attempts)); diff != "" {
			t.Errorf("job attempts after the dead letter (-want +got):\n%s", diff)
		}
		wantStats := job.Stats{Failed: 1, Retries: 1}
		if diff := cmp.Diff(wantStats, d.stats(t, ctx)); diff != "" {
			t.Errorf("stats after the dead letter (-want +got):\n%s", diff)
		}

		// The dead letter again, and a late redelivery, change nothing.
		if a := dead.post(ctx, d.url+dispatch.DeadLetterPath, nil); a.err != nil || a.status != http.StatusOK {
			t.Fatalf("second dead letter answered %v, want 200", a)
		}
		if a := ev.post(ctx, d.url+"/", nil); a.err != nil || a.status/100 != 2 {
			t.Errorf("a redelivery of the dead-lettered job answered %v, want 2xx: it has its outcome", a)
		}
		if diff := cmp.Diff(final, d.job(t, ctx, id)); diff != "" {
			t.Errorf("job after a second dead letter and a redelivery (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(wantStats, d.stats(t, ctx)); diff != "" {
			t.Errorf("stats after a second dead letter and a redelivery (-want +got):\n%s", diff)
		}
		checkJobs(t, ctx, d.client, d.ns, id, 2, "fail")
		checkMetrics(t, d.url+"/metrics", map[string]float64{
			"kjobs_jobs_finished_total{function=fail,status=failed}":        1,
			"kjobs_attempts_total{function=fail,outcome=failed}":            2,
			"kjobs_attempt_duration_seconds_count{function=fail}":           2,
			"kjobs_queue_wait_seconds_count{function=fail}":                 1,
			"kjobs_dispatcher_deliveries_total{code=500,route=receive}":     2 * deliveries,
			"kjobs_dispatcher_deliveries_total{code=200,route=dead-letter}": 2,
		})
	})
}
