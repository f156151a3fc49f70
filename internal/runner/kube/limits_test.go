package kube

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// longRunning is a functions ConfigMap entry whose pods kwok keeps Running
// for a minute (then fails them), longer than any of these tests waits.
var longRunning = testenv.Chaos(1, "Error", "ran a minute", time.Minute)

// TestJobTimeout checks that a job's timeout, shorter than the install's
// deadline, stops its attempt: the Job controller fails the Job past its
// activeDeadlineSeconds while kwok keeps the pod running. It also checks
// that the job's labels are on the Job and the pod.
func TestJobTimeout(t *testing.T) {
	t.Parallel()
	env := setup(t, map[string]string{"sleep": longRunning}, nil)
	ctx := timeout(t, 2*time.Minute)
	id := uuid.NewString()
	spec := runner.Spec{
		JobID: id, Attempt: 1, Function: "sleep", Timeout: 2 * time.Second,
		Labels: map[string]string{"team": "data"},
	}
	if _, err := env.r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	got, err := env.r.Wait(ctx, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != job.OutcomeFailed || got.Reason != batchv1.JobReasonDeadlineExceeded || got.FinishedAt == nil {
		t.Fatalf("attempt = %+v, want failed with reason DeadlineExceeded", got)
	}
	// The Job's times have whole seconds, and the Job controller may act a
	// second or two late on a busy machine.
	if ran := got.FinishedAt.Sub(got.StartedAt); ran < 2*time.Second || ran > 8*time.Second {
		t.Errorf("attempt ran %v, want about the 2s timeout", ran)
	}

	j, err := env.client.BatchV1().Jobs(env.ns).Get(ctx, runner.Name(id, 1), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j.Labels["team"] != "data" || j.Spec.Template.Labels["team"] != "data" {
		t.Errorf("Job labels %v, pod template labels %v; want team=data on both", j.Labels, j.Spec.Template.Labels)
	}
}

// TestDisruptionIsNotFailure checks the Job's podFailurePolicy with the Job
// controller: a pod that fails with the DisruptionTarget condition, as the
// eviction API, preemption or a node autoscaler leave it, is replaced
// within the same Job, and the attempt goes on.
func TestDisruptionIsNotFailure(t *testing.T) {
	t.Parallel()
	env := setup(t, map[string]string{"sleep": longRunning}, nil)
	ctx := timeout(t, 2*time.Minute)
	rec := newRecorder()
	reconcile(t, env.r, rec)
	id := uuid.NewString()
	if _, err := env.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "sleep"}); err != nil {
		t.Fatal(err)
	}
	name := runner.Name(id, 1)
	pods := func() []corev1.Pod {
		list, err := env.client.CoreV1().Pods(env.ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.Set{labelJobName: name}.String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	var first corev1.Pod
	eventually(t, ctx, "the first pod running", func() bool {
		p := pods()
		if len(p) == 1 && p[0].Status.Phase == corev1.PodRunning {
			first = p[0]
			return true
		}
		return false
	})

	// What the eviction API does, then the kubelet: the condition, then
	// the pod's end. kwok writes the pod's status too: read it again and
	// retry when the two meet.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := env.client.CoreV1().Pods(env.ns).Get(ctx, first.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI",
			Message: "Eviction API: evicting", LastTransitionTime: metav1.Now(),
		})
		pod.Status.Phase = corev1.PodFailed
		for i := range pod.Status.ContainerStatuses {
			pod.Status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 137, Reason: "Error", FinishedAt: metav1.Now(),
			}}
		}
		_, err = env.client.CoreV1().Pods(env.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	eventually(t, ctx, "a replacement pod", func() bool {
		for _, p := range pods() {
			if p.Name != first.Name && p.DeletionTimestamp == nil {
				return true
			}
		}
		return false
	})
	j, err := env.client.BatchV1().Jobs(env.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobFailed || c.Type == batchv1.JobFailureTarget) && c.Status == corev1.ConditionTrue {
			t.Errorf("the Job has condition %s (%s) after a disruption, want it running", c.Type, c.Reason)
		}
	}
	attempts, err := env.r.Attempts(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 1 || attempts[0].Outcome != job.OutcomeRunning {
		t.Errorf("Attempts() = %+v, want attempt 1 still running", attempts)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, a := range rec.records[id] {
		if a.Outcome != job.OutcomeRunning {
			t.Errorf("the reconciler recorded %+v, want only the running attempt", a)
		}
	}
}

// TestCannotStartFailsAttempt checks that the reconciler fails an attempt
// whose pod cannot start, with the reason, through the Job controller:
// the lowered activeDeadlineSeconds of a running Job is accepted by the API
// server and acted on.
func TestCannotStartFailsAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// waiting, when set, is the container's waiting reason the test
		// sets, as the kubelet would; the pod is unschedulable otherwise.
		waiting       string
		startDeadline time.Duration
		wantMessage   string
	}{{
		name:          "unschedulable past the start deadline",
		startDeadline: 2 * time.Second,
		wantMessage:   "still Unschedulable after the start deadline of 2s: 0/",
	}, {
		name:          "ImagePullBackOff at once",
		waiting:       "ImagePullBackOff",
		startDeadline: time.Hour,
		wantMessage:   `Back-off pulling image "registry.example/kjobs/processor:test"`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := setup(t, map[string]string{"sleep": nowhere}, func(c *Config) { c.StartDeadline = tt.startDeadline })
			ctx := timeout(t, 2*time.Minute)
			rec := newRecorder()
			reconcile(t, env.r, rec)
			id := uuid.NewString()
			begin := time.Now()
			if _, err := env.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "sleep"}); err != nil {
				t.Fatal(err)
			}
			if tt.waiting != "" {
				setWaiting(t, env, runner.Name(id, 1), tt.waiting, tt.wantMessage)
			}

			got := rec.await(t, ctx, id, ended)
			wantReason := tt.waiting
			if wantReason == "" {
				wantReason = corev1.PodReasonUnschedulable
			}
			if got.Outcome != job.OutcomeFailed || got.Reason != wantReason || !strings.Contains(got.Message, tt.wantMessage) {
				t.Errorf("attempt recorded as %+v, want failed with reason %s and a message saying %q", got, wantReason, tt.wantMessage)
			}
			if took := time.Since(begin); took > tt.startDeadline+20*time.Second {
				t.Errorf("the attempt failed %v after it started, want soon after the start deadline %v", took, tt.startDeadline)
			}
			j, err := env.client.BatchV1().Jobs(env.ns).Get(ctx, runner.Name(id, 1), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c := finished(j); c == nil || c.Type != batchv1.JobFailed {
				t.Errorf("Job conditions %+v, want Failed", j.Status.Conditions)
			}
			if !strings.HasPrefix(j.Annotations[annotationStartFailure], wantReason+": ") {
				t.Errorf("Job annotation %s = %q, want the reason", annotationStartFailure, j.Annotations[annotationStartFailure])
			}
		})
	}
}

// setWaiting sets the container of the Job's pod waiting with reason, as
// the kubelet would: no kubelet runs here, and kwok leaves a pod no node
// took alone.
func setWaiting(t *testing.T, env testEnv, jobName, reason, message string) {
	t.Helper()
	ctx := timeout(t, time.Minute)
	var pod *corev1.Pod
	eventually(t, ctx, "the Job's pod", func() bool {
		list, err := env.client.CoreV1().Pods(env.ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.Set{labelJobName: jobName}.String(),
		})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		pod = &list.Items[0]
		return true
	})
	// The scheduler writes the pod's status too (PodScheduled false): read
	// it again and retry when the two meet.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := env.client.CoreV1().Pods(env.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		current.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: containerName, Image: current.Spec.Containers[0].Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
		}}
		_, err = env.client.CoreV1().Pods(env.ns).UpdateStatus(ctx, current, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
