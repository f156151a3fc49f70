package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
)

// annotationRecorded marks a finished Job whose outcome a Recorder has
// kept. The reconciler then has nothing left to do for it, which keeps a
// resync over thousands of finished Jobs cheap.
const annotationRecorded = "kjobs.dev/recorded"

// ReasonDeleted is the reason of an attempt whose Job was deleted before it
// finished.
const ReasonDeleted = "JobDeleted"

// workers is how many Jobs the reconciler syncs at once. A sync is one
// Redis script, and sometimes one patch.
const workers = 4

// reconciler is the workqueue behind Runner.Reconcile, in the shape of
// kubernetes/sample-controller: the informers' handlers enqueue a Job's
// name, and a worker syncs it from the cache.
type reconciler struct {
	r     *Runner
	rec   runner.Recorder
	queue workqueue.TypedRateLimitingInterface[string]
	log   *slog.Logger

	mu sync.Mutex
	// gone holds, by name, the last state of Jobs deleted before their
	// sync ran: the cache no longer has them.
	gone map[string]*batchv1.Job
}

// Reconcile tells rec of every attempt's start and end, from the Jobs and
// pods the informers see, until ctx is done. Its first pass covers every
// Job that exists, so a dispatcher that was down while Jobs finished
// records them when it comes back. Once a finished attempt is recorded, its
// Job is annotated and its ttlSecondsAfterFinished shortened so that it is
// deleted Config.Grace later: the outcome is kept, and etcd keeps only
// recent Jobs.
//
// Several replicas may reconcile the same Jobs; rec's moves are idempotent.
func (r *Runner) Reconcile(ctx context.Context, rec runner.Recorder) error {
	c := &reconciler{
		r:   r,
		rec: rec,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "kjobs-jobs"}),
		log:  r.cfg.Log,
		gone: map[string]*batchv1.Job{},
	}
	defer c.queue.ShutDown()

	jobs, err := r.jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
		DeleteFunc: c.deleted,
	})
	if err != nil {
		return fmt.Errorf("kube.Reconcile: %w", err)
	}
	defer func() { _ = r.jobs.RemoveEventHandler(jobs) }()
	pods, err := r.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueuePodOwner,
		UpdateFunc: func(_, obj any) { c.enqueuePodOwner(obj) },
	})
	if err != nil {
		return fmt.Errorf("kube.Reconcile: %w", err)
	}
	defer func() { _ = r.pods.RemoveEventHandler(pods) }()

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *reconciler) enqueue(obj any) {
	if name := objectName(obj); name != "" {
		c.queue.Add(name)
	}
}

func (c *reconciler) enqueuePodOwner(obj any) {
	if pod, ok := obj.(*corev1.Pod); ok {
		if name := jobNameOf(pod); name != "" {
			c.queue.Add(name)
		}
	}
}

// deleted keeps a deleted Job's last state for its sync: an attempt whose
// Job is deleted before it finished has ended all the same, and one that
// finished just before may not have been recorded yet.
func (c *reconciler) deleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	c.mu.Lock()
	c.gone[j.Name] = j
	c.mu.Unlock()
	c.queue.Add(j.Name)
}

// next syncs one Job from the queue; it returns false once the queue is
// shut down.
func (c *reconciler) next(ctx context.Context) bool {
	name, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(name)
	retryIn, err := c.sync(ctx, name)
	switch {
	case ctx.Err() != nil:
		// Stopping: the next reconciler's first pass records it.
	case err != nil:
		c.log.Warn("recording a Job's attempt failed; retrying", "job", name, "error", err)
		c.queue.AddRateLimited(name)
	case retryIn > 0:
		c.queue.Forget(name)
		c.queue.AddAfter(name, retryIn)
	default:
		c.queue.Forget(name)
	}
	return true
}

// sync records the attempt of Job name as the cache shows it, and fails a
// running Job whose pod cannot start (see cannotStart). It returns a delay
// after which to look again: when the Job has finished but its pod's final
// state, which says more, has not reached the cache yet, or when a pending
// pod's start deadline is still to come.
func (c *reconciler) sync(ctx context.Context, name string) (time.Duration, error) {
	j, ok := c.r.cachedJob(name)
	if !ok {
		c.mu.Lock()
		j, ok = c.gone[name]
		delete(c.gone, name)
		c.mu.Unlock()
		if !ok || j.Annotations[annotationRecorded] == "true" {
			return 0, nil
		}
		return 0, c.record(ctx, j, true)
	}
	if j.Annotations[annotationRecorded] == "true" {
		return 0, nil
	}
	cond := finished(j)
	if cond != nil && awaitingPod(j, c.r.podsOf(j)) {
		if wait := podGrace - time.Since(cond.LastTransitionTime.Time); wait > 0 {
			return wait, nil
		}
	}
	var recheck time.Duration
	if _, failing := j.Annotations[annotationStartFailure]; cond == nil && !failing {
		var failure string
		failure, recheck = cannotStart(j, c.r.podsOf(j), time.Now(), c.r.cfg.StartDeadline)
		if failure != "" {
			// The Job's update, once the Job controller fails it, brings
			// it back here to be recorded.
			return 0, c.r.failStart(ctx, j, failure)
		}
	}
	return recheck, c.record(ctx, j, false)
}

// record tells the Recorder of the Job's attempt and, once the attempt has
// finished, marks the Job recorded.
func (c *reconciler) record(ctx context.Context, j *batchv1.Job, deleted bool) error {
	id := j.Labels[labelJobID]
	n, err := attemptNumber(j)
	if err != nil || id == "" {
		// Not an attempt kjobs can name; nothing will ever make it one.
		c.log.Warn("ignoring a kjobs Job without a job ID or attempt", "job", j.Name, "error", err)
		return nil
	}
	a := attemptOf(j, n, c.r.podsOf(j))
	if deleted && a.Outcome == job.OutcomeRunning {
		now := time.Now().UTC()
		a.Outcome, a.FinishedAt = job.OutcomeFailed, &now
		a.Reason, a.Message = ReasonDeleted, "the Job was deleted before it finished"
	}
	if err := c.rec.Record(ctx, id, a); err != nil {
		return err
	}
	if deleted || a.Outcome == job.OutcomeRunning {
		return nil
	}
	return c.markRecorded(ctx, j, *a.FinishedAt)
}

// markRecorded annotates a finished Job as recorded and has the TTL
// controller delete it Grace from now, unless its own TTL ends sooner.
func (c *reconciler) markRecorded(ctx context.Context, j *batchv1.Job, finishedAt time.Time) error {
	ttl := seconds(time.Since(finishedAt) + c.r.cfg.Grace)
	if j.Spec.TTLSecondsAfterFinished != nil && int64(*j.Spec.TTLSecondsAfterFinished) < ttl {
		ttl = int64(*j.Spec.TTLSecondsAfterFinished)
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]string{annotationRecorded: "true"},
		},
		"spec": map[string]any{"ttlSecondsAfterFinished": ttl},
	})
	if err != nil {
		return err
	}
	_, err = c.r.client.BatchV1().Jobs(j.Namespace).Patch(ctx, j.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil // gone already; its outcome is kept
	}
	if err != nil {
		return fmt.Errorf("marking Job %s recorded: %w", j.Name, err)
	}
	return nil
}
