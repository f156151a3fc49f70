package e2e

import (
	"net/http"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestTimeoutOnCluster runs `make run`'s stack with the kubernetes runner
// and a job whose timeout is shorter than its pods run: every attempt is a
// Job that the Job controller fails at the timeout, retried by the
// delivery spec, and the job ends failed with reason DeadlineExceeded. The
// job's labels are on its Jobs.
func TestTimeoutOnCluster(t *testing.T) {
	t.Parallel()
	// kwok keeps sleep's pods Running for a minute, far past the timeout.
	c := newCluster(t, map[string]string{"sleep": testenv.Chaos(1, "Error", "ran a minute", time.Minute)})
	ctx := timeout(t, 3*time.Minute)
	a := startLocal(t, ctx, c)

	var created job.Job
	body := `{"function":"sleep","args":{"seconds":"60"},"timeout":"2s","labels":{"team":"data"}}`
	if status, raw := a.do(ctx, http.MethodPost, "/jobs", jsonBody(body), &created); status != http.StatusAccepted {
		t.Fatalf("POST /jobs %s = %d\n%s", body, status, raw)
	}
	j := a.waitFinished(ctx, created.ID)
	if j.Status != job.Failed || len(j.Attempts) != 3 {
		t.Fatalf("job %s with %d attempts, want failed after 3", j.Status, len(j.Attempts))
	}
	for _, at := range j.Attempts {
		if at.Outcome != job.OutcomeFailed || at.Reason != batchv1.JobReasonDeadlineExceeded || at.FinishedAt == nil {
			t.Errorf("attempt %+v, want failed with reason DeadlineExceeded", at)
			continue
		}
		// The Jobs' times have whole seconds.
		if ran := at.FinishedAt.Sub(at.StartedAt); ran < time.Second || ran > 8*time.Second {
			t.Errorf("attempt %d ran %v, want about the 2s timeout", at.Attempt, ran)
		}
	}
	for _, k := range jobsOf(t, ctx, c.client, c.ns, created.ID) {
		if k.Labels["team"] != "data" || k.Spec.Template.Labels["team"] != "data" || *k.Spec.ActiveDeadlineSeconds != 2 {
			t.Errorf("Job %s: labels %v, pod labels %v, activeDeadlineSeconds %d; want team=data on both and 2",
				k.Name, k.Labels, k.Spec.Template.Labels, *k.Spec.ActiveDeadlineSeconds)
		}
	}
}
