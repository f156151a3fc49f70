package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kjobs/kjobs/internal/cluster"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
)

// Indexes of the informers' caches, so that finding a job's Jobs or a Job's
// pods costs a map lookup however many Jobs are cached.
const (
	indexJobID   = "jobID"
	indexJobName = "jobName"
)

// syncTimeout bounds how long New waits for its caches. A cache that never
// syncs is almost always missing RBAC, and the informers only log that; an
// error from New says it where the operator looks.
const syncTimeout = time.Minute

// podGrace bounds how long Wait waits, once a Job has finished, for its
// pod's final state to reach the pod cache. Past it, Wait answers with what
// the Job's condition says rather than holding a delivery.
const podGrace = 5 * time.Second

// Runner runs every attempt as a batch/v1 Job in one namespace. It is safe
// for concurrent use; all of its reads come from one set of informers
// shared by every call.
type Runner struct {
	cfg        Config
	client     kubernetes.Interface
	jobs       cache.SharedIndexInformer
	pods       cache.SharedIndexInformer
	configMaps cache.SharedIndexInformer

	mu sync.Mutex
	// waiters holds, by Job name, a channel per Wait call on that Job. The
	// informers' handlers poke them; each call then reads the cache again.
	waiters map[string]map[chan struct{}]struct{}
}

var _ runner.Runner = (*Runner)(nil)

// New starts the informers the runner reads from, waits for their caches
// and returns the runner. The informers stop when ctx ends, after which the
// runner must not be used.
//
// The client needs, in cfg.Namespace: create, get, list and watch on
// batch/v1 jobs; list and watch on pods; list and watch on the functions
// ConfigMap (a resourceNames rule suffices: it is watched by name). See the
// package documentation.
func New(ctx context.Context, client kubernetes.Interface, cfg Config) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("kube.New: %w", err)
	}
	r := &Runner{cfg: cfg, client: client, waiters: map[string]map[chan struct{}]struct{}{}}

	managed := labels.Set{labelManagedBy: managedBy}.String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = managed }),
		informers.WithTransform(stripUnread))
	r.jobs = factory.Batch().V1().Jobs().Informer()
	r.pods = factory.Core().V1().Pods().Informer()
	// The ConfigMap is the operator's, not labelled by kjobs, so it gets its
	// own list options; InformerFor still makes it one of the factory's, to
	// be started, synced and stopped with the others.
	r.configMaps = factory.InformerFor(&corev1.ConfigMap{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewFilteredConfigMapInformer(c, cfg.Namespace, resync, cache.Indexers{}, func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.FunctionsConfigMap).String()
		})
	})

	if err := r.jobs.AddIndexers(cache.Indexers{indexJobID: byLabel(labelJobID)}); err != nil {
		return nil, fmt.Errorf("kube.New: %w", err)
	}
	if err := r.pods.AddIndexers(cache.Indexers{indexJobName: byLabel(labelJobName, labelLegacyJobName)}); err != nil {
		return nil, fmt.Errorf("kube.New: %w", err)
	}
	if _, err := r.jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.wake(objectName(obj)) },
		UpdateFunc: func(_, obj any) { r.wake(objectName(obj)) },
		DeleteFunc: func(obj any) { r.wake(objectName(obj)) },
	}); err != nil {
		return nil, fmt.Errorf("kube.New: %w", err)
	}
	podOwner := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			r.wake(jobNameOf(pod))
		}
	}
	if _, err := r.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    podOwner,
		UpdateFunc: func(_, obj any) { podOwner(obj) },
	}); err != nil {
		return nil, fmt.Errorf("kube.New: %w", err)
	}

	// The informers stop when ctx ends, or as soon as New fails.
	stopCh := make(chan struct{})
	stop := sync.OnceFunc(func() { close(stopCh) })
	context.AfterFunc(ctx, stop)
	factory.Start(stopCh)
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cluster.WaitForSync(syncCtx, r.jobs.HasSynced, r.pods.HasSynced, r.configMaps.HasSynced) {
		stop()
		return nil, fmt.Errorf("kube.New: the Job, pod and ConfigMap caches of namespace %s did not sync (%w); can the client list and watch them?", cfg.Namespace, context.Cause(syncCtx))
	}
	return r, nil
}

// Start creates the attempt's Job. If it exists already, as when another
// delivery of the same event started it first, Start adopts it: the Job's
// name is derived from the job ID and attempt, so the API server's
// AlreadyExists is what guarantees one Job per attempt, however many
// deliveries race.
//
// The pod is placed by the function's entry in the functions ConfigMap; a
// malformed entry fails Start with an error naming its key, so that a
// broken configuration shows instead of running pods where they should not.
// A job ID that cannot be part of a Job name or a label value is refused by
// the API server; apierrors.IsInvalid reports it through the returned error.
func (r *Runner) Start(ctx context.Context, spec runner.Spec) (job.Attempt, error) {
	p, err := r.placement(spec.Function)
	if err != nil {
		return job.Attempt{}, fmt.Errorf("kube.Start: %w", err)
	}
	want := newJob(r.cfg, spec, p)
	withEvent(want, spec.Event)
	got, err := r.client.BatchV1().Jobs(r.cfg.Namespace).Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = r.adopt(ctx, want)
	}
	if err != nil {
		return job.Attempt{}, fmt.Errorf("kube.Start: Job %s: %w", want.Name, err)
	}
	if err := r.ensureEventSecret(ctx, got, spec.Event); err != nil {
		return job.Attempt{}, fmt.Errorf("kube.Start: %w", err)
	}
	return attemptOf(got, spec.Attempt, r.podsOf(got)), nil
}

// adopt returns the existing Job named like want. The cache may not show a
// Job another delivery created a moment ago, so a miss is asked of the API
// server. A Job of that name that is not this attempt's is an error, never
// adopted.
func (r *Runner) adopt(ctx context.Context, want *batchv1.Job) (*batchv1.Job, error) {
	got, ok := r.cachedJob(want.Name)
	if !ok {
		var err error
		if got, err = r.client.BatchV1().Jobs(r.cfg.Namespace).Get(ctx, want.Name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("adopting: %w", err)
		}
	}
	for _, k := range []string{labelManagedBy, labelJobID, labelAttempt} {
		if got.Labels[k] != want.Labels[k] {
			return nil, fmt.Errorf("adopting: a Job of that name exists with label %s=%q, not %q", k, got.Labels[k], want.Labels[k])
		}
	}
	return got, nil
}

// placement reads the function's placement from the cached ConfigMap.
func (r *Runner) placement(function string) (Placement, error) {
	p, err := placementFor(r.Functions(), function)
	if err != nil {
		return Placement{}, fmt.Errorf("ConfigMap %s/%s: %w", r.cfg.Namespace, r.cfg.FunctionsConfigMap, err)
	}
	return p, nil
}

// Functions returns the functions ConfigMap's data from the cache; nil
// when there is no such ConfigMap. The cache has synced once New returns,
// so a dispatcher reads its declarations from it before it serves.
func (r *Runner) Functions() map[string]string {
	obj, ok, err := r.configMaps.GetStore().GetByKey(r.cfg.Namespace + "/" + r.cfg.FunctionsConfigMap)
	if err != nil || !ok {
		return nil
	}
	return obj.(*corev1.ConfigMap).Data
}

// WatchFunctions calls fn with the functions ConfigMap's data now, and
// again after every change to it, from the runner's informer, until ctx is
// done; nil data is a ConfigMap that does not exist. The dispatcher puts
// the caps it sets in force this way.
func (r *Runner) WatchFunctions(ctx context.Context, fn func(data map[string]string)) error {
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	h, err := r.configMaps.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, obj any) { poke(obj) },
		DeleteFunc: poke,
	})
	if err != nil {
		return fmt.Errorf("kube.WatchFunctions: %w", err)
	}
	defer func() { _ = r.configMaps.RemoveEventHandler(h) }()
	for {
		fn(r.Functions())
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// Attempts returns the job's attempts from its Jobs, ordered by attempt.
//
// They are read from the cache, which lags the API server by a moment.
// That matters only when the answer would make the dispatcher create a Job:
// when the cache shows no attempt, or shows the latest one failed. Another
// delivery may just have created attempt 1, or attempt n+1, and the
// dispatcher would then start an attempt too early: AlreadyExists would
// keep it from running twice, but the delivery would adopt the wrong
// attempt. In those two cases Attempts asks the API server for the next
// attempt's Job by name, and for the one after it while they failed: a Get
// reads the current state as a List would, but costs the API server one
// object instead of a label selector over every Job of the namespace, on
// the path of every new job (BENCHMARKS.md, "End to end (issue 10, target
// 3)"). A running or succeeded latest attempt needs no such check: the
// dispatcher then creates nothing.
func (r *Runner) Attempts(ctx context.Context, jobID string) ([]job.Attempt, error) {
	objs, err := r.jobs.GetIndexer().ByIndex(indexJobID, jobID)
	if err != nil {
		return nil, fmt.Errorf("kube.Attempts: %w", err)
	}
	jobs := make([]*batchv1.Job, 0, len(objs))
	for _, obj := range objs {
		jobs = append(jobs, obj.(*batchv1.Job))
	}
	attempts, err := r.attempts(jobs)
	if err != nil {
		return nil, fmt.Errorf("kube.Attempts: %w", err)
	}
	if len(attempts) > 0 && attempts[len(attempts)-1].Outcome != job.OutcomeFailed {
		return attempts, nil
	}

	next := 1
	if len(attempts) > 0 {
		next = attempts[len(attempts)-1].Attempt + 1
	}
	for {
		j, err := r.client.BatchV1().Jobs(r.cfg.Namespace).Get(ctx, runner.Name(jobID, next), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return attempts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("kube.Attempts: %w", err)
		}
		// Another's Job of the attempt's name is no attempt; Start
		// refuses to adopt it.
		if j.Labels[labelManagedBy] != managedBy || j.Labels[labelJobID] != jobID {
			return attempts, nil
		}
		a := attemptOf(j, next, r.podsOf(j))
		attempts = append(attempts, a)
		if a.Outcome != job.OutcomeFailed {
			return attempts, nil
		}
		next++
	}
}

// attempts derives one attempt per Job, ordered by attempt number.
func (r *Runner) attempts(jobs []*batchv1.Job) ([]job.Attempt, error) {
	attempts := make([]job.Attempt, 0, len(jobs))
	for _, j := range jobs {
		n, err := attemptNumber(j)
		if err != nil {
			return nil, err
		}
		attempts = append(attempts, attemptOf(j, n, r.podsOf(j)))
	}
	slices.SortFunc(attempts, func(a, b job.Attempt) int { return a.Attempt - b.Attempt })
	return attempts, nil
}

// Wait blocks until the attempt's Job has finished, or ctx is done. It
// neither polls nor opens a watch of its own: it registers with the
// runner's informers, which wake it on every change to the Job or its pods,
// and reads the cache again. Any number of calls share the one watch.
//
// Wait returns runner.ErrNotFound if the Job does not exist, or was deleted
// before it finished.
func (r *Runner) Wait(ctx context.Context, jobID string, attempt int) (job.Attempt, error) {
	name := runner.Name(jobID, attempt)
	// Registering before the first read means that a change landing between
	// the read and the wait still wakes this call.
	wake, unregister := r.register(name)
	defer unregister()

	var grace <-chan time.Time
	waited := false
	for {
		j, ok := r.cachedJob(name)
		if !ok && !waited {
			// Either the cache has not seen a Job created a moment ago, as
			// when Wait follows Start, or the Job is gone. The informer's
			// event for a new Job wakes this call within milliseconds, so
			// wait for it once before asking the API server: a Get per
			// attempt was one of the dispatcher's four Job requests per job
			// (BENCHMARKS.md, "End to end (issue 10, target 3)").
			waited = true
			t := time.NewTimer(cacheLag)
			select {
			case <-wake:
				t.Stop()
				continue
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return job.Attempt{}, fmt.Errorf("kube.Wait: Job %s: %w", name, context.Cause(ctx))
			}
			j, ok = r.cachedJob(name)
		}
		if !ok {
			// The cache still has not seen it: read it, to tell a slow cache
			// from a Job that is gone. This happens at most once per Job
			// event, as every event that wakes this call also fills the
			// cache.
			var err error
			if j, err = r.client.BatchV1().Jobs(r.cfg.Namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
				if apierrors.IsNotFound(err) {
					err = runner.ErrNotFound
				}
				return job.Attempt{}, fmt.Errorf("kube.Wait: Job %s: %w", name, err)
			}
			// The informers see only kjobs' Jobs: no event would ever end
			// the wait for another's.
			if j.Labels[labelManagedBy] != managedBy {
				return job.Attempt{}, fmt.Errorf("kube.Wait: Job %s is not managed by kjobs", name)
			}
		}
		if finished(j) != nil {
			pods := r.podsOf(j)
			if !awaitingPod(j, pods) {
				return attemptOf(j, attempt, pods), nil
			}
			if grace == nil {
				t := time.NewTimer(podGrace)
				defer t.Stop()
				grace = t.C
			}
		}
		select {
		case <-wake:
		case <-grace:
			return attemptOf(j, attempt, r.podsOf(j)), nil
		case <-ctx.Done():
			return job.Attempt{}, fmt.Errorf("kube.Wait: Job %s: %w", name, context.Cause(ctx))
		}
	}
}

// cacheLag is how long Wait gives the informer to deliver a Job it does not
// cache yet before reading the Job from the API server. Under load (1,000
// Jobs created at once on 2 cores) the informer saw a new Job 69 ms after
// its create answered at the median and 490 ms at p99; longer only delays
// finding out that a Job is gone.
const cacheLag = 2 * time.Second

// register adds a waiter for the Job name and returns its channel and the
// function that removes it. The channel holds one pending wake-up: a waiter
// rereads the whole state, so wake-ups that arrive meanwhile need no queue.
func (r *Runner) register(name string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiters[name] == nil {
		r.waiters[name] = map[chan struct{}]struct{}{}
	}
	r.waiters[name][ch] = struct{}{}
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.waiters[name], ch)
		if len(r.waiters[name]) == 0 {
			delete(r.waiters, name)
		}
	}
}

// wake pokes every waiter of the Job name without blocking the informer.
func (r *Runner) wake(name string) {
	if name == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.waiters[name] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// cachedJob returns the named Job from the cache.
func (r *Runner) cachedJob(name string) (*batchv1.Job, bool) {
	obj, ok, err := r.jobs.GetStore().GetByKey(r.cfg.Namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	return obj.(*batchv1.Job), true
}

// podsOf returns the Job's pods from the cache.
func (r *Runner) podsOf(j *batchv1.Job) []*corev1.Pod {
	objs, err := r.pods.GetIndexer().ByIndex(indexJobName, j.Name)
	if err != nil {
		return nil
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, obj := range objs {
		pods = append(pods, obj.(*corev1.Pod))
	}
	return pods
}

// byLabel indexes objects by the first of the labels they carry.
func byLabel(keys ...string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		m, err := metaOf(obj)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if v, ok := m.GetLabels()[k]; ok {
				return []string{v}, nil
			}
		}
		return nil, nil
	}
}

// jobNameOf returns the name of the Job that created the pod.
func jobNameOf(pod *corev1.Pod) string {
	if name, ok := pod.Labels[labelJobName]; ok {
		return name
	}
	return pod.Labels[labelLegacyJobName]
}

// objectName returns the name of an object from an informer's handler,
// which for a deletion may be a tombstone.
func objectName(obj any) string {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := metaOf(obj)
	if err != nil {
		return ""
	}
	return m.GetName()
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, errors.New("object without metadata in cache")
	}
	return m, nil
}

// stripUnread drops what the runner never reads of an object before it is
// cached: its managed fields, a Job's pod template, selector and pod
// failure policy, and a pod's spec. Those are most of each object: with
// 10,000 finished Jobs kept by their TTL, the Jobs' pod templates were
// 40% of the dispatcher's heap (BENCHMARKS.md, "Memory"). The runner
// changes Jobs only with patches, never by writing back a cached object,
// so what is dropped here is never sent to the API server.
func stripUnread(obj any) (any, error) {
	switch o := obj.(type) {
	case *batchv1.Job:
		o.Spec.Template = corev1.PodTemplateSpec{}
		o.Spec.Selector = nil
		o.Spec.PodFailurePolicy = nil
	case *corev1.Pod:
		o.Spec = corev1.PodSpec{}
	}
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Stop deletes every Job of the job that has not finished, with Background
// propagation: the garbage collector then deletes its pods, which get their
// grace period. The reconciler records each stopped attempt as a deleted
// one. A Job already gone is no error.
func (r *Runner) Stop(ctx context.Context, jobID string) error {
	objs, err := r.jobs.GetIndexer().ByIndex(indexJobID, jobID)
	if err != nil {
		return fmt.Errorf("kube.Stop: %w", err)
	}
	var errs []error
	for _, obj := range objs {
		j := obj.(*batchv1.Job)
		if finished(j) != nil {
			continue
		}
		err := r.client.BatchV1().Jobs(r.cfg.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{
			PropagationPolicy: new(metav1.DeletePropagationBackground),
			// Only the Job this cache saw: a Job of the same name created
			// since is another attempt's.
			Preconditions: metav1.NewUIDPreconditions(string(j.UID)),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("Job %s: %w", j.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kube.Stop: %w", err)
	}
	return nil
}
