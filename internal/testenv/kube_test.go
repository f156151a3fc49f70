package testenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kjobs/kjobs/internal/testenv"
)

// kwok's chaos stage pod-container-running-failed fails a running pod that
// carries its label, with the exit code, reason and message of these
// annotations (kwok puts reason and message into YAML unquoted: keep them
// free of ": ").
const (
	chaosExitCode = testenv.ChaosLabel + "/exit-code"
	chaosReason   = testenv.ChaosLabel + "/reason"
	chaosMessage  = testenv.ChaosLabel + "/message"
)

func TestJobCompletes(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, testenv.PodSecurity("restricted"))
	cs := kubernetes.NewForConfigOrDie(cfg)

	created := time.Now()
	if _, err := cs.BatchV1().Jobs(ns).Create(t.Context(), restrictedJob("ok", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	job := waitFinished(t, cs, ns, "ok")
	if cond := testenv.JobFinished(job); cond.Type != batchv1.JobComplete {
		t.Fatalf("job ended %s (%s: %s), want Complete", cond.Type, cond.Reason, cond.Message)
	}
	t.Logf("Complete %.1fs after creation", time.Since(created).Seconds())

	pod := onlyPod(t, cs, ns, "ok")
	if pod.Spec.NodeName != testenv.FakeNode {
		t.Errorf("pod ran on %q, want %q", pod.Spec.NodeName, testenv.FakeNode)
	}
	if term := terminated(t, pod); term.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", term.ExitCode)
	}
}

func TestJobFailsOnChaosLabel(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, testenv.PodSecurity("restricted"))
	cs := kubernetes.NewForConfigOrDie(cfg)

	const message = "function failed on purpose"
	j := restrictedJob("fails",
		map[string]string{testenv.ChaosLabel: "true"},
		map[string]string{chaosExitCode: "3", chaosReason: "Error", chaosMessage: message})
	if _, err := cs.BatchV1().Jobs(ns).Create(t.Context(), j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	job := waitFinished(t, cs, ns, "fails")
	if cond := testenv.JobFinished(job); cond.Type != batchv1.JobFailed || cond.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Fatalf("job ended %s (%s: %s), want Failed (BackoffLimitExceeded)", cond.Type, cond.Reason, cond.Message)
	}

	pod := onlyPod(t, cs, ns, "fails")
	if pod.Status.Phase != corev1.PodFailed {
		t.Errorf("pod phase %s, want Failed", pod.Status.Phase)
	}
	term := terminated(t, pod)
	if term.ExitCode != 3 || term.Reason != "Error" || term.Message != message {
		t.Errorf("terminated with exit code %d, reason %q, message %q; want 3, %q, %q",
			term.ExitCode, term.Reason, term.Message, "Error", message)
	}
}

func TestKnativeCRDsEstablished(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	dyn := dynamic.NewForConfigOrDie(cfg)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, name := range []string{
		"pingsources.sources.knative.dev",
		"brokers.eventing.knative.dev",
		"triggers.eventing.knative.dev",
		"services.serving.knative.dev",
	} {
		crd, err := crds.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("CRD %s: %v", name, err)
			continue
		}
		if !established(crd) {
			t.Errorf("CRD %s is not Established: %v", name, crd.Object["status"])
		}
		// No Knative webhook runs to convert between versions.
		if strategy, _, _ := unstructured.NestedString(crd.Object, "spec", "conversion", "strategy"); strategy != "None" {
			t.Errorf("CRD %s converts by %q, want None", name, strategy)
		}
	}

	// The CRDs' schemas still validate on the server.
	ns := testenv.Namespace(t, cfg, nil)
	for _, tc := range []struct {
		schedule string
		ok       bool
	}{
		{`"*/5 * * * *"`, true},
		{`5`, false},
	} {
		path := filepath.Join(t.TempDir(), "pingsource.yaml")
		manifest := `apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: probe
spec:
  schedule: ` + tc.schedule + `
  data: '{"function":"noop"}'
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: kjobs
`
		if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := testenv.Kubectl(t, "apply", "--dry-run=server", "-n", ns, "-f", path)
		switch {
		case tc.ok && err != nil:
			t.Errorf("schedule %s: %v\n%s", tc.schedule, err, out)
		case !tc.ok && (err == nil || !strings.Contains(out, "spec.schedule")):
			t.Errorf("schedule %s: want a rejection of spec.schedule, got %v\n%s", tc.schedule, err, out)
		}
	}
}

// restrictedJob is a Job that the restricted PodSecurity level admits, whose
// one pod runs once, with labels and annotations.
func restrictedJob(name string, labels, annotations map[string]string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: new(int32(0)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: new(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   new(true),
						RunAsUser:      new(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "processor",
						Image: "kjobs.invalid/processor:test", // kwok runs no container
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: new(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
}

// waitFinished watches the Job until it is Complete or Failed.
func waitFinished(t *testing.T, cs kubernetes.Interface, ns, name string) *batchv1.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	lw := cache.NewListWatchFromClient(cs.BatchV1().RESTClient(), "jobs", ns, fields.OneTermEqualSelector("metadata.name", name))
	ev, err := watchtools.UntilWithSync(ctx, lw, &batchv1.Job{}, nil, func(e watch.Event) (bool, error) {
		job, ok := e.Object.(*batchv1.Job)
		return ok && testenv.JobFinished(job) != nil, nil
	})
	if err != nil {
		t.Fatalf("job %s/%s did not finish: %v", ns, name, err)
	}
	return ev.Object.(*batchv1.Job)
}

func onlyPod(t *testing.T, cs kubernetes.Interface, ns, job string) *corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("job %s has %d pods, want 1", job, len(pods.Items))
	}
	return &pods.Items[0]
}

func terminated(t *testing.T, pod *corev1.Pod) *corev1.ContainerStateTerminated {
	t.Helper()
	if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("pod %s has not terminated: %+v", pod.Name, pod.Status.ContainerStatuses)
	}
	return pod.Status.ContainerStatuses[0].State.Terminated
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if c, ok := c.(map[string]any); ok && c["type"] == "Established" && c["status"] == "True" {
			return true
		}
	}
	return false
}
