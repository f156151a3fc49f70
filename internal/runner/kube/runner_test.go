package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// These tests run against the real control plane `make test` starts: the
// Job controller runs the Jobs, the scheduler binds their pods and kwok
// plays the kubelet, taking pods to Succeeded, or to Failed for a pod
// labelled for its pod-container-running-failed chaos stage.

// chaosFailure is a functions ConfigMap entry whose pods kwok fails with
// exit code 3, through the stage's label and annotations: podLabels and
// podAnnotations carry them as they would a user's cost-allocation labels.
const chaosFailure = `
podLabels:
  pod-container-running-failed.stage.kwok.x-k8s.io: "true"
podAnnotations:
  pod-container-running-failed.stage.kwok.x-k8s.io/exit-code: "3"
  pod-container-running-failed.stage.kwok.x-k8s.io/reason: FunctionFailed
  pod-container-running-failed.stage.kwok.x-k8s.io/message: no such table
  pod-container-running-failed.stage.kwok.x-k8s.io/delay: 100ms
  pod-container-running-failed.stage.kwok.x-k8s.io/jitter-delay: 200ms
`

// nowhere is a ConfigMap entry whose pods no node accepts, so they stay
// Pending for as long as the test needs.
const nowhere = "nodeSelector: {kjobs.dev/pool: nowhere}"

// testEnv is what setup gives a test.
type testEnv struct {
	r      *Runner
	client kubernetes.Interface
	ns     string
	// stop stops the runner's informers, freezing its caches.
	stop func()
}

// setup starts a runner in a namespace of the test's own that enforces
// the restricted Pod Security Standard, as the kjobs namespace does, with
// the Jobs' ServiceAccount and, unless functions is nil, the functions
// ConfigMap holding functions.
func setup(t *testing.T, functions map[string]string, change func(*Config)) testEnv {
	t.Helper()
	restCfg := testenv.Kube(t)
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.JobsNamespace(t, restCfg, functions)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := Config{Namespace: ns, Image: "registry.example/kjobs/processor:test"}
	if change != nil {
		change(&cfg)
	}
	r, err := New(ctx, client, cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return testEnv{r: r, client: client, ns: ns, stop: cancel}
}

// timeout bounds one test's waiting on the control plane, which on a busy
// 2-core machine runs a Job in a few seconds.
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// result is what an attempt says about how it ended.
type result struct {
	Outcome  job.Outcome
	ExitCode *int
	Reason   string
	Message  string
}

func resultOf(a job.Attempt) result {
	return result{Outcome: a.Outcome, ExitCode: a.ExitCode, Reason: a.Reason, Message: a.Message}
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		function  string
		functions map[string]string
		change    func(*Config)
		want      result
	}{{
		name:     "succeeded",
		function: "sample",
		want:     result{Outcome: job.OutcomeSucceeded, ExitCode: new(0)},
	}, {
		name:      "failed with the container's exit code and message",
		function:  "fail",
		functions: map[string]string{"fail": chaosFailure},
		want:      result{Outcome: job.OutcomeFailed, ExitCode: new(3), Reason: "FunctionFailed", Message: "no such table"},
	}, {
		name:      "stopped by its deadline",
		function:  "sample",
		functions: map[string]string{DefaultPlacementKey: nowhere},
		change:    func(c *Config) { c.Deadline = time.Second },
		want:      result{Outcome: job.OutcomeFailed, Reason: "DeadlineExceeded", Message: "Job was active longer than specified deadline"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, tt.functions, tt.change)
			ctx := timeout(t, 2*time.Minute)
			id := uuid.NewString()

			started, err := e.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: tt.function, Args: job.Args{"n": "1"}})
			if err != nil {
				t.Fatalf("Start() error = %v", err)
			}
			if started.Outcome != job.OutcomeRunning || started.Job != runner.Name(id, 1) {
				t.Errorf("Start() = %+v, want attempt %s running", started, runner.Name(id, 1))
			}
			got, err := e.r.Wait(ctx, id, 1)
			if err != nil {
				t.Fatalf("Wait() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, resultOf(got)); diff != "" {
				t.Errorf("Wait() (-want +got):\n%s", diff)
			}
			if got.FinishedAt == nil || got.FinishedAt.Before(got.StartedAt) {
				t.Errorf("Wait() = started %v, finished %v; want a finish after the start", got.StartedAt, got.FinishedAt)
			}
			// What a later delivery reads is what Wait answered.
			attempts, err := e.r.Attempts(ctx, id)
			if err != nil {
				t.Fatalf("Attempts() error = %v", err)
			}
			if diff := cmp.Diff([]job.Attempt{got}, attempts); diff != "" {
				t.Errorf("Attempts() after Wait (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStartOnceUnderConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{DefaultPlacementKey: nowhere}, nil)
	ctx := timeout(t, time.Minute)
	spec := runner.Spec{JobID: uuid.NewString(), Attempt: 1, Function: "sample"}

	const deliveries = 20
	var wg sync.WaitGroup
	errs := make(chan error, deliveries)
	for range deliveries {
		wg.Go(func() {
			a, err := e.r.Start(ctx, spec)
			if err == nil && (a.Job != runner.Name(spec.JobID, 1) || a.Attempt != 1) {
				err = fmt.Errorf("Start() = %+v, want attempt 1, %s", a, runner.Name(spec.JobID, 1))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Start() error = %v", err)
		}
	}
	jobs, err := e.client.BatchV1().Jobs(e.ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{labelJobID: spec.JobID}.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 1 {
		t.Errorf("%d concurrent Start() calls made %d Jobs, want 1", deliveries, len(jobs.Items))
	}
}

func TestRestrictedNamespaceAdmitsPods(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, nil)
	ctx := timeout(t, 2*time.Minute)

	// The namespace does enforce the standard: a pod without the
	// settings it asks for is refused.
	_, err := e.client.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "unrestricted"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/any"}}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("creating a pod without a security context: error = %v, want Forbidden by PodSecurity", err)
	}

	id := uuid.NewString()
	if _, err := e.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "sample"}); err != nil {
		t.Fatalf("Start() error = %v", err)
	}
	got, err := e.r.Wait(ctx, id, 1)
	if err != nil {
		t.Fatalf("Wait() error = %v", err)
	}
	if got.Outcome != job.OutcomeSucceeded {
		t.Errorf("Wait() = %+v, want succeeded", got)
	}
	// A Job is admitted whatever its template says; only its pods are
	// checked, so the pod is what must exist.
	pods, err := e.client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{batchv1.JobNameLabel: runner.Name(id, 1)}.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("the Job has %d pods, want 1", len(pods.Items))
	}
	if phase := pods.Items[0].Status.Phase; phase != corev1.PodSucceeded {
		t.Errorf("pod %s is %s, want Succeeded", pods.Items[0].Name, phase)
	}
}

func TestPlacementFromConfigMap(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{
		"heavy": `
resources:
  requests: {cpu: 500m, memory: 256Mi}
  limits: {memory: 512Mi}
nodeSelector: {kjobs.dev/pool: nowhere-heavy}
tolerations:
- {key: dedicated, operator: Equal, value: batch, effect: NoSchedule}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: topology.kubernetes.io/zone, operator: In, values: [zone-a]}
podLabels: {cost-center: analytics}
podAnnotations: {example.com/owner: data-team}
`,
		DefaultPlacementKey: nowhere,
		"broken":            "resources: {requests: [",
	}, nil)
	ctx := timeout(t, time.Minute)

	tests := []struct {
		function string
		// want is the pod template's placement; wantErr what Start's
		// error says instead.
		want    Placement
		wantErr string
	}{{
		function: "heavy",
		want: Placement{
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
			},
			NodeSelector: map[string]string{"kjobs.dev/pool": "nowhere-heavy"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "batch", Effect: corev1.TaintEffectNoSchedule}},
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"zone-a"}}},
				}}},
			}},
			PodLabels:      map[string]string{"cost-center": "analytics"},
			PodAnnotations: map[string]string{"example.com/owner": "data-team"},
		},
	}, {
		function: "light",
		want:     Placement{NodeSelector: map[string]string{"kjobs.dev/pool": "nowhere"}},
	}, {
		function: "broken",
		wantErr:  `key "broken" is malformed`,
	}}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			id := uuid.NewString()
			_, err := e.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: tt.function})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Start() error = %v, want it to say %q", err, tt.wantErr)
				}
				if _, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, runner.Name(id, 1), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Errorf("after a failed Start(), getting its Job: error = %v, want NotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start() error = %v", err)
			}
			j, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, runner.Name(id, 1), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pod := j.Spec.Template
			got := Placement{
				Resources:      pod.Spec.Containers[0].Resources,
				NodeSelector:   pod.Spec.NodeSelector,
				Tolerations:    pod.Spec.Tolerations,
				Affinity:       pod.Spec.Affinity,
				PodAnnotations: pod.Annotations,
			}
			// The pod's labels are kjobs' own, which the informers rely on,
			// plus the entry's.
			for k, v := range pod.Labels {
				if !strings.HasPrefix(k, "kjobs.dev/") && k != labelManagedBy && k != batchv1.JobNameLabel && k != batchv1.ControllerUidLabel && k != "job-name" && k != "controller-uid" {
					if got.PodLabels == nil {
						got.PodLabels = map[string]string{}
					}
					got.PodLabels[k] = v
				}
			}
			if pod.Labels[labelManagedBy] != managedBy || pod.Labels[labelJobID] != id {
				t.Errorf("pod template labels = %v, want kjobs' own among them", pod.Labels)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("the Job's pod template placement (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAttemptsAcrossRetries(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{"fail": chaosFailure}, nil)
	ctx := timeout(t, 2*time.Minute)
	id := uuid.NewString()

	// The first attempt fails and the second succeeds; the functions differ
	// only so that kwok fails the first one.
	for i, function := range []string{"fail", "sample"} {
		n := i + 1
		if _, err := e.r.Start(ctx, runner.Spec{JobID: id, Attempt: n, Function: function}); err != nil {
			t.Fatalf("Start(%d) error = %v", n, err)
		}
		if _, err := e.r.Wait(ctx, id, n); err != nil {
			t.Fatalf("Wait(%d) error = %v", n, err)
		}
	}
	attempts, err := e.r.Attempts(ctx, id)
	if err != nil {
		t.Fatalf("Attempts() error = %v", err)
	}
	type summary struct {
		Attempt int
		Job     string
		Result  result
	}
	var got []summary
	for _, a := range attempts {
		got = append(got, summary{a.Attempt, a.Job, resultOf(a)})
	}
	want := []summary{
		{1, runner.Name(id, 1), result{Outcome: job.OutcomeFailed, ExitCode: new(3), Reason: "FunctionFailed", Message: "no such table"}},
		{2, runner.Name(id, 2), result{Outcome: job.OutcomeSucceeded, ExitCode: new(0)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Attempts() (-want +got):\n%s", diff)
	}

	if none, err := e.r.Attempts(ctx, uuid.NewString()); err != nil || len(none) != 0 {
		t.Errorf("Attempts() of an unknown job = %v, %v; want none", none, err)
	}
	if _, err := e.r.Wait(ctx, id, 3); !errors.Is(err, runner.ErrNotFound) {
		t.Errorf("Wait() of an attempt never started: error = %v, want runner.ErrNotFound", err)
	}
}

// TestStaleCache freezes the runner's caches and then creates Jobs behind
// its back, which is what a cache a moment behind the API server looks
// like when another delivery has just created a Job.
func TestStaleCache(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{DefaultPlacementKey: nowhere}, nil)
	ctx := timeout(t, time.Minute)
	e.stop()
	for !e.r.jobs.IsStopped() {
		time.Sleep(10 * time.Millisecond)
	}

	spec := runner.Spec{JobID: uuid.NewString(), Attempt: 1, Function: "sample"}
	if _, err := e.client.BatchV1().Jobs(e.ns).Create(ctx, newJob(e.r.cfg, spec, Placement{}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	attempts, err := e.r.Attempts(ctx, spec.JobID)
	if err != nil {
		t.Fatalf("Attempts() error = %v", err)
	}
	if len(attempts) != 1 || attempts[0].Job != runner.Name(spec.JobID, 1) || attempts[0].Outcome != job.OutcomeRunning {
		t.Errorf("Attempts() = %+v, want attempt 1 running, read from the API server", attempts)
	}
	got, err := e.r.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start() of an attempt the cache does not show: error = %v, want it adopted", err)
	}
	if got.Job != runner.Name(spec.JobID, 1) || got.Outcome != job.OutcomeRunning {
		t.Errorf("Start() = %+v, want the existing attempt 1", got)
	}

	// A Job of the attempt's name that is not the attempt's is neither
	// adopted nor awaited.
	other := runner.Spec{JobID: uuid.NewString(), Attempt: 1, Function: "sample"}
	foreign := newJob(e.r.cfg, other, Placement{})
	foreign.Labels = map[string]string{"app": "someone-else"}
	if _, err := e.client.BatchV1().Jobs(e.ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Start(ctx, other); err == nil || !strings.Contains(err.Error(), "a Job of that name exists") {
		t.Errorf("Start() over a foreign Job: error = %v, want it refused", err)
	}
	if _, err := e.r.Wait(ctx, other.JobID, 1); err == nil || !strings.Contains(err.Error(), "not managed by kjobs") {
		t.Errorf("Wait() for a foreign Job: error = %v, want it refused", err)
	}
}

// TestWaitNewJobFromCache starts an attempt and waits for it as the
// dispatcher does: the new Job reaches Wait through the informer, without
// a Get of it from the API server.
func TestWaitNewJobFromCache(t *testing.T) {
	t.Parallel()
	restCfg := testenv.Kube(t)
	var gets atomic.Int64
	restCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/jobs/") && !strings.Contains(req.URL.RawQuery, "watch") {
				gets.Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.JobsNamespace(t, restCfg, nil)
	ctx := timeout(t, time.Minute)
	r, err := New(ctx, client, Config{Namespace: ns, Image: "registry.example/kjobs/processor:test"})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	spec := runner.Spec{JobID: uuid.NewString(), Attempt: 1, Function: "sample"}
	if _, err := r.Start(ctx, spec); err != nil {
		t.Fatalf("Start() error = %v", err)
	}
	if a, err := r.Wait(ctx, spec.JobID, 1); err != nil || a.Outcome != job.OutcomeSucceeded {
		t.Fatalf("Wait() = %+v, %v; want succeeded", a, err)
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("the runner read a Job from the API server %d times; want none: the informer delivers a new Job", n)
	}
}

// roundTripper is an http.RoundTripper made of a function.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestManyInFlight waits for 200 attempts at once through the one set of
// informers. Their pods are held Pending on a node pool that does not exist
// yet, so all 200 are in flight when memory is measured; then the pool's
// node appears and every attempt runs to success. It does not run in
// parallel, so that the heap measured is this test's.
func TestManyInFlight(t *testing.T) {
	e := setup(t, nil, nil)
	const n = 200
	ctx := timeout(t, 5*time.Minute)

	pool := e.ns
	functions := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultFunctionsConfigMap},
		Data: map[string]string{DefaultPlacementKey: fmt.Sprintf(`
nodeSelector: {kjobs.dev/pool: %[1]s}
tolerations:
- {key: kjobs.dev/pool, operator: Equal, value: %[1]s, effect: NoSchedule}
`, pool)},
	}
	if _, err := e.client.CoreV1().ConfigMaps(e.ns).Create(ctx, functions, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the functions ConfigMap in the cache", func() bool {
		p, err := e.r.placement("sample")
		return err == nil && p.NodeSelector["kjobs.dev/pool"] == pool
	})

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	begin := time.Now()
	results := make(chan error, n)
	for i := range n {
		go func() {
			id := uuid.NewString()
			if _, err := e.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "sample", Args: job.Args{"i": fmt.Sprint(i)}}); err != nil {
				results <- err
				return
			}
			a, err := e.r.Wait(ctx, id, 1)
			if err == nil && a.Outcome != job.OutcomeSucceeded {
				err = fmt.Errorf("attempt %s = %+v, want succeeded", a.Job, a)
			}
			results <- err
		}()
	}
	eventually(t, ctx, fmt.Sprintf("%d waiters and %d pending pods", n, n), func() bool {
		e.r.mu.Lock()
		waiting := len(e.r.waiters)
		e.r.mu.Unlock()
		return waiting == n && len(e.r.pods.GetStore().ListKeys()) == n
	})

	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	heap := int64(during.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d attempts in flight after %v: HeapInuse %+d KiB (%d B per attempt: %d Jobs and %d pods cached, %d waiters), StackInuse %+d KiB, %d goroutines more",
		n, time.Since(begin).Round(time.Millisecond), heap/1024, heap/n, len(e.r.jobs.GetStore().ListKeys()), len(e.r.pods.GetStore().ListKeys()), n,
		(int64(during.StackInuse)-int64(before.StackInuse))/1024, runtime.NumGoroutine()-goroutines)

	addNode(t, ctx, e.client, pool)
	for range n {
		select {
		case err := <-results:
			if err != nil {
				t.Error(err)
			}
		case <-ctx.Done():
			t.Fatalf("attempts did not finish: %v", ctx.Err())
		}
	}
	t.Logf("%d attempts succeeded %v after the first Start", n, time.Since(begin).Round(time.Millisecond))
}

// addNode adds a kwok node of the test's own, tainted so that only pods
// that tolerate pool land on it, and removes it when the test ends.
func addNode(t *testing.T, ctx context.Context, client kubernetes.Interface, pool string) {
	t.Helper()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "kjobs-" + pool,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kjobs.dev/pool": pool},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "kjobs.dev/pool", Value: pool, Effect: corev1.TaintEffectNoSchedule}}},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting node %s: %v", node.Name, err)
		}
	})
}

// eventually waits for cond, which reads the runner's caches: a test has no
// informer events of its own to wait on.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestStripUnread: the informers' transform keeps every field the runner
// reads of a Job and a pod (names, labels, annotations, owners, the Job's
// TTL and status, the pod's status) and drops the rest.
func TestStripUnread(t *testing.T) {
	t.Parallel()
	meta := metav1.ObjectMeta{
		Name: "kjobs-x-1", Namespace: "ns", UID: "u",
		Labels:          map[string]string{labelJobID: "x", labelAttempt: "1", labelManagedBy: managedBy},
		Annotations:     map[string]string{annotationRecorded: "true"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Job", Name: "kjobs-x-1", UID: "j", Controller: new(true)}},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}},
	}
	wantMeta := *meta.DeepCopy()
	wantMeta.ManagedFields = nil
	spec := newJob(Config{Namespace: "ns", Image: "example.com/p:1"}.WithDefaults(), runner.Spec{JobID: "x", Attempt: 1, Function: "echo"}, Placement{})
	status := batchv1.JobStatus{Succeeded: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}
	j := &batchv1.Job{ObjectMeta: *meta.DeepCopy(), Spec: spec.Spec, Status: status}
	j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
	wantJob := &batchv1.Job{ObjectMeta: wantMeta, Spec: batchv1.JobSpec{
		BackoffLimit:            spec.Spec.BackoffLimit,
		ActiveDeadlineSeconds:   spec.Spec.ActiveDeadlineSeconds,
		TTLSecondsAfterFinished: spec.Spec.TTLSecondsAfterFinished,
	}, Status: status}
	podStatus := corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}}
	pod := &corev1.Pod{ObjectMeta: *meta.DeepCopy(), Spec: spec.Spec.Template.Spec, Status: podStatus}
	wantPod := &corev1.Pod{ObjectMeta: wantMeta, Status: podStatus}

	for _, tc := range []struct {
		name    string
		in, out any
	}{
		{"job", j, wantJob},
		{"pod", pod, wantPod},
		{"another object", cache.DeletedFinalStateUnknown{Key: "ns/kjobs-x-1"}, cache.DeletedFinalStateUnknown{Key: "ns/kjobs-x-1"}},
	} {
		got, err := stripUnread(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.out, got); diff != "" {
			t.Errorf("%s: stripUnread (-want +got):\n%s", tc.name, diff)
		}
	}
}
