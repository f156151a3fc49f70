package knative

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// capWatch polls, every 100 ms until stopped, the API's stats and the Jobs
// that have not finished, and keeps the most of each it saw.
type capWatch struct {
	stop, done      chan struct{}
	running, active int
	sawWaiting      bool
}

func (s *stack) watchCap(ctx context.Context) *capWatch {
	w := &capWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var stats job.Stats
			if code, body, err := s.api.try(ctx, http.MethodGet, "/jobs/stats", ""); err == nil && code == http.StatusOK {
				if json.Unmarshal([]byte(body), &stats) == nil {
					w.running = max(w.running, int(stats.Running))
					w.sawWaiting = w.sawWaiting || stats.Waiting > 0
				}
			}
			list, err := s.kube.BatchV1().Jobs(s.ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			active := 0
			for _, j := range list.Items {
				if testenv.JobFinished(&j) == nil {
					active++
				}
			}
			w.active = max(w.active, active)
		}
	}()
	return w
}

func (w *capWatch) end() *capWatch {
	close(w.stop)
	<-w.done
	return w
}

// TestCapOnDataPlane runs 20 jobs of a function capped at 3 through the
// real Broker with two dispatcher replicas sharing one Redis, and SIGKILLs
// one of them while it holds slots: through the API and through the
// apiserver's Jobs, polled every 100 ms, never more than 3 run; the Jobs
// are created in submission order (jobs admitted by releases that land
// together may swap among themselves, so within 3 places); every job
// succeeds with one attempt, the killed replica's slots come back and the
// queue drains.
//
// It does not run in parallel: its Jobs and its polling would slow the
// control plane under the parallel tests that time it.
func TestCapOnDataPlane(t *testing.T) {
	const n, limit = 20, 3
	s := newStack(t, options{
		functions: map[string]string{"sleep": fmt.Sprintf("maxRunning: %d", limit)},
		replicas:  2, sweepAfter: 10 * time.Second,
	})
	ctx := timeout(t, 4*time.Minute)
	created := s.watchCreated(ctx)
	w := s.watchCap(ctx)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"1"}}`)
	}
	// Kill a replica once the queue has started to move: it holds some of
	// the deliveries, and so some of the running jobs' slots.
	s.api.waitFor(ctx, ids[limit+1], "running", func(j job.Job) bool { return j.Status == job.Running || j.Status.Terminal() })
	s.replicas[0].Kill()
	jobs := make([]job.Job, n)
	for i, id := range ids {
		jobs[i] = s.api.waitFinished(ctx, id)
	}
	w.end()

	if w.running > limit || w.active > limit || !w.sawWaiting {
		t.Errorf("at most %d running (API) and %d active Jobs (apiserver), waiting seen %v; want at most %d, and jobs waiting",
			w.running, w.active, w.sawWaiting, limit)
	}
	for i, j := range jobs {
		if j.Status != job.Succeeded || len(j.Attempts) != 1 {
			t.Errorf("job %d = %s with %d attempts, want succeeded with 1", i, j.Status, len(j.Attempts))
		}
	}
	order := created()
	for i, id := range ids {
		at := slices.Index(order, runner.Name(id, 1))
		if at < 0 || at < i-(limit-1) || at > i+(limit-1) {
			t.Errorf("job %d's Job was created %d-th; want within %d places of its submission", i, at, limit-1)
		}
	}
	if st := s.api.stats(ctx); st.Succeeded != n || st.Retries != 0 || st.Running != 0 || st.Waiting != 0 {
		t.Errorf("stats = %+v; want %d succeeded, no retry, none running or waiting", st, n)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.redis.Addr})
	defer rdb.Close()
	if install, fns, err := store.New(rdb, store.Options{}).Slots(ctx); err != nil || install != 0 || len(fns) != 0 {
		t.Errorf("slots held at the end = %d, %v (%v); want none: the killed replica's came back", install, fns, err)
	}
}

// TestWaitOutlastsDeliveryTimeout holds a job behind a cap for longer than
// the Triggers' delivery timeout: it was answered at once, so it still
// runs, with its retries intact.
func TestWaitOutlastsDeliveryTimeout(t *testing.T) {
	t.Parallel()
	pool := testenv.NewPool()
	s := newStack(t, options{
		functions: map[string]string{
			"sleep": "maxRunning: 1\n" + testenv.OnPool(pool),
			"echo":  "maxRunning: 1",
		},
		delivery: func(d *eventingduckv1.DeliverySpec) { d.Timeout = new("PT3S") },
	})
	ctx := timeout(t, 3*time.Minute)
	// The first job holds the one slot of "sleep": its pod waits for a node.
	holder := s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"1"}}`)
	s.api.waitFor(ctx, holder, "running", func(j job.Job) bool { return j.Status == job.Running })
	waiter := s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"0"}}`)
	s.api.waitFor(ctx, waiter, "waiting", func(j job.Job) bool { return j.Status == job.Waiting })
	// Three delivery timeouts' worth.
	time.Sleep(9 * time.Second)
	if j := s.api.get(ctx, waiter); j.Status != job.Waiting || len(j.Attempts) != 0 {
		t.Fatalf("after 9 s the waiting job is %s with %d attempts; want waiting with none", j.Status, len(j.Attempts))
	}
	s.addNode(ctx, pool)
	j := s.api.waitFinished(ctx, waiter)
	if j.Status != job.Succeeded || len(j.Attempts) != 1 {
		t.Errorf("the job that waited = %s with %d attempts; want succeeded with 1", j.Status, len(j.Attempts))
	}
}

// TestCancelOnDataPlane cancels a running job whose pod would run for a
// minute: the Job and its pod are gone within 5 s, the job is canceled and
// counted once, and no attempt follows after the Broker's backoff.
func TestCancelOnDataPlane(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{functions: map[string]string{
		"sleep": testenv.Chaos(1, "Error", "too-late", time.Minute),
	}})
	ctx := timeout(t, 2*time.Minute)
	id := s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"60"}}`)
	name := runner.Name(id, 1)
	s.waitJob(ctx, name, "with a running pod", func(j *batchv1.Job) bool { return j.Status.Active > 0 })
	begin := time.Now()
	var got job.Job
	if code, body := s.api.do(ctx, http.MethodPost, "/jobs/"+id+"/cancel", "", &got); code != http.StatusAccepted || got.Status != job.Canceled {
		t.Fatalf("cancel: %d %s; want 202 and the job canceled", code, body)
	}
	for {
		jobs := s.jobs(ctx, id)
		pods, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{labelJobID: id}.String()})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 0 && len(pods.Items) == 0 {
			break
		}
		if time.Since(begin) > 5*time.Second {
			t.Fatalf("5 s after the cancel: %d Jobs and %d pods of the job remain", len(jobs), len(pods.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the Job and its pod were gone %s after the cancel", time.Since(begin).Round(time.Millisecond))
	// Past the Broker's first backoff and then some: no second attempt.
	time.Sleep(8 * time.Second)
	if jobs := s.jobs(ctx, id); len(jobs) != 0 {
		t.Errorf("Jobs %v exist after the cancel; want none", testenv.JobNames(jobs))
	}
	j := s.api.get(ctx, id)
	if j.Status != job.Canceled || len(j.Attempts) != 1 {
		t.Errorf("job = %s with %d attempts; want canceled with the one it had", j.Status, len(j.Attempts))
	}
	if st := s.api.stats(ctx); st.Canceled != 1 || st.Running != 0 || st.Retries != 0 || st.Failed != 0 {
		t.Errorf("stats = %+v; want canceled 1 and nothing else moved", st)
	}
	var p struct{ Type string }
	done := s.api.submit(ctx, `{"function":"echo"}`)
	s.api.waitFinished(ctx, done)
	if code, body := s.api.do(ctx, http.MethodPost, "/jobs/"+done+"/cancel", "", &p); code != http.StatusConflict {
		t.Errorf("cancel of a succeeded job: %d %s; want 409", code, body)
	}
}

// TestCancelRacingSuccess cancels jobs the moment they are submitted, as
// their quick pods succeed: each job ends in one terminal status, and the
// counters move once per job.
func TestCancelRacingSuccess(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	ctx := timeout(t, 2*time.Minute)
	const n = 10
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.api.submit(ctx, `{"function":"echo"}`)
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			// Half at once, half once the attempt runs.
			if i%2 == 1 {
				s.api.waitFor(ctx, id, "started", func(j job.Job) bool { return j.Status != job.Queued })
			}
			if code, body := s.api.do(ctx, http.MethodPost, "/jobs/"+id+"/cancel", "", nil); code != http.StatusAccepted && code != http.StatusConflict {
				t.Errorf("cancel %s: %d %s", id, code, body)
			}
		})
	}
	wg.Wait()
	ended := map[job.Status]int64{}
	for _, id := range ids {
		ended[s.api.waitFinished(ctx, id).Status]++
	}
	st := s.api.stats(ctx)
	if st.Succeeded != ended[job.Succeeded] || st.Canceled != ended[job.Canceled] || st.Succeeded+st.Canceled != n || st.Running != 0 || st.Failed != 0 {
		t.Errorf("stats = %+v, jobs ended %v; want the counters to match, %d in all", st, ended, n)
	}
}

// BenchmarkCapQueue queues 1,000 jobs behind a cap of 10 and lets them
// drain through the real Broker. It reports the time from a slot freeing
// (a Job seen Complete) to the next Job object existing, pairing the k-th
// completion with the (10+k)-th creation, and the dispatcher's RSS with
// the whole queue waiting and at the end. Run it with -benchtime 1x.
func BenchmarkCapQueue(b *testing.B) {
	const n, limit = 1000, 10
	s := newStack(b, options{functions: map[string]string{"sleep": fmt.Sprintf("maxRunning: %d", limit)}, sweepAfter: 10 * time.Minute})
	ctx := timeout(b, 30*time.Minute)
	for b.Loop() {
		w, err := s.kube.BatchV1().Jobs(s.ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		var created, completed []time.Time
		seen := map[string]bool{}
		go func() {
			for ev := range w.ResultChan() {
				j, ok := ev.Object.(*batchv1.Job)
				if !ok {
					continue
				}
				now := time.Now()
				mu.Lock()
				switch {
				case ev.Type == watch.Added:
					created = append(created, now)
				case testenv.JobOutcome(j) == batchv1.JobComplete && !seen[j.Name]:
					seen[j.Name] = true
					completed = append(completed, now)
				}
				mu.Unlock()
			}
		}()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"1"}}`)
		}
		submitted := time.Now()
		queued, err := s.dispatcher.RSS()
		if err != nil {
			b.Fatal(err)
		}
		begin := time.Now()
		for _, id := range ids {
			if j := s.api.waitFinished(ctx, id); j.Status != job.Succeeded {
				b.Fatalf("job %s = %s, want succeeded", id, j.Status)
			}
		}
		elapsed := time.Since(begin)
		end, err := s.dispatcher.RSS()
		if err != nil {
			b.Fatal(err)
		}
		w.Stop()
		mu.Lock()
		slices.SortFunc(created, time.Time.Compare)
		slices.SortFunc(completed, time.Time.Compare)
		// steady leaves out the slots that freed while the jobs were still
		// being submitted: their hand-offs queue behind the first
		// deliveries of the jobs being submitted.
		var handOff, steady []time.Duration
		for k := 0; k+limit < len(created) && k < len(completed); k++ {
			d := created[k+limit].Sub(completed[k])
			handOff = append(handOff, d)
			if completed[k].After(submitted) {
				steady = append(steady, d)
			}
		}
		mu.Unlock()
		b.ReportMetric(float64(quantile(handOff, 0.5).Microseconds())/1000, "free-to-job-p50-ms")
		b.ReportMetric(float64(quantile(handOff, 0.99).Microseconds())/1000, "free-to-job-p99-ms")
		b.ReportMetric(float64(quantile(steady, 0.5).Microseconds())/1000, "steady-free-to-job-p50-ms")
		b.ReportMetric(float64(quantile(steady, 0.99).Microseconds())/1000, "steady-free-to-job-p99-ms")
		b.ReportMetric(float64(queued>>20), "rss-queued-MiB")
		b.ReportMetric(float64(end>>20), "rss-end-MiB")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "jobs/s")
		b.Logf("%d jobs behind a cap of %d drained in %s; slot free → next Job p50 %s p99 %s (once all were submitted: %d, p50 %s p99 %s); dispatcher RSS %d MiB queued, %d MiB at the end",
			n, limit, elapsed.Round(time.Millisecond), quantile(handOff, 0.5), quantile(handOff, 0.99),
			len(steady), quantile(steady, 0.5), quantile(steady, 0.99), queued>>20, end>>20)
	}
}
