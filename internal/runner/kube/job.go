package kube

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/processor/function"
)

// Labels of every Job and pod the runner creates. The dispatcher derives a
// job's attempts from labelJobID and labelAttempt; labelManagedBy scopes the
// runner's informers to its own objects.
const (
	labelJobID     = "kjobs.dev/job-id"
	labelAttempt   = "kjobs.dev/attempt"
	labelFunction  = "kjobs.dev/function"
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "kjobs"
)

// Labels the Job controller puts on a Job's pods. The legacy one is read
// too, for pods of Jobs created by an older control plane.
const (
	labelJobName       = batchv1.JobNameLabel
	labelLegacyJobName = "job-name"
)

// containerName is the one container of every Job's pod.
const containerName = "processor"

// annotationDoNotDisrupt asks Karpenter not to disrupt the pod's node while
// the pod runs; Placement.DoNotDisrupt sets it.
const annotationDoNotDisrupt = "karpenter.sh/do-not-disrupt"

// nonRoot is the user and group the processor runs as: distroless's
// nonroot, which ko's base images use too.
const nonRoot = 65532

// newJob builds the Job that runs one attempt. It is pure, so that the
// whole object can be checked by a unit test.
func newJob(cfg Config, spec runner.Spec, p Placement) *batchv1.Job {
	own := map[string]string{
		labelJobID:     spec.JobID,
		labelAttempt:   strconv.Itoa(spec.Attempt),
		labelFunction:  spec.Function,
		labelManagedBy: managedBy,
	}
	// The job's labels go on the Job and its pod, the placement's on the
	// pod only, and kjobs' own last so that they always win: the request
	// and placementFor refuse them already, this keeps the informers'
	// selector true anyway.
	labels := map[string]string{}
	maps.Copy(labels, spec.Labels)
	maps.Copy(labels, own)
	podLabels := maps.Clone(p.PodLabels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, spec.Labels)
	maps.Copy(podLabels, own)
	annotations := maps.Clone(p.PodAnnotations)
	if p.DoNotDisrupt {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[annotationDoNotDisrupt] = "true"
	}

	args := []byte("{}")
	if len(spec.Args) > 0 {
		// Args come from JSON, so they marshal; the request's Validate
		// has checked it.
		args, _ = json.Marshal(spec.Args)
	}
	// A declared function runs in its own image, with its own command
	// and args; a built-in one in the processor image.
	image := cfg.Image
	if p.Image != "" {
		image = p.Image
	}

	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:      runner.Name(spec.JobID, spec.Attempt),
			Namespace: cfg.Namespace,
			Labels:    labels,
		},
		Spec: batchv1.JobSpec{
			// One pod per attempt: retries are the Broker's, each a new Job,
			// so that every retry is visible and counted.
			BackoffLimit:            new(int32(0)),
			ActiveDeadlineSeconds:   new(seconds(spec.Deadline(cfg.Deadline))),
			TTLSecondsAfterFinished: new(int32(seconds(cfg.TTL))),
			// A pod evicted, preempted or taken by a node autoscaler's
			// consolidation has done nothing wrong: the Job controller
			// replaces it within the same Job, so the disruption neither
			// uses up the backoff limit of 0 nor one of the Broker's
			// retries. Any other pod failure fails the Job as before.
			PodFailurePolicy: &batchv1.PodFailurePolicy{
				Rules: []batchv1.PodFailurePolicyRule{{
					Action: batchv1.PodFailurePolicyActionIgnore,
					OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{
						Type:   corev1.DisruptionTarget,
						Status: corev1.ConditionTrue,
					}},
				}},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      podLabels,
					Annotations: annotations,
				},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           cfg.ServiceAccount,
					AutomountServiceAccountToken: new(false),
					NodeSelector:                 maps.Clone(p.NodeSelector),
					Tolerations:                  p.Tolerations,
					Affinity:                     p.Affinity,
					// What the restricted Pod Security Standard asks, so that
					// the pods are admitted in a namespace that enforces it.
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   new(true),
						RunAsUser:      new(int64(nonRoot)),
						RunAsGroup:     new(int64(nonRoot)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:    containerName,
						Image:   image,
						Command: p.Command,
						Args:    p.ContainerArgs,
						Env: []corev1.EnvVar{
							{Name: function.EnvFunction, Value: spec.Function},
							{Name: function.EnvArgs, Value: string(args)},
							{Name: function.EnvJobID, Value: spec.JobID},
							{Name: function.EnvAttempt, Value: strconv.Itoa(spec.Attempt)},
						},
						Resources: p.Resources,
						// A processor that crashes before writing its
						// termination message still leaves its last log lines
						// as the attempt's message.
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

// attemptNumber reads a Job's attempt from its label.
func attemptNumber(j *batchv1.Job) (int, error) {
	v := j.Labels[labelAttempt]
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("Job %s: label %s=%q is not an attempt number", j.Name, labelAttempt, v)
	}
	return n, nil
}

// finished returns the Job's Complete or Failed condition, or nil while it
// runs. The Job controller sets these only once no pod of the Job is still
// running, which is when an attempt is really over; SuccessCriteriaMet and
// FailureTarget come earlier and are not enough.
func finished(j *batchv1.Job) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

// termination returns how the processor container of the Job's pods ended,
// the latest if several did, or nil if none has ended yet. Only pods the
// Job controls count: a pod left from a deleted Job of the same name is not
// this attempt's.
func termination(j *batchv1.Job, pods []*corev1.Pod) *corev1.ContainerStateTerminated {
	var last *corev1.ContainerStateTerminated
	for _, pod := range pods {
		if !metav1.IsControlledBy(pod, j) {
			continue
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if t := cs.State.Terminated; cs.Name == containerName && t != nil {
				if last == nil || t.FinishedAt.After(last.FinishedAt.Time) {
					last = t
				}
			}
		}
	}
	return last
}

// podExplains reports whether the Job's outcome was decided by its pod's
// container exiting, in which case that container's exit code and
// termination message are the attempt's. A Job failed for any other reason,
// such as DeadlineExceeded, had its pod stopped from outside, and the Job's
// condition says more than the pod does.
func podExplains(c *batchv1.JobCondition) bool {
	return c.Type == batchv1.JobComplete || c.Reason == batchv1.JobReasonBackoffLimitExceeded
}

// attemptOf derives attempt n from its Job and the Job's pods.
func attemptOf(j *batchv1.Job, n int, pods []*corev1.Pod) job.Attempt {
	a := job.Attempt{
		Attempt:   n,
		Job:       j.Name,
		StartedAt: j.CreationTimestamp.Time,
		Outcome:   job.OutcomeRunning,
	}
	if j.Status.StartTime != nil {
		a.StartedAt = j.Status.StartTime.Time
	}
	c := finished(j)
	if c == nil {
		return a
	}
	a.FinishedAt = new(c.LastTransitionTime.Time)
	term := termination(j, pods)
	if term != nil {
		a.ExitCode = new(int(term.ExitCode))
	}
	if c.Type == batchv1.JobComplete {
		a.Outcome = job.OutcomeSucceeded
		// A Complete Job's pod exited 0 even when that pod is no longer in
		// the cache.
		a.ExitCode = new(0)
		if term != nil {
			a.Message = strings.TrimSpace(term.Message)
		}
		return a
	}
	a.Outcome = job.OutcomeFailed
	a.Reason, a.Message = c.Reason, c.Message
	if reason, msg, ok := startFailureOf(j); ok && c.Reason == batchv1.JobReasonDeadlineExceeded {
		// The deadline is the one the reconciler cut short because the pod
		// could not start: that is the reason to report.
		a.Reason, a.Message = reason, msg
	}
	if term != nil && podExplains(c) {
		if term.Reason != "" {
			a.Reason = term.Reason
		}
		if msg := strings.TrimSpace(term.Message); msg != "" {
			a.Message = msg
		}
	}
	return a
}

// awaitingPod reports whether the Job has finished in a way its pod
// explains but the pod's final state has not reached the cache yet: the
// Job and pod informers watch separately, so the Job's condition can arrive
// first.
func awaitingPod(j *batchv1.Job, pods []*corev1.Pod) bool {
	c := finished(j)
	return c != nil && podExplains(c) && termination(j, pods) == nil
}
