package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/testenv"
)

// The Triggers' delivery spec, which the local stack applies: two retries,
// exponential backoff from 2 s.
var backoffs = []time.Duration{2 * time.Second, 4 * time.Second}

// TestLocalStackOnCluster runs `make run`'s stack with KJOBS_RUNNER=kubernetes
// against the test control plane and drives it over HTTP: attempts are Jobs,
// retried with the Triggers' backoff and dead-lettered after the last;
// schedules are PingSources.
func TestLocalStackOnCluster(t *testing.T) {
	t.Parallel()
	// Every pod of fail fails; flaky's pods fail until the test takes
	// its entry out, once its first attempt has started.
	c := newCluster(t, map[string]string{
		"fail":  testenv.Chaos(1, "Error", "boom", 100*time.Millisecond),
		"flaky": testenv.Chaos(1, "Error", "flaky on purpose", 2*time.Second),
	})
	ctx := timeout(t, 4*time.Minute)
	a := startLocal(t, ctx, c)

	submit := func(body string) string {
		t.Helper()
		var j job.Job
		status, raw := a.do(ctx, http.MethodPost, "/jobs", jsonBody(body), &j)
		if status != http.StatusAccepted || j.ID == "" || j.Status != job.Queued {
			t.Fatalf("POST /jobs %s = %d, want 202 and a queued job\n%s", body, status, raw)
		}
		return j.ID
	}
	sleep := submit(`{"function":"sleep","args":{"seconds":"1"}}`)
	fail := submit(`{"function":"fail"}`)
	flaky := submit(`{"function":"flaky","args":{"failures":"1"}}`)

	// As soon as flaky's first attempt exists, with the failing placement,
	// its entry goes: the runner's ConfigMap informer sees that long before
	// the retry, which comes 2 s after kwok failed the pod, itself 2 s
	// after the pod started.
	waitJob(t, ctx, c.client, c.ns, runner.Name(flaky, 1), "to exist", exists)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := c.client.CoreV1().ConfigMaps(c.ns).Get(ctx, functionsConfigMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		delete(cm.Data, "flaky")
		_, err = c.client.CoreV1().ConfigMaps(c.ns).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatalf("taking flaky's entry out of the functions ConfigMap: %v", err)
	}

	failed := func(id string, n int, message string) attemptSummary {
		return attemptSummary{n, runner.Name(id, n), job.OutcomeFailed, new(1), message}
	}
	succeeded := func(id string, n int) attemptSummary {
		return attemptSummary{n, runner.Name(id, n), job.OutcomeSucceeded, new(0), ""}
	}
	tests := []struct {
		id, function string
		status       job.Status
		attempts     []attemptSummary
		error        string
		conditions   []batchv1.JobConditionType
	}{{
		id: sleep, function: "sleep", status: job.Succeeded,
		attempts:   []attemptSummary{succeeded(sleep, 1)},
		conditions: []batchv1.JobConditionType{batchv1.JobComplete},
	}, {
		id: fail, function: "fail", status: job.Failed,
		attempts: []attemptSummary{failed(fail, 1, "boom"), failed(fail, 2, "boom"), failed(fail, 3, "boom")},
		// The dead-letter sink records the last answer the Broker got.
		error:      "dead-lettered after HTTP 500: attempt 3 failed: boom",
		conditions: []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobFailed, batchv1.JobFailed},
	}, {
		id: flaky, function: "flaky", status: job.Succeeded,
		attempts:   []attemptSummary{failed(flaky, 1, "flaky on purpose"), succeeded(flaky, 2)},
		conditions: []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobComplete},
	}}
	for _, tt := range tests {
		j := a.waitFinished(ctx, tt.id)
		if j.Status != tt.status || j.Function != tt.function || j.Error != tt.error {
			t.Errorf("job %s (%s) = %s with error %q, want %s with error %q", tt.id, j.Function, j.Status, j.Error, tt.status, tt.error)
		}
		if diff := cmp.Diff(tt.attempts, summarize(j.Attempts)); diff != "" {
			t.Errorf("job %s (%s) attempts (-want +got):\n%s", tt.id, tt.function, diff)
		}
		// Each retry waited for the delivery spec's backoff. The times come
		// from the Jobs, which keep whole seconds: allow one off.
		for i := 1; i < len(j.Attempts); i++ {
			prev, next := j.Attempts[i-1], j.Attempts[i]
			if prev.FinishedAt == nil {
				t.Errorf("job %s attempt %d has no finish time", tt.id, prev.Attempt)
				continue
			}
			if gap := next.StartedAt.Sub(*prev.FinishedAt); gap < backoffs[i-1]-time.Second {
				t.Errorf("job %s attempt %d started %v after attempt %d finished, want the %v backoff", tt.id, next.Attempt, gap, prev.Attempt, backoffs[i-1])
			}
		}

		jobs := jobsOf(t, ctx, c.client, c.ns, tt.id)
		if diff := cmp.Diff(attemptNames(tt.id, len(tt.attempts)), testenv.JobNames(jobs)); diff != "" {
			t.Errorf("Jobs of job %s (%s) (-want +got):\n%s", tt.id, tt.function, diff)
		}
		checkJobLabels(t, jobs, tt.id, tt.function)
		var conditions []batchv1.JobConditionType
		for i := range jobs {
			conditions = append(conditions, testenv.JobOutcome(&jobs[i]))
		}
		if diff := cmp.Diff(tt.conditions, conditions); diff != "" {
			t.Errorf("Jobs of job %s (%s): conditions (-want +got):\n%s", tt.id, tt.function, diff)
		}
	}

	var stats job.Stats
	if status, raw := a.do(ctx, http.MethodGet, "/jobs/stats", nil, &stats); status != http.StatusOK {
		t.Fatalf("GET /jobs/stats = %d\n%s", status, raw)
	}
	if diff := cmp.Diff(job.Stats{Succeeded: 2, Failed: 1, Retries: 3}, stats); diff != "" {
		t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
	}
	// The metrics agree, however the deliveries and the reconciler shared
	// the recording of the attempts.
	checkMetrics(t, a.url+"/metrics", map[string]float64{
		"kjobs_jobs_finished_total{function=sleep,status=succeeded}": 1,
		"kjobs_jobs_finished_total{function=fail,status=failed}":     1,
		"kjobs_jobs_finished_total{function=flaky,status=succeeded}": 1,
		"kjobs_attempts_total{function=sleep,outcome=succeeded}":     1,
		"kjobs_attempts_total{function=fail,outcome=failed}":         3,
		"kjobs_attempts_total{function=flaky,outcome=failed}":        1,
		"kjobs_attempts_total{function=flaky,outcome=succeeded}":     1,
		"kjobs_attempt_duration_seconds_count{function=sleep}":       1,
		"kjobs_attempt_duration_seconds_count{function=fail}":        3,
		"kjobs_attempt_duration_seconds_count{function=flaky}":       2,
		"kjobs_queue_wait_seconds_count{function=sleep}":             1,
		"kjobs_queue_wait_seconds_count{function=fail}":              1,
		"kjobs_queue_wait_seconds_count{function=flaky}":             1,
		"kjobs_jobs_running{function=sleep}":                         0,
	})

	t.Run("schedules are PingSources", func(t *testing.T) {
		ec, err := eventingclient.NewForConfig(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		pingSources := ec.SourcesV1().PingSources(c.ns)

		var sc schedule.Schedule
		status, raw := a.do(ctx, http.MethodPost, "/jobs/schedule",
			jsonBody(`{"name":"nightly","cron":"0 3 * * *","timezone":"Europe/Paris","function":"sleep","args":{"seconds":"1"}}`), &sc)
		if status != http.StatusCreated || sc.ID == "" {
			t.Fatalf("POST /jobs/schedule = %d, want 201 with a schedule\n%s", status, raw)
		}
		name := "kjobs-schedule-" + sc.ID
		ps, err := pingSources.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("PingSource %s: %v", name, err)
		}
		if ps.Spec.Schedule != "0 3 * * *" || ps.Spec.Timezone != "Europe/Paris" || ps.Labels["kjobs.dev/schedule"] != sc.ID {
			t.Errorf("PingSource %s: schedule %q, timezone %q, labels %v; want 0 3 * * *, Europe/Paris, kjobs.dev/schedule=%s",
				name, ps.Spec.Schedule, ps.Spec.Timezone, ps.Labels, sc.ID)
		}
		if ref := ps.Spec.Sink.Ref; ref == nil || ref.Kind != "Broker" || ref.Name != "kjobs" {
			t.Errorf("PingSource %s sinks to %+v, want the Broker kjobs", name, ps.Spec.Sink)
		}

		var list struct{ Schedules []schedule.Schedule }
		if status, raw := a.do(ctx, http.MethodGet, "/jobs/schedule", nil, &list); status != http.StatusOK {
			t.Fatalf("GET /jobs/schedule = %d\n%s", status, raw)
		}
		if ids := scheduleIDs(list.Schedules); !slices.Equal(ids, []string{sc.ID}) {
			t.Errorf("GET /jobs/schedule lists %v, want [%s]", ids, sc.ID)
		}

		if status, raw := a.do(ctx, http.MethodDelete, "/jobs/schedule/"+sc.ID, nil, nil); status != http.StatusNoContent {
			t.Errorf("DELETE /jobs/schedule/%s = %d, want 204\n%s", sc.ID, status, raw)
		}
		// Knative's PingSource reconciler holds the object with a
		// finalizer until it has cleaned up; the API shows the schedule
		// gone at once.
		if status, _ := a.do(ctx, http.MethodGet, "/jobs/schedule/"+sc.ID, nil, nil); status != http.StatusNotFound {
			t.Errorf("GET /jobs/schedule/%s after DELETE = %d, want 404", sc.ID, status)
		}
		if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := pingSources.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}); err != nil {
			t.Errorf("PingSource %s after DELETE: still there: %v", name, err)
		}

		status, raw = a.do(ctx, http.MethodPost, "/jobs/schedule", jsonBody(`{"cron":"61 * * * *","function":"sleep","args":{"seconds":"1"}}`), nil)
		if status != http.StatusBadRequest || !strings.Contains(raw, "cron") {
			t.Errorf("POST /jobs/schedule with cron 61 * * * * = %d, want 400 about the cron\n%s", status, raw)
		}
		left, err := pingSources.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left.Items) != 0 {
			t.Errorf("PingSources left in %s: %d, want none", c.ns, len(left.Items))
		}
		if status, raw := a.do(ctx, http.MethodGet, "/jobs/schedule", nil, &list); status != http.StatusOK || len(list.Schedules) != 0 {
			t.Errorf("GET /jobs/schedule at the end = %d with %d schedules, want 200 with none\n%s", status, len(list.Schedules), raw)
		}
	})
}

func scheduleIDs(list []schedule.Schedule) []string {
	ids := make([]string, 0, len(list))
	for _, sc := range list {
		ids = append(ids, sc.ID)
	}
	return ids
}

// jsonBody is a request body already in JSON.
type jsonBody string

func (b jsonBody) MarshalJSON() ([]byte, error) { return []byte(b), nil }
