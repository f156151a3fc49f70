package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// annotationStartFailure marks a Job whose pod could not start, with
// "<reason>: <message>". The reconciler sets it together with an
// activeDeadlineSeconds already past, so that the Job controller fails the
// Job, deletes its pod and leaves a Failed Job like any other; attemptOf
// then reports the annotation's reason rather than DeadlineExceeded. The
// cluster stays the record of why the attempt ended, for every replica
// and for kubectl.
const annotationStartFailure = "kjobs.dev/start-failure"

// Waiting reasons of a container that will not start. Those the kubelet
// reports only after it has failed and retried fail the attempt at once:
// waiting longer changes nothing but the bill. The others may be fixed from
// outside (a node the autoscaler adds, a Secret created a moment late, a
// registry back after a blip), so they fail it only once the pod has waited
// for Config.StartDeadline.
var (
	failAtOnce = map[string]bool{
		"ImagePullBackOff": true,
		"InvalidImageName": true,
	}
	failAfterDeadline = map[string]bool{
		"ErrImagePull":               true,
		"CreateContainerConfigError": true,
	}
)

// maxStartMessage bounds the message kept in the annotation: a scheduler's
// message lists every node's reason and can be long.
const maxStartMessage = 1024

// cannotStart reports why the Job's pod cannot start, as "<reason>:
// <message>", or "" while it may yet start. In that case it also returns
// how long until the start deadline of a pod that waits for a reason of
// failAfterDeadline or is unschedulable, so that the caller looks again
// then: no event may come in the meantime.
func cannotStart(j *batchv1.Job, pods []*corev1.Pod, now time.Time, deadline time.Duration) (string, time.Duration) {
	var recheck time.Duration
	for _, pod := range pods {
		if !metav1.IsControlledBy(pod, j) || pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodPending {
			continue
		}
		reason, message := pendingReason(pod)
		switch {
		case reason == "":
			continue
		case failAtOnce[reason]:
			return startFailure(reason, message), 0
		}
		left := deadline - now.Sub(pod.CreationTimestamp.Time)
		if left <= 0 {
			return startFailure(reason, fmt.Sprintf("still %s after the start deadline of %v: %s", reason, deadline, message)), 0
		}
		if recheck == 0 || left < recheck {
			recheck = left
		}
	}
	return "", recheck
}

// pendingReason returns why a pending pod has not started, if it is one
// cannotStart knows: a container waiting for a reason of failAtOnce or
// failAfterDeadline, or the scheduler finding no node for it.
func pendingReason(pod *corev1.Pod) (reason, message string) {
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && (failAtOnce[w.Reason] || failAfterDeadline[w.Reason]) {
			return w.Reason, w.Message
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Reason, c.Message
		}
	}
	return "", ""
}

func startFailure(reason, message string) string {
	if len(message) > maxStartMessage {
		message = message[:maxStartMessage]
	}
	return reason + ": " + message
}

// startFailureOf returns the reason and message of the Job's start-failure
// annotation, if it has one.
func startFailureOf(j *batchv1.Job) (reason, message string, ok bool) {
	v, ok := j.Annotations[annotationStartFailure]
	if !ok {
		return "", "", false
	}
	reason, message, _ = strings.Cut(v, ": ")
	return reason, message, true
}

// failStart annotates the Job with why its pod cannot start and lowers its
// activeDeadlineSeconds to 1, long past, in one patch: the Job controller
// then fails the Job as DeadlineExceeded and deletes its pod. Several
// replicas may patch the same Job; the result is the same.
func (r *Runner) failStart(ctx context.Context, j *batchv1.Job, failure string) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]string{annotationStartFailure: failure},
		},
		"spec": map[string]any{"activeDeadlineSeconds": 1},
	})
	if err != nil {
		return err
	}
	_, err = r.client.BatchV1().Jobs(j.Namespace).Patch(ctx, j.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil // gone already; the deletion is recorded
	}
	if err != nil {
		return fmt.Errorf("failing Job %s whose pod cannot start: %w", j.Name, err)
	}
	return nil
}
