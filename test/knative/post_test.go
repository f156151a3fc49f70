package knative

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kjobs/kjobs/internal/delivery"
	jobevent "github.com/kjobs/kjobs/internal/event"
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
// broker ingress (async handler) and in-memory channel with 32 concurrent
// clients, against two sides that send the same CloudEvent to the same
// ingress with as many:
//   - front: an HTTP handler that only decodes the request's JSON, builds
//     the event as the API does (event.NewRequested, a new UUIDv7) and
//     sends it with the API's own sender (delivery.HTTPSender), then
//     answers 202; it runs in the benchmark's process;
//   - ingress: the clients post one and the same event straight to the
//     ingress, with no front at all.
//
// The sides alternate, one round of each per b.Loop iteration, so that
// load from elsewhere on the machine hits all alike; run it with
// -benchtime 3x. No Trigger is subscribed, so events stop at the channel:
// the figures are the API's and the data plane's front half, not the
// dispatcher's or the Jobs'.
func BenchmarkPostJobThroughBroker(b *testing.B) {
	const workers, perRound = 32, 5000
	s := newStack(b, options{noTriggers: true, sweepAfter: time.Hour})
	ctx := timeout(b, 30*time.Minute)
	ingress := s.eventing.BrokerURL(s.ns, brokerName)
	front := httptest.NewServer(sendingFront(b, ingress))
	b.Cleanup(front.Close)
	e := requestedEvent(uuid.NewString(), sleep20)

	sides := []struct {
		name string
		send func() (int, error)
	}{
		{"api", func() (int, error) {
			status, _, err := s.api.try(ctx, http.MethodPost, "/jobs", sleep20)
			return status, err
		}},
		{"front", func() (int, error) {
			status, _, err := api{t: b, url: front.URL}.try(ctx, http.MethodPost, "/jobs", sleep20)
			return status, err
		}},
		{"ingress", func() (int, error) { return e.try(ctx, ingress) }},
	}
	rates := map[string][]float64{}
	p50s, p99s := map[string][]time.Duration{}, map[string][]time.Duration{}
	round := 0
	for b.Loop() {
		round++
		var line []string
		for _, side := range sides {
			apiCPU, selfCPU := s.apiCPU(b), ownCPU(b)
			durations, elapsed, err := concurrently(workers, perRound, side.send)
			if err != nil {
				b.Fatalf("%s: %v", side.name, err)
			}
			perReq := func(d time.Duration) float64 { return float64(d.Microseconds()) / perRound }
			rate := float64(perRound) / elapsed.Seconds()
			p50, p99 := quantile(durations, 0.5), quantile(durations, 0.99)
			rates[side.name] = append(rates[side.name], rate)
			p50s[side.name], p99s[side.name] = append(p50s[side.name], p50), append(p99s[side.name], p99)
			line = append(line, fmt.Sprintf("%s %.0f req/s, p50 %s, p99 %s, CPU per request: API process %.0f µs, this one %.0f µs",
				side.name, rate, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond),
				perReq(s.apiCPU(b)-apiCPU), perReq(ownCPU(b)-selfCPU)))
		}
		// One line a round: the testing package keeps only the first
		// lines a benchmark logs.
		b.Logf("round %d: %s", round, strings.Join(line, "; "))
	}
	for _, side := range sides {
		b.ReportMetric(quantile(rates[side.name], 0.5), side.name+"-req/s")
		b.ReportMetric(ms(quantile(p50s[side.name], 0.5)), side.name+"-p50-ms")
		b.ReportMetric(ms(quantile(p99s[side.name], 0.5)), side.name+"-p99-ms")
	}
	b.ReportMetric(quantile(rates["api"], 0.5)/quantile(rates["front"], 0.5), "api/front")
}

// apiCPU is the CPU time the API process has used so far.
func (s *stack) apiCPU(b *testing.B) time.Duration {
	b.Helper()
	d, err := s.apiProcess.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// ownCPU is the CPU time the benchmark's own process (its clients and the
// front) has used so far.
func ownCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// concurrently calls send n times from workers goroutines at once and
// returns each call's duration and the time all took. Any answer but 202
// is an error.
func concurrently(workers, n int, send func() (int, error)) ([]time.Duration, time.Duration, error) {
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	durations := make([][]time.Duration, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range workers {
		wg.Go(func() {
			for range next {
				t0 := time.Now()
				status, err := send()
				if err == nil && status != http.StatusAccepted {
					err = fmt.Errorf("answered %d, want 202", status)
				}
				if err != nil {
					errs[w] = err
					return
				}
				durations[w] = append(durations[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	return slices.Concat(durations...), time.Since(begin), errors.Join(errs...)
}

// sendingFront is the handler of the front BenchmarkPostJobThroughBroker
// compares the API with: it decodes the job request, builds its event as
// the API does and sends it to the ingress with the API's sender, and
// answers 202 with the job's ID.
func sendingFront(b *testing.B, ingress string) http.Handler {
	sender, err := delivery.NewHTTPSender(ingress)
	if err != nil {
		b.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req job.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := uuid.Must(uuid.NewV7()).String()
		e, err := jobevent.NewRequested(id, req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := sender.Send(r.Context(), e); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, `{"id":%q}`, id)
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
