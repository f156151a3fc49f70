package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// dispatcherProcess is the dispatcher binary running as a child process.
type dispatcherProcess struct {
	*testenv.Process
	url string
}

// startDispatcherProcess runs the dispatcher binary with env plus a port of
// its own and waits until it serves.
func startDispatcherProcess(t *testing.T, ctx context.Context, name string, env ...string) dispatcherProcess {
	t.Helper()
	port := testenv.FreePort(t)
	p := testenv.StartProcess(t, name, bin.dispatcher, append(env, fmt.Sprintf("PORT=%d", port))...)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The dispatcher listens once its runner's caches have synced.
	p.WaitReady(t, ctx, url+"/readyz")
	return dispatcherProcess{Process: p, url: url}
}

// TestDispatcherKilledMidAttempt kills the dispatcher binary while a
// delivery waits for its attempt, as a node failure or an OOM kill would,
// and checks that the Broker's redelivery to a new dispatcher adopts the
// attempt that is still running instead of starting another.
func TestDispatcherKilledMidAttempt(t *testing.T) {
	t.Parallel()
	// sleep's pods wait for a node pool that does not exist yet, which
	// keeps the attempt running for as long as the test needs.
	pool := testenv.NewPool()
	c := newCluster(t, map[string]string{"sleep": testenv.OnPool(pool)})
	redisAddr := testenv.RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	// The test reads what the dispatchers wrote through a store of its own.
	st := store.New(rdb, store.Options{})
	ctx := timeout(t, 3*time.Minute)
	env := []string{
		"REDIS_URL=redis://" + redisAddr,
		"KUBECONFIG=" + c.kubeconfig,
		"KJOBS_NAMESPACE=" + c.ns,
		"KJOBS_PROCESSOR_IMAGE=example.com/p:1",
		// Nothing listens there: this test delivers by hand, and no job
		// waits long enough for the sweep to re-send it.
		"K_SINK=http://127.0.0.1:1/",
	}
	id := uuid.NewString()
	ev := requested(id, `{"function":"sleep","args":{"seconds":"1"}}`)
	name := runner.Name(id, 1)

	first := startDispatcherProcess(t, ctx, "dispatcher-1", env...)
	firstAnswer, _ := ev.postAsync(ctx, first.url+"/")
	waitJob(t, ctx, c.client, c.ns, name, "to exist", exists)
	// The attempt is really held: its pod exists and is Pending, on no node.
	pod := waitPod(t, ctx, c, name)
	if pod.Status.Phase != corev1.PodPending || pod.Spec.NodeName != "" {
		t.Fatalf("pod %s is %s on node %q, want Pending on none", pod.Name, pod.Status.Phase, pod.Spec.NodeName)
	}
	if j, err := st.Get(ctx, id); err != nil || j.Status != job.Running {
		t.Fatalf("job before the kill = %+v, %v; want running", j, err)
	}

	first.Kill()
	if a := <-firstAnswer; a.err == nil {
		t.Fatalf("the delivery to the killed dispatcher answered %v, want its connection broken", a)
	}

	// The Broker redelivers the same event, to a new dispatcher.
	second := startDispatcherProcess(t, ctx, "dispatcher-2", env...)
	secondAnswer, wrote := ev.postAsync(ctx, second.url+"/")
	select {
	case <-wrote:
	case a := <-secondAnswer:
		t.Fatalf("the redelivery answered %v before its attempt could run", a)
	}
	// Only now can the pod run: the node takes about a second to be
	// Ready, by when the redelivery has adopted the attempt.
	testenv.AddNode(t, ctx, c.client, pool)
	var a answer
	select {
	case a = <-secondAnswer:
	case <-ctx.Done():
		t.Fatalf("the redelivery did not answer: %v", ctx.Err())
	}
	if a.err != nil || a.status != http.StatusOK {
		t.Errorf("the redelivery answered %v, want 200", a)
	}

	jobs := jobsOf(t, ctx, c.client, c.ns, id)
	if diff := cmp.Diff([]string{name}, testenv.JobNames(jobs)); diff != "" {
		t.Errorf("Jobs of the job (-want +got):\n%s", diff)
	}
	checkJobLabels(t, jobs, id, "sleep")
	if len(jobs) == 1 && testenv.JobOutcome(&jobs[0]) != batchv1.JobComplete {
		t.Errorf("Job %s conditions = %+v, want Complete", name, jobs[0].Status.Conditions)
	}
	j, err := st.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Succeeded {
		t.Errorf("job status = %s, want succeeded", j.Status)
	}
	want := []attemptSummary{{1, name, job.OutcomeSucceeded, new(0), ""}}
	if diff := cmp.Diff(want, summarize(j.Attempts)); diff != "" {
		t.Errorf("job attempts (-want +got):\n%s", diff)
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(job.Stats{Succeeded: 1}, stats); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	// The second dispatcher counts the attempt's end and the job's, once
	// between its delivery and its reconciler; the start, and the wait
	// before it, were the killed one's to count.
	families := checkMetrics(t, second.url+"/metrics", map[string]float64{
		"kjobs_jobs_finished_total{function=sleep,status=succeeded}": 1,
		"kjobs_attempts_total{function=sleep,outcome=succeeded}":     1,
		"kjobs_attempt_duration_seconds_count{function=sleep}":       1,
		"kjobs_queue_wait_seconds_count{function=sleep}":             -1,
		"kjobs_jobs_running{function=sleep}":                         0,
	})
	if families["go_goroutines"] == nil || families["process_cpu_seconds_total"] == nil {
		t.Error("the dispatcher's /metrics lacks the Go and process collectors")
	}
	if strings.Contains(second.Output(), `"level":"ERROR"`) {
		t.Errorf("the second dispatcher logged an error:\n%s", second.Output())
	}
}

// waitPod waits until the Job's pod exists and returns it.
func waitPod(t *testing.T, ctx context.Context, c cluster, jobName string) *corev1.Pod {
	t.Helper()
	for {
		pods, err := c.client.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.Set{batchv1.JobNameLabel: jobName}.String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) > 0 {
			return &pods.Items[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Job %s has no pod: %v", jobName, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
