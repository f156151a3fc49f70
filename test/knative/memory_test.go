package knative

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// mib is a byte count in MiB, for a benchmark's metrics.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rss returns p's resident set size, failing the benchmark when /proc has
// none.
func rss(b *testing.B, p *testenv.Process) int64 {
	b.Helper()
	n, err := p.RSS()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// goMemory is what the Go runtime of a kjobs process says of its memory,
// from its /metrics (the Go collector every kjobs process registers).
type goMemory struct {
	heap, stacks int64 // bytes in use
	goroutines   int
}

func (m goMemory) String() string {
	return fmt.Sprintf("heap in use %.1f MiB, stacks %.1f MiB, %d goroutines", mib(m.heap), mib(m.stacks), m.goroutines)
}

// goStats reads the goMemory of the process whose /metrics is at url.
func goStats(b *testing.B, url string) goMemory {
	b.Helper()
	f := testenv.Scrape(b, url+"/metrics")
	return goMemory{
		heap:       int64(testenv.MetricValue(f, "go_memstats_heap_inuse_bytes", "")),
		stacks:     int64(testenv.MetricValue(f, "go_memstats_stack_inuse_bytes", "")),
		goroutines: int(testenv.MetricValue(f, "go_goroutines", "")),
	}
}

// BenchmarkInFlightMemory holds 1,000 attempts in flight in one dispatcher
// and reports its resident set size (VmRSS) then, against the dispatcher's
// and the API's when the stack is started and idle. Every attempt's pod is
// held Pending on a node pool that never comes, so each job is running: its
// Job and pod are in the dispatcher's one informer, and its delivery is
// held by the dispatcher until the Job ends. Run it with -benchtime 1x.
func BenchmarkInFlightMemory(b *testing.B) {
	const n, workers = 1000, 32
	pool := testenv.NewPool()
	// The sweep and the start deadline stay out of the measurement.
	s := newStack(b, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}, sweepAfter: time.Hour})
	ctx := timeout(b, 30*time.Minute)
	for b.Loop() {
		// Idle: started, ready, a few seconds for the start's garbage to
		// be collected.
		time.Sleep(5 * time.Second)
		idleDispatcher, idleAPI := rss(b, s.dispatcher), rss(b, s.apiProcess)
		idleGo := goStats(b, s.dispatcherURL)

		ids := make(chan struct{}, n)
		for range n {
			ids <- struct{}{}
		}
		close(ids)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range ids {
					s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"600"}}`)
				}
			})
		}
		wg.Wait()
		// Every job's attempt started (its Job exists and the store has
		// it running), and every Job's pod is in the namespace.
		for st := s.api.stats(ctx); st.Running < n; st = s.api.stats(ctx) {
			sleepOrFail(b, ctx, fmt.Sprintf("%d of %d jobs running", st.Running, n))
		}
		selector := labels.Set{"app.kubernetes.io/managed-by": "kjobs"}.String()
		for {
			pods, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: "0"})
			if err != nil {
				b.Fatal(err)
			}
			if len(pods.Items) >= n {
				break
			}
			sleepOrFail(b, ctx, fmt.Sprintf("%d of %d pods created", len(pods.Items), n))
		}
		// The informer has seen the last pod's updates (the scheduler's
		// PodScheduled=False) a moment after it was created.
		time.Sleep(5 * time.Second)
		held := s.deliveriesHeld(b)
		busyDispatcher, busyAPI := rss(b, s.dispatcher), rss(b, s.apiProcess)
		busyGo := goStats(b, s.dispatcherURL)

		b.ReportMetric(mib(idleDispatcher), "dispatcher-idle-MiB")
		b.ReportMetric(mib(idleAPI), "api-idle-MiB")
		b.ReportMetric(mib(busyDispatcher), "dispatcher-inflight-MiB")
		b.ReportMetric(mib(busyGo.heap), "dispatcher-inflight-heap-MiB")
		b.ReportMetric(mib(busyGo.stacks), "dispatcher-inflight-stacks-MiB")
		b.ReportMetric(mib(busyAPI), "api-after-MiB")
		b.Logf("idle: dispatcher RSS %.1f MiB (%s), API RSS %.1f MiB",
			mib(idleDispatcher), idleGo, mib(idleAPI))
		b.Logf("%d attempts in flight (%d deliveries held): dispatcher RSS %.1f MiB (%s), API RSS %.1f MiB",
			n, held, mib(busyDispatcher), busyGo, mib(busyAPI))
	}
}

// deliveriesHeld counts the established connections to the dispatcher's
// port, from /proc/net/tcp{,6}: the Broker's filter holds one per delivery
// it waits on, so it is the number of held deliveries plus any idle
// kept-alive connection.
func (s *stack) deliveriesHeld(b *testing.B) int {
	b.Helper()
	port := fmt.Sprintf(":%04X", s.dispatcherPort)
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.Lines(string(raw)) {
			// sl local_address rem_address st ...; 01 is ESTABLISHED.
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1], port) && f[3] == "01" {
				n++
			}
		}
	}
	return n
}

// sleepOrFail waits a moment, or fails the benchmark with what it was
// waiting for once ctx ends.
func sleepOrFail(b *testing.B, ctx context.Context, what string) {
	b.Helper()
	select {
	case <-ctx.Done():
		b.Fatalf("%s: %v", what, ctx.Err())
	case <-time.After(500 * time.Millisecond):
	}
}

// BenchmarkStartWithFinishedJobs starts a dispatcher, alternately, in a
// namespace holding 10,000 finished kjobs Jobs that their TTL keeps and in
// an empty one, and reports the process's start to ready (the first 200
// from /readyz, as hack/bench/startup measures it) and its resident set
// size when ready and a few seconds later. Each b.Loop iteration is one
// start of each. Run it with -benchtime 5x.
//
// The Jobs are made as the dispatcher leaves them once it has recorded
// their outcome (annotated kjobs.dev/recorded, the reconciler has nothing
// left to do for them), but not by running them: on this control plane
// 10,000 Jobs run through kwok take an hour. Each is created with
// spec.managedBy naming another controller, so that the Job controller
// makes no pod for it, and its status is then set Complete through the
// status subresource. So the namespace holds no pods: a real one would
// hold each finished Job's pod too, which the dispatcher's pod informer
// caches as well.
func BenchmarkStartWithFinishedJobs(b *testing.B) {
	const n, seeders = 10000, 32
	cfg := rest.CopyConfig(testenv.Kube(b))
	cfg.QPS, cfg.Burst = 2000, 4000
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := timeout(b, 30*time.Minute)
	full := testenv.JobsNamespace(b, cfg, map[string]string{})
	empty := testenv.JobsNamespace(b, cfg, map[string]string{})
	begin := time.Now()
	seedFinishedJobs(b, ctx, kube, full, n, seeders)
	b.Logf("%d finished Jobs made in %s", n, time.Since(begin).Round(time.Millisecond))
	redis := testenv.RedisServer(b)

	start := func(ns string, run int) (ready time.Duration, atReady, settled int64) {
		port := testenv.FreePort(b)
		url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
		t0 := time.Now()
		p := testenv.StartProcess(b, fmt.Sprintf("dispatcher-%s-%d", ns, run), bin.dispatcher,
			fmt.Sprintf("PORT=%d", port),
			"KJOBS_HOST=127.0.0.1",
			"REDIS_URL=redis://"+redis.Addr,
			"K_SINK=http://127.0.0.1:9/",
			"KJOBS_NAMESPACE="+ns,
			"KJOBS_PROCESSOR_IMAGE="+processorImage,
			"KUBECONFIG="+os.Getenv(testenv.KubeconfigEnv))
		defer p.Kill()
		// Every 2 ms: the start to ready measured is within 2 ms of the real one.
		p.WaitReadyEvery(b, ctx, url, 2*time.Millisecond)
		ready = time.Since(t0)
		atReady = rss(b, p)
		time.Sleep(3 * time.Second)
		return ready, atReady, rss(b, p)
	}

	var readyFull, readyEmpty []time.Duration
	var rssFull, rssEmpty, settledFull, settledEmpty []int64
	run := 0
	for b.Loop() {
		run++
		d, r, settled := start(full, run)
		readyFull, rssFull, settledFull = append(readyFull, d), append(rssFull, r), append(settledFull, settled)
		d, r, settled = start(empty, run)
		readyEmpty, rssEmpty, settledEmpty = append(readyEmpty, d), append(rssEmpty, r), append(settledEmpty, settled)
		b.Logf("start %d: %d Jobs %s, RSS %.1f MiB, %.1f MiB 3 s later; no Jobs %s, RSS %.1f MiB, %.1f MiB 3 s later",
			run, n, readyFull[run-1].Round(time.Millisecond), mib(rssFull[run-1]), mib(settledFull[run-1]),
			readyEmpty[run-1].Round(time.Millisecond), mib(rssEmpty[run-1]), mib(settledEmpty[run-1]))
	}
	b.ReportMetric(ms(quantile(readyFull, 0.5)), "ready-10k-ms")
	b.ReportMetric(ms(quantile(readyEmpty, 0.5)), "ready-empty-ms")
	b.ReportMetric(mib(quantile(rssFull, 0.5)), "rss-10k-MiB")
	b.ReportMetric(mib(quantile(settledFull, 0.5)), "rss-10k-settled-MiB")
	b.ReportMetric(mib(quantile(rssEmpty, 0.5)), "rss-empty-MiB")
}

// seedFinishedJobs makes n finished kjobs Jobs in ns with workers
// concurrent clients; see BenchmarkStartWithFinishedJobs.
func seedFinishedJobs(b *testing.B, ctx context.Context, kube kubernetes.Interface, ns string, n, workers int) {
	b.Helper()
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range next {
				if err := finishedJob(ctx, kube, ns); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// finishedJob creates one Job as the dispatcher's runner builds an attempt
// of the sleep function, with its labels, annotated recorded,
// and sets its status Complete as the Job controller would.
func finishedJob(ctx context.Context, kube kubernetes.Interface, ns string) error {
	id := uuid.Must(uuid.NewV7()).String()
	own := map[string]string{
		labelJobID:                     id,
		"kjobs.dev/attempt":            "1",
		"kjobs.dev/function":           "sleep",
		"app.kubernetes.io/managed-by": "kjobs",
	}
	j := attemptJob(runner.Name(id, 1), id, `{"seconds":"1"}`, own)
	j.Annotations = map[string]string{"kjobs.dev/recorded": "true"}
	// Another controller's, so that the Job controller leaves it alone: no
	// pod, no status of its own.
	j.Spec.ManagedBy = new("kjobs.dev/benchmark")
	created, err := kube.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating Job %s: %w", j.Name, err)
	}
	started := metav1.NewTime(time.Now().Add(-2 * time.Second))
	now := metav1.Now()
	created.Status = batchv1.JobStatus{
		StartTime:      &started,
		CompletionTime: &now,
		Succeeded:      1,
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastTransitionTime: now, LastProbeTime: now},
		},
	}
	if _, err := kube.BatchV1().Jobs(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("finishing Job %s: %w", j.Name, err)
	}
	return nil
}
