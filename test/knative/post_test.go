package knative

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// sleep20 is the request of TestPostJobAnswersAtOnce: a job that runs for
// as long as its pod is held Pending.
const sleep20 = `{"function":"sleep","args":{"seconds":"20"}}`

// TestPostJobAnswersAtOnce: on a Broker with the async-handler annotation
// (the dev overlay's), POST /jobs answers 202 in well under a second while
// the job's attempt runs; on the same Broker without it the ingress answers
// the API's send only once the dispatcher answered, after the attempt, so
// POST /jobs blocks for the whole job. The attempt "runs" as long as its
// pod is held Pending on a node pool the test adds when it wants.
func TestPostJobAnswersAtOnce(t *testing.T) {
	t.Parallel()
	t.Run("async-handler", func(t *testing.T) {
		t.Parallel()
		pool := testenv.NewPool()
		s := newStack(t, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}})
		ctx := timeout(t, 3*time.Minute)

		begin := time.Now()
		id := s.api.submit(ctx, sleep20)
		took := time.Since(begin)
		t.Logf("POST /jobs answered 202 after %s", took)
		if took > time.Second {
			t.Errorf("POST /jobs answered after %s, want under 1s", took)
		}
		// The job runs after the answer: its attempt's Job is created and
		// the store shows it running.
		s.waitJob(ctx, runner.Name(id, 1), "to be created", exists)
		j := s.api.waitFor(ctx, id, "to run", func(j job.Job) bool { return j.Status == job.Running })
		if len(j.Attempts) != 1 || j.Attempts[0].Outcome != job.OutcomeRunning {
			t.Errorf("job %s attempts %+v, want attempt 1 running", id, j.Attempts)
		}

		// ~20 more, for the figures.
		var durations []time.Duration
		for range 20 {
			begin := time.Now()
			s.api.submit(ctx, sleep20)
			durations = append(durations, time.Since(begin))
		}
		p50, p99 := quantile(durations, 0.5), quantile(durations, 0.99)
		t.Logf("POST /jobs through the broker with the async handler: p50 %s, p99 %s of %d", p50, p99, len(durations))
		if p50 > time.Second {
			t.Errorf("POST /jobs p50 %s, want under 1s", p50)
		}
	})

	t.Run("without async-handler", func(t *testing.T) {
		t.Parallel()
		// Below the API's own send timeout (10 s), past which it answers
		// 202 anyway and keeps the job for the sweep.
		const hold = 4 * time.Second
		pool := testenv.NewPool()
		s := newStack(t, options{syncBroker: true, functions: map[string]string{"sleep": testenv.OnPool(pool)}})
		ctx := timeout(t, 3*time.Minute)

		begin := time.Now()
		answer := s.api.submitLater(ctx, sleep20)
		jobs := waitJobs(t, ctx, s, 1)
		created := time.Since(begin)
		select {
		case a := <-answer:
			t.Fatalf("POST /jobs answered %d after %s while its attempt was held, want it to block: %s", a.status, a.took, a.body)
		case <-time.After(hold):
		}
		s.addNode(ctx, pool)
		var a timed
		select {
		case a = <-answer:
		case <-ctx.Done():
			t.Fatal("POST /jobs did not answer once the attempt could end")
		}
		t.Logf("POST /jobs answered %d after %s; its Job %s was created after %s and held %s more",
			a.status, a.took, jobs[0].Name, created, hold)
		if a.err != nil || a.status != http.StatusAccepted {
			t.Fatalf("POST /jobs = %d %v, want 202\n%s", a.status, a.err, a.body)
		}
		if a.took < hold {
			t.Errorf("POST /jobs answered after %s, before the attempt could end (held %s)", a.took, hold)
		}
		id := jobs[0].Labels[labelJobID]
		if j := s.api.waitFinished(ctx, id); j.Status != job.Succeeded {
			t.Errorf("job %s ended %s, want succeeded", id, j.Status)
		}
	})
}

// waitJobs waits until the stack's namespace has n Jobs and returns them.
func waitJobs(t testing.TB, ctx context.Context, s *stack, n int) []batchv1.Job {
	t.Helper()
	for {
		list, err := s.kube.BatchV1().Jobs(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) >= n {
			return list.Items
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d Jobs in %s, want %d: %v", len(list.Items), s.ns, n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// BenchmarkPostJobThroughBroker measures POST /jobs through the real
// broker ingress (async handler) and the in-memory channel, one at a time,
// and, for comparison, a front that only sends one and the same event to
// the same ingress. Each job's attempt is held Pending, so that the
// figures are the API's and the data plane's, not the Jobs'. Run it with
// a fixed count: -bench PostJobThroughBroker -benchtime 200x.
func BenchmarkPostJobThroughBroker(b *testing.B) {
	pool := testenv.NewPool()
	s := newStack(b, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}})
	ctx := timeout(b, 30*time.Minute)
	b.Run("api", func(b *testing.B) {
		var durations []time.Duration
		begin := time.Now()
		for b.Loop() {
			t0 := time.Now()
			s.api.submit(ctx, sleep20)
			durations = append(durations, time.Since(t0))
		}
		report(b, durations, time.Since(begin))
	})
	b.Run("ingress", func(b *testing.B) {
		e := requestedEvent(uuid.NewString(), sleep20)
		url := s.eventing.BrokerURL(s.ns, brokerName)
		var durations []time.Duration
		begin := time.Now()
		for b.Loop() {
			t0 := time.Now()
			if status, body := e.post(b, ctx, url); status != http.StatusAccepted {
				b.Fatalf("the ingress answered %d, want 202: %s", status, body)
			}
			durations = append(durations, time.Since(t0))
		}
		report(b, durations, time.Since(begin))
	})
}

// BenchmarkIngressToJob measures an event at the broker ingress to its
// attempt's Job created, as a watch of the Jobs sees it: the ingress, the
// channel, the filter, the Trigger and the dispatcher's create.
func BenchmarkIngressToJob(b *testing.B) {
	pool := testenv.NewPool()
	s := newStack(b, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}})
	ctx := timeout(b, 30*time.Minute)
	w := s.watchKjobsJobs(ctx)
	url := s.eventing.BrokerURL(s.ns, brokerName)
	var durations []time.Duration
	begin := time.Now()
	for b.Loop() {
		id := uuid.NewString()
		t0 := time.Now()
		if status, body := requestedEvent(id, sleep20).post(b, ctx, url); status != http.StatusAccepted {
			b.Fatalf("the ingress answered %d, want 202: %s", status, body)
		}
		waitCreated(b, ctx, w, id)
		durations = append(durations, time.Since(t0))
	}
	report(b, durations, time.Since(begin))
}

// watchKjobsJobs watches the Jobs kjobs creates in the stack's namespace,
// until the test ends.
func (s *stack) watchKjobsJobs(ctx context.Context) watch.Interface {
	s.t.Helper()
	w, err := s.kube.BatchV1().Jobs(s.ns).Watch(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{"app.kubernetes.io/managed-by": "kjobs"}.String(),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(w.Stop)
	return w
}

// waitCreated waits until w, a watch of kjobs' Jobs, sees a Job of job id
// added.
func waitCreated(b *testing.B, ctx context.Context, w watch.Interface, id string) {
	b.Helper()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("the watch of Jobs ended")
			}
			if j, isJob := ev.Object.(*batchv1.Job); isJob && ev.Type == watch.Added && j.Labels[labelJobID] == id {
				return
			}
		case <-ctx.Done():
			b.Fatalf("no Job for job %s: %v", id, ctx.Err())
		}
	}
}

// report adds the p50 and p99 of durations, and the rate, to b's results.
func report(b *testing.B, durations []time.Duration, elapsed time.Duration) {
	b.ReportMetric(float64(quantile(durations, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(quantile(durations, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(durations))/elapsed.Seconds(), "req/s")
	b.Logf("%d: p50 %s, p99 %s, %.0f req/s", len(durations), quantile(durations, 0.5), quantile(durations, 0.99), float64(len(durations))/elapsed.Seconds())
}
