package kube

import (
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
)

func TestNewJob(t *testing.T) {
	t.Parallel()
	cfg := Config{Namespace: "kjobs", Image: "registry.example/processor@sha256:abc", Deadline: 90 * time.Second}.WithDefaults()
	// want is the Job of attempt 2 of job "0199" with no placement; each
	// case changes what its input changes.
	want := func(change func(*batchv1.Job)) *batchv1.Job {
		labels := map[string]string{
			"kjobs.dev/job-id":             "0199",
			"kjobs.dev/attempt":            "2",
			"kjobs.dev/function":           "report",
			"app.kubernetes.io/managed-by": "kjobs",
		}
		j := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "kjobs-0199-2", Namespace: "kjobs", Labels: labels},
			Spec: batchv1.JobSpec{
				BackoffLimit:            new(int32(0)),
				ActiveDeadlineSeconds:   new(int64(90)),
				TTLSecondsAfterFinished: new(int32(86400)),
				PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
					Action:          batchv1.PodFailurePolicyActionIgnore,
					OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
				}}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels)},
					Spec: corev1.PodSpec{
						RestartPolicy:                corev1.RestartPolicyNever,
						ServiceAccountName:           "kjobs-job",
						AutomountServiceAccountToken: new(false),
						SecurityContext: &corev1.PodSecurityContext{
							RunAsNonRoot:   new(true),
							RunAsUser:      new(int64(65532)),
							RunAsGroup:     new(int64(65532)),
							SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						Containers: []corev1.Container{{
							Name:  "processor",
							Image: "registry.example/processor@sha256:abc",
							Env: []corev1.EnvVar{
								{Name: "KJOBS_FUNCTION", Value: "report"},
								{Name: "KJOBS_ARGS", Value: `{"day":"2026-11-02","format":"csv"}`},
								{Name: "KJOBS_JOB_ID", Value: "0199"},
								{Name: "KJOBS_ATTEMPT", Value: "2"},
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
		change(j)
		return j
	}
	spec := runner.Spec{JobID: "0199", Attempt: 2, Function: "report", Args: job.Args{"format": "csv", "day": "2026-11-02"}}
	placement := Placement{
		Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}},
		NodeSelector:   map[string]string{"pool": "batch"},
		Tolerations:    []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
		Affinity:       &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{}},
		PodLabels:      map[string]string{"cost-center": "analytics"},
		PodAnnotations: map[string]string{"example.com/owner": "data"},
	}
	withSpec := func(change func(*runner.Spec)) runner.Spec {
		s := spec
		change(&s)
		return s
	}

	tests := []struct {
		name      string
		spec      runner.Spec
		placement Placement
		want      *batchv1.Job
	}{{
		name: "no placement",
		spec: spec,
		want: want(func(*batchv1.Job) {}),
	}, {
		name: "no args are an empty object, never null",
		spec: runner.Spec{JobID: "0199", Attempt: 2, Function: "report"},
		want: want(func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Env[1].Value = "{}" }),
	}, {
		name:      "placement",
		spec:      spec,
		placement: placement,
		want: want(func(j *batchv1.Job) {
			pod := &j.Spec.Template
			pod.Labels = map[string]string{
				"kjobs.dev/job-id":             "0199",
				"kjobs.dev/attempt":            "2",
				"kjobs.dev/function":           "report",
				"app.kubernetes.io/managed-by": "kjobs",
				"cost-center":                  "analytics",
			}
			pod.Annotations = map[string]string{"example.com/owner": "data"}
			pod.Spec.NodeSelector = placement.NodeSelector
			pod.Spec.Tolerations = placement.Tolerations
			pod.Spec.Affinity = placement.Affinity
			pod.Spec.Containers[0].Resources = placement.Resources
		}),
	}, {
		name: "a timeout within the deadline, rounded up to whole seconds",
		spec: withSpec(func(s *runner.Spec) { s.Timeout = 2500 * time.Millisecond }),
		want: want(func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = new(int64(3)) }),
	}, {
		name: "a timeout above the deadline keeps the deadline",
		spec: withSpec(func(s *runner.Spec) { s.Timeout = time.Hour }),
		want: want(func(*batchv1.Job) {}),
	}, {
		name: "the job's labels on the Job and its pod, kjobs' own winning",
		spec: withSpec(func(s *runner.Spec) {
			s.Labels = map[string]string{"team": "data", "cost-center": "jobs", "kjobs.dev/job-id": "other"}
		}),
		placement: Placement{PodLabels: map[string]string{"cost-center": "analytics", "tier": "batch"}},
		want: want(func(j *batchv1.Job) {
			j.Labels["team"] = "data"
			j.Labels["cost-center"] = "jobs"
			j.Spec.Template.Labels["team"] = "data"
			j.Spec.Template.Labels["cost-center"] = "jobs"
			j.Spec.Template.Labels["tier"] = "batch"
		}),
	}, {
		name: "a declared function: its image, command and container args, same environment and security",
		spec: spec,
		placement: Placement{Declaration: catalog.Declaration{
			Image:         "ghcr.io/team/resize@sha256:def",
			Command:       []string{"/ko-app/resize"},
			ContainerArgs: []string{"--verbose"},
			ArgsSchema:    []byte(`{"type":"object"}`),
		}},
		want: want(func(j *batchv1.Job) {
			c := &j.Spec.Template.Spec.Containers[0]
			c.Image = "ghcr.io/team/resize@sha256:def"
			c.Command = []string{"/ko-app/resize"}
			c.Args = []string{"--verbose"}
		}),
	}, {
		name:      "doNotDisrupt",
		spec:      spec,
		placement: Placement{DoNotDisrupt: true, PodAnnotations: map[string]string{"example.com/owner": "data"}},
		want: want(func(j *batchv1.Job) {
			j.Spec.Template.Annotations = map[string]string{"example.com/owner": "data", "karpenter.sh/do-not-disrupt": "true"}
		}),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, newJob(cfg, tt.spec, tt.placement)); diff != "" {
				t.Errorf("newJob() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAttemptOf(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	started := created.Add(time.Second)
	ended := created.Add(5 * time.Second)

	jobWith := func(conds ...batchv1.JobCondition) *batchv1.Job {
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "kjobs-0199-1", UID: "job-uid", CreationTimestamp: metav1.NewTime(created)},
			Status:     batchv1.JobStatus{StartTime: new(metav1.NewTime(started)), Conditions: conds},
		}
	}
	cond := func(typ batchv1.JobConditionType, reason, message string) batchv1.JobCondition {
		return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(ended)}
	}
	complete := cond(batchv1.JobComplete, "CompletionsReached", "Reached expected number of succeeded pods")
	podFailed := cond(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	deadline := cond(batchv1.JobFailed, "DeadlineExceeded", "Job was active longer than specified deadline")
	newPod := func(owner types.UID, term *corev1.ContainerStateTerminated) *corev1.Pod {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Name:            "kjobs-0199-1-abcde",
			OwnerReferences: []metav1.OwnerReference{{Kind: "Job", Name: "kjobs-0199-1", UID: owner, Controller: new(true)}},
		}}
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "processor", State: corev1.ContainerState{Terminated: term}}}
		return pod
	}
	exited := func(code int32, reason, message string) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: message, FinishedAt: metav1.NewTime(ended)}
	}
	running := job.Attempt{Attempt: 1, Job: "kjobs-0199-1", StartedAt: started, Outcome: job.OutcomeRunning}
	done := func(outcome job.Outcome, exit *int, reason, message string) job.Attempt {
		a := running
		a.FinishedAt, a.Outcome, a.ExitCode, a.Reason, a.Message = &ended, outcome, exit, reason, message
		return a
	}

	tests := []struct {
		name        string
		job         *batchv1.Job
		pods        []*corev1.Pod
		want        job.Attempt
		wantPodWait bool
	}{{
		name: "running",
		job:  jobWith(),
		pods: []*corev1.Pod{newPod("job-uid", nil)},
		want: running,
	}, {
		name: "not started yet: the Job's creation time",
		job:  &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "kjobs-0199-1", CreationTimestamp: metav1.NewTime(created)}},
		want: job.Attempt{Attempt: 1, Job: "kjobs-0199-1", StartedAt: created, Outcome: job.OutcomeRunning},
	}, {
		name: "FailureTarget alone is still running",
		job:  jobWith(cond(batchv1.JobFailureTarget, "DeadlineExceeded", "")),
		want: running,
	}, {
		name: "succeeded with its result",
		job:  jobWith(complete),
		pods: []*corev1.Pod{newPod("job-uid", exited(0, "Completed", "3 rows\n"))},
		want: done(job.OutcomeSucceeded, new(0), "", "3 rows"),
	}, {
		name:        "succeeded, pod not cached yet",
		job:         jobWith(complete),
		want:        done(job.OutcomeSucceeded, new(0), "", ""),
		wantPodWait: true,
	}, {
		name: "failed: the container's code, reason and message",
		job:  jobWith(podFailed),
		pods: []*corev1.Pod{newPod("job-uid", exited(3, "Error", "no such table"))},
		want: done(job.OutcomeFailed, new(3), "Error", "no such table"),
	}, {
		name:        "failed, pod not cached yet: the Job's condition",
		job:         jobWith(podFailed),
		want:        done(job.OutcomeFailed, nil, "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
		wantPodWait: true,
	}, {
		name: "failed without a message: the Job's message",
		job:  jobWith(podFailed),
		pods: []*corev1.Pod{newPod("job-uid", exited(137, "OOMKilled", ""))},
		want: done(job.OutcomeFailed, new(137), "OOMKilled", "Job has reached the specified backoff limit"),
	}, {
		name: "deadline with a killed container: the Job says why",
		job:  jobWith(deadline),
		pods: []*corev1.Pod{newPod("job-uid", exited(143, "Error", "last log line"))},
		want: done(job.OutcomeFailed, new(143), "DeadlineExceeded", "Job was active longer than specified deadline"),
	}, {
		name: "deadline before the pod ran: no pod to wait for",
		job:  jobWith(deadline),
		pods: []*corev1.Pod{newPod("job-uid", nil)},
		want: done(job.OutcomeFailed, nil, "DeadlineExceeded", "Job was active longer than specified deadline"),
	}, {
		name: "deadline cut short because the pod could not start: the reason it could not",
		job: func() *batchv1.Job {
			j := jobWith(deadline)
			j.Annotations = map[string]string{annotationStartFailure: `ImagePullBackOff: Back-off pulling image "x": not found`}
			return j
		}(),
		pods: []*corev1.Pod{newPod("job-uid", nil)},
		want: done(job.OutcomeFailed, nil, "ImagePullBackOff", `Back-off pulling image "x": not found`),
	}, {
		name: "a start failure annotated, but the pod failed on its own first",
		job: func() *batchv1.Job {
			j := jobWith(podFailed)
			j.Annotations = map[string]string{annotationStartFailure: "Unschedulable: no nodes"}
			return j
		}(),
		pods: []*corev1.Pod{newPod("job-uid", exited(3, "Error", "no such table"))},
		want: done(job.OutcomeFailed, new(3), "Error", "no such table"),
	}, {
		name:        "a pod of an older Job of the same name is not this attempt's",
		job:         jobWith(podFailed),
		pods:        []*corev1.Pod{newPod("older-uid", exited(9, "Error", "old"))},
		want:        done(job.OutcomeFailed, nil, "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
		wantPodWait: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, attemptOf(tt.job, 1, tt.pods)); diff != "" {
				t.Errorf("attemptOf() (-want +got):\n%s", diff)
			}
			if got := awaitingPod(tt.job, tt.pods); got != tt.wantPodWait {
				t.Errorf("awaitingPod() = %v, want %v", got, tt.wantPodWait)
			}
		})
	}
}

func TestAttemptNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		label   string
		want    int
		wantErr bool
	}{
		{label: "1", want: 1},
		{label: "12", want: 12},
		{label: "0", wantErr: true},
		{label: "one", wantErr: true},
		{label: "", wantErr: true},
	}
	for _, tt := range tests {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Labels: map[string]string{labelAttempt: tt.label}}}
		got, err := attemptNumber(j)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("attemptNumber(%q) = %d, %v; want %d, error %v", tt.label, got, err, tt.want, tt.wantErr)
		}
	}
}
