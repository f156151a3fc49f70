package kube

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCannotStart(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "kjobs-0199-1", UID: "job-uid"}}
	isController := true
	pod := func(change func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				CreationTimestamp: metav1.NewTime(created),
				OwnerReferences:   []metav1.OwnerReference{{UID: "job-uid", Controller: &isController}},
			},
			Status: corev1.PodStatus{Phase: corev1.PodPending},
		}
		change(p)
		return p
	}
	waiting := func(reason, message string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{
				Name: containerName, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
			}}
		}
	}
	unschedulable := func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
		}}
	}
	const deadline = 5 * time.Minute

	tests := []struct {
		name        string
		pods        []*corev1.Pod
		age         time.Duration
		wantFailure string
		wantRecheck time.Duration
	}{{
		name: "no pod yet",
	}, {
		name: "pending, being pulled",
		pods: []*corev1.Pod{pod(waiting("ContainerCreating", ""))},
		age:  time.Hour,
	}, {
		name: "running",
		pods: []*corev1.Pod{pod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning })},
		age:  time.Hour,
	}, {
		name:        "ImagePullBackOff fails at once",
		pods:        []*corev1.Pod{pod(waiting("ImagePullBackOff", `Back-off pulling image "registry.invalid/x"`))},
		age:         10 * time.Second,
		wantFailure: `ImagePullBackOff: Back-off pulling image "registry.invalid/x"`,
	}, {
		name:        "InvalidImageName fails at once",
		pods:        []*corev1.Pod{pod(waiting("InvalidImageName", `couldn't parse image name "A B"`))},
		wantFailure: `InvalidImageName: couldn't parse image name "A B"`,
	}, {
		name:        "ErrImagePull waits for the start deadline",
		pods:        []*corev1.Pod{pod(waiting("ErrImagePull", "connection refused"))},
		age:         time.Minute,
		wantRecheck: 4 * time.Minute,
	}, {
		name:        "CreateContainerConfigError past the start deadline",
		pods:        []*corev1.Pod{pod(waiting("CreateContainerConfigError", `secret "creds" not found`))},
		age:         deadline,
		wantFailure: `CreateContainerConfigError: still CreateContainerConfigError after the start deadline of 5m0s: secret "creds" not found`,
	}, {
		name:        "unschedulable within the start deadline",
		pods:        []*corev1.Pod{pod(unschedulable)},
		age:         90 * time.Second,
		wantRecheck: 210 * time.Second,
	}, {
		name:        "unschedulable past the start deadline",
		pods:        []*corev1.Pod{pod(unschedulable)},
		age:         deadline + time.Second,
		wantFailure: "Unschedulable: still Unschedulable after the start deadline of 5m0s: 0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
	}, {
		name: "another Job's pod",
		pods: []*corev1.Pod{pod(func(p *corev1.Pod) {
			waiting("ImagePullBackOff", "")(p)
			p.OwnerReferences[0].UID = "other"
		})},
	}, {
		name: "a pod being deleted",
		pods: []*corev1.Pod{pod(func(p *corev1.Pod) {
			waiting("ImagePullBackOff", "")(p)
			p.DeletionTimestamp = new(metav1.NewTime(created))
		})},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failure, recheck := cannotStart(j, tt.pods, created.Add(tt.age), deadline)
			if failure != tt.wantFailure || recheck != tt.wantRecheck {
				t.Errorf("cannotStart() = %q, %v; want %q, %v", failure, recheck, tt.wantFailure, tt.wantRecheck)
			}
		})
	}
}
