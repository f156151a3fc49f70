package knative

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/testenv"
)

// The end-to-end benchmarks' size and pace. They are flags, not constants,
// so that a run can match the kjobs side's pace to what the bare side
// reached: go test ... -args -e2e.jobs 1000 -e2e.rate 60.
var (
	e2eJobs           = flag.Int("e2e.jobs", 1000, "BenchmarkBareJobs and BenchmarkEndToEnd: how many jobs each side runs")
	e2eRate           = flag.Float64("e2e.rate", 0, "BenchmarkBareJobs and BenchmarkEndToEnd: jobs created (or POSTed) per second, paced from the first; 0 sends as fast as the senders go")
	e2eSenders        = flag.Int("e2e.senders", 16, "BenchmarkBareJobs and BenchmarkEndToEnd: how many requests are in flight at most")
	e2eProfile        = flag.String("e2e.cpuprofile", "", "BenchmarkEndToEnd: write the dispatcher's CPU profile over the kjobs run to this file")
	e2eProfileSeconds = flag.Int("e2e.profileseconds", 60, "BenchmarkEndToEnd: how long the dispatcher's CPU profile lasts from the start of the kjobs run")
)

// sleep0 asks for a job that finishes as soon as kwok runs its pod.
const sleep0 = `{"function":"sleep","args":{"seconds":"0"}}`

// run is one side's pass: when each job was sent and answered, when its
// Job object was created and when it was done, by the job's key (a Job
// name for bare Jobs, a job ID for kjobs).
type run struct {
	mu             sync.Mutex
	sent, answered map[string]time.Time
	created, done  map[string]time.Time
	first, last    time.Time // the first send, the last completion
	failures       int
}

func newRun() *run {
	return &run{sent: map[string]time.Time{}, answered: map[string]time.Time{}, created: map[string]time.Time{}, done: map[string]time.Time{}}
}

// pace calls send(i) for i in [0, n) from senders goroutines, the i-th no
// earlier than i/rate seconds after the first (at once when rate is 0).
func pace(ctx context.Context, n int, rate float64, senders int, send func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := range next {
				send(i)
			}
		})
	}
	begin := time.Now()
	for i := range n {
		if rate > 0 {
			at := begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
}

// watchJobs records, until ctx ends, when each Job of ns was first seen
// and when it was first seen finished, by key(Job), and counts the Jobs
// that failed. It returns once its informer has synced. An informer, not
// a bare watch: a watch that the apiserver ends under the load of
// thousands of updates would lose completions, and with them the run.
func (r *run) watchJobs(ctx context.Context, t testing.TB, kube kubernetes.Interface, ns string, key func(*batchv1.Job) string) {
	t.Helper()
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns))
	observe := func(obj any) {
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		now := time.Now()
		k := key(j)
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, seen := r.created[k]; !seen {
			r.created[k] = now
		}
		if _, seen := r.done[k]; !seen {
			switch testenv.JobOutcome(j) {
			case batchv1.JobComplete:
				r.done[k] = now
			case batchv1.JobFailed:
				r.done[k] = now
				r.failures++
			}
		}
	}
	if _, err := factory.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, obj any) { observe(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	// Shutdown waits for the informer, which stops with its context: the
	// cleanup cancels that first, as the caller's context is canceled by a
	// cleanup that runs only after this one.
	ctx, cancel := context.WithCancel(ctx)
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("the informer of %v did not sync", typ)
		}
	}
}

// between returns to(k) - from(k) for every key in both.
func between(from, to map[string]time.Time) []time.Duration {
	var d []time.Duration
	for k, t0 := range from {
		if t1, ok := to[k]; ok {
			d = append(d, t1.Sub(t0))
		}
	}
	return d
}

// rate is jobs done per second from the first send to the last completion.
func (r *run) rate(n int) float64 { return float64(n) / r.last.Sub(r.first).Seconds() }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// bareJob is a Job of the same shape as the Kubernetes runner's, without
// kjobs' labels, so that no dispatcher takes it for its own.
func bareJob(name string) *batchv1.Job {
	return attemptJob(name, name, `{"seconds":"0"}`, map[string]string{"bench": "bare"})
}

// attemptJob is a Job of the same shape as the Kubernetes runner's first
// attempt of a sleep job (newJob in internal/runner/kube): one pod, no
// retry, the restricted security context, the job's environment, labelled
// labels.
func attemptJob(name, id, args string, labels map[string]string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            new(int32(0)),
			ActiveDeadlineSeconds:   new(int64(540)),
			TTLSecondsAfterFinished: new(int32(3600)),
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
				Action: batchv1.PodFailurePolicyActionIgnore,
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{
					Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				}},
			}}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           jobServiceAccount,
					AutomountServiceAccountToken: new(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: new(true), RunAsUser: new(int64(65532)), RunAsGroup: new(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "processor",
						Image: processorImage,
						Env: []corev1.EnvVar{
							{Name: "KJOBS_FUNCTION", Value: "sleep"},
							{Name: "KJOBS_ARGS", Value: args},
							{Name: "KJOBS_JOB_ID", Value: id},
							{Name: "KJOBS_ATTEMPT", Value: "1"},
						},
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext: &corev1.SecurityContext{
							ReadOnlyRootFilesystem:   new(true),
							AllowPrivilegeEscalation: new(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
}

// runBare creates n bare Jobs in a namespace of their own at rate and
// waits until all have completed.
func runBare(b *testing.B, n int, rate float64) *run {
	cfg := testenv.Kube(b)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ns := testenv.JobsNamespace(b, cfg, nil)
	ctx := timeout(b, 20*time.Minute)
	r := newRun()
	r.watchJobs(ctx, b, kube, ns, func(j *batchv1.Job) string { return j.Name })
	r.first = time.Now()
	pace(ctx, n, rate, *e2eSenders, func(i int) {
		name := "bare-" + strconv.Itoa(i)
		t0 := time.Now()
		if _, err := kube.BatchV1().Jobs(ns).Create(ctx, bareJob(name), metav1.CreateOptions{}); err != nil {
			b.Errorf("creating Job %s: %v", name, err)
			return
		}
		r.mu.Lock()
		r.sent[name], r.answered[name] = t0, time.Now()
		r.mu.Unlock()
	})
	for {
		r.mu.Lock()
		done := len(r.done)
		if done >= n {
			for _, t := range r.done {
				r.last = later(r.last, t)
			}
		}
		r.mu.Unlock()
		if done >= n {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%d of %d bare Jobs done: %v", done, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if r.failures > 0 {
		b.Errorf("bare Jobs: %d failed; want none", r.failures)
	}
	return r
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// runKjobs POSTs n sleep-0 jobs to a stack's API at rate and waits until
// GET /jobs/stats counts n succeeded; it checks that nothing else moved.
func runKjobs(b *testing.B, s *stack, n int, rate float64) *run {
	ctx := timeout(b, 20*time.Minute)
	r := newRun()
	r.watchJobs(ctx, b, s.kube, s.ns, func(j *batchv1.Job) string { return j.Labels[labelJobID] })
	base := s.api.stats(ctx)
	r.first = time.Now()
	pace(ctx, n, rate, *e2eSenders, func(int) {
		t0 := time.Now()
		status, raw, err := s.api.try(ctx, http.MethodPost, "/jobs", sleep0)
		t1 := time.Now()
		var j job.Job
		if err == nil && status == http.StatusAccepted {
			err = json.Unmarshal([]byte(raw), &j)
		}
		if err != nil || status != http.StatusAccepted || j.ID == "" {
			b.Errorf("POST /jobs = %d %v: %s", status, err, raw)
			return
		}
		r.mu.Lock()
		r.sent[j.ID], r.answered[j.ID] = t0, t1
		r.mu.Unlock()
	})
	var st job.Stats
	for {
		st = s.api.stats(ctx)
		if st.Succeeded+st.Failed+st.Canceled-base.Succeeded-base.Failed-base.Canceled >= int64(n) {
			r.last = time.Now()
			break
		}
		select {
		case <-ctx.Done():
			b.Fatalf("stats %+v: not all %d jobs finished: %v", st, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	want := job.Stats{Succeeded: base.Succeeded + int64(n), Failed: base.Failed, Canceled: base.Canceled, Retries: base.Retries}
	if st != want {
		b.Errorf("stats = %+v; want %+v: every job succeeded once, nothing else", st, want)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.created) != n || r.failures > 0 {
		b.Errorf("%d Jobs created for %d jobs, %d failed; want one each, none failed", len(r.created), n, r.failures)
	}
	return r
}

// reportRun reports a side's rate and latencies.
func reportRun(b *testing.B, side string, r *run, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	toCreated := between(r.answered, r.created)
	sentToCreated := between(r.sent, r.created)
	createdToDone := between(r.created, r.done)
	b.ReportMetric(r.rate(n), "jobs/s")
	b.ReportMetric(ms(quantile(toCreated, 0.5)), "answered-to-created-p50-ms")
	b.ReportMetric(ms(quantile(toCreated, 0.99)), "answered-to-created-p99-ms")
	b.ReportMetric(ms(quantile(createdToDone, 0.5)), "created-to-done-p50-ms")
	b.ReportMetric(ms(quantile(createdToDone, 0.99)), "created-to-done-p99-ms")
	b.Logf("%s: %d jobs in %s, %.1f jobs/s; sent → Job created p50 %s p99 %s; answered → Job created p50 %s p99 %s; Job created → done p50 %s p99 %s",
		side, n, r.last.Sub(r.first).Round(time.Millisecond), r.rate(n),
		quantile(sentToCreated, 0.5), quantile(sentToCreated, 0.99),
		quantile(toCreated, 0.5), quantile(toCreated, 0.99),
		quantile(createdToDone, 0.5), quantile(createdToDone, 0.99))
}

// BenchmarkBareJobs creates -e2e.jobs batch/v1 Jobs of kjobs' shape
// directly (no kjobs), -e2e.senders at a time, at -e2e.rate, and measures
// the first create to the last Job seen Complete: the control plane's own
// pace, which bounds kjobs' end to end. Run it with -benchtime 1x.
func BenchmarkBareJobs(b *testing.B) {
	for b.Loop() {
		reportRun(b, "bare", runBare(b, *e2eJobs, *e2eRate), *e2eJobs)
	}
}

// BenchmarkEndToEnd runs -e2e.jobs sleep-0 jobs through the whole of
// kjobs (POST /jobs, the API, the real broker ingress, channel, filter
// and Trigger, one dispatcher, the Job, the reconciler's record) to the
// last one's success in GET /jobs/stats, and then as many bare Jobs
// created directly at the same -e2e.rate. For kjobs, "answered → created"
// is the POST's 202 (the event is at the ingress) to its Job object
// created. Run it with -benchtime 1x; with -count 2 the sides run kjobs,
// kjobs, bare, bare, and each bare run's ratio is against the last kjobs
// run.
func BenchmarkEndToEnd(b *testing.B) {
	n, rate := *e2eJobs, *e2eRate
	var kjobsRate float64
	b.Run("kjobs", func(b *testing.B) {
		s := newStack(b, options{functions: map[string]string{}})
		var profile func()
		if *e2eProfile != "" {
			profile = s.profileDispatcher(b, *e2eProfile)
		}
		for b.Loop() {
			r := runKjobs(b, s, n, rate)
			if profile != nil {
				profile()
			}
			reportRun(b, "kjobs", r, n)
			kjobsRate = r.rate(n)
		}
	})
	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			r := runBare(b, n, rate)
			reportRun(b, "bare", r, n)
			if kjobsRate > 0 {
				ratio := kjobsRate / r.rate(n)
				b.ReportMetric(ratio, "kjobs/bare")
				b.Logf("kjobs / bare = %.2f×", ratio)
			}
		}
	})
}

// profileDispatcher starts the stack's dispatcher again with its pprof
// server on (KJOBS_PPROF_ADDR) and starts a CPU profile of it for
// -e2e.profileseconds, which should outlast the run: an idle tail adds no
// samples. The function it returns waits for the profile and writes it to
// path.
func (s *stack) profileDispatcher(b *testing.B, path string) func() {
	b.Helper()
	ctx := timeout(b, 30*time.Minute)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	s.dispatcher.Kill()
	s.dispatcherEnv = append(s.dispatcherEnv, "KJOBS_PPROF_ADDR="+addr)
	s.startDispatcher(ctx)
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, *e2eProfileSeconds), nil)
		if err != nil {
			done <- err
			return
		}
		resp, err := direct.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, raw)
		}
		if err == nil {
			err = os.WriteFile(path, raw, 0o644)
		}
		done <- err
	}()
	return func() {
		if err := <-done; err != nil {
			b.Errorf("the dispatcher's CPU profile: %v", err)
		}
	}
}
