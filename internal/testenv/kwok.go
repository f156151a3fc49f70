package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// What the tests make kwok do to the pods of a function, through entries of
// the functions ConfigMap (its podLabels, podAnnotations, nodeSelector and
// tolerations), since kwok runs no container.

// ChaosLabel is the label of kwok's pod-container-running-failed stage;
// its annotations are the label plus "/exit-code", "/reason", "/message",
// "/delay" and "/jitter-delay". kwok writes reason and message into YAML
// unquoted: they must not contain ": ".
const ChaosLabel = "pod-container-running-failed.stage.kwok.x-k8s.io"

// Chaos is a functions ConfigMap entry whose pods kwok fails with exitCode,
// reason and message, delay after they started running.
func Chaos(exitCode int, reason, message string, delay time.Duration) string {
	return fmt.Sprintf(`
podLabels:
  %[1]s: "true"
podAnnotations:
  %[1]s/exit-code: "%[2]d"
  %[1]s/reason: %[3]s
  %[1]s/message: %[4]s
  %[1]s/delay: %[5]s
  %[1]s/jitter-delay: %[5]s
`, ChaosLabel, exitCode, reason, message, delay)
}

// OnPool is a functions ConfigMap entry (or the end of one) whose pods only
// the node of pool takes: until AddNode adds it, they stay Pending and the
// attempt runs.
func OnPool(pool string) string {
	return fmt.Sprintf(`
nodeSelector: {kjobs.dev/pool: %[1]s}
tolerations:
- {key: kjobs.dev/pool, operator: Equal, value: %[1]s, effect: NoSchedule}
`, pool)
}

// NewPool names a node pool of the test's own, for OnPool and AddNode.
func NewPool() string { return "p-" + uuid.NewString()[:13] }

// AddNode adds a kwok node for pool, tainted so that only pods that
// tolerate pool land on it, and removes it when the test ends.
func AddNode(t testing.TB, ctx context.Context, client kubernetes.Interface, pool string) {
	t.Helper()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "kjobs-" + pool,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{
				"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"kubernetes.io/hostname": "kjobs-" + pool, "kjobs.dev/pool": pool,
			},
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

// JobFinished returns the Job's true Complete or Failed condition, or nil
// while it runs.
func JobFinished(j *batchv1.Job) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

// JobOutcome returns the type of the Job's JobFinished condition, or "".
func JobOutcome(j *batchv1.Job) batchv1.JobConditionType {
	if c := JobFinished(j); c != nil {
		return c.Type
	}
	return ""
}

// JobNames returns the names of jobs.
func JobNames(jobs []batchv1.Job) []string {
	names := make([]string, 0, len(jobs))
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	return names
}
