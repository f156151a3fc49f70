package knative

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestSuccessRetriesDeadLetter runs three jobs through the real Broker: a
// sleep succeeds at once; a fail is retried by the Broker 2 s and then 4 s
// after each failed attempt (the Triggers' exponential backoff) and then
// dead-lettered, with the real knativeerrorcode and knativeerrordata the
// dispatcher's dead-letter path turns into the job's error; a flaky with
// failures=1 fails once and succeeds on the retry (kwok runs no
// container, so the test takes flaky's failing entry out of the functions
// ConfigMap once its first attempt exists); an attempt that exits 2 (the
// processor's "can never succeed") is answered 400 and dead-lettered by the
// Broker without a retry. The stats count each job once.
func TestSuccessRetriesDeadLetter(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{functions: map[string]string{
		"fail":  testenv.Chaos(1, "Error", "boom", 100*time.Millisecond),
		"flaky": testenv.Chaos(1, "Error", "flaky-on-purpose", 2*time.Second),
		// Exit code 2 is the processor's run.ExitInvalid: a request that
		// can never succeed, such as a function its image lacks.
		"echo": testenv.Chaos(2, "Error", "no-such-function-in-this-image", 100*time.Millisecond),
	}})
	ctx := timeout(t, 4*time.Minute)
	sleep := s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"1"}}`)
	fail := s.api.submit(ctx, `{"function":"fail","args":{"message":"boom"}}`)
	flaky := s.api.submit(ctx, `{"function":"flaky","args":{"failures":"1"}}`)
	invalid := s.api.submit(ctx, `{"function":"echo","args":{"a":"b"}}`)
	// The retry comes 2 s after kwok failed the pod, itself 2 s after the
	// pod started: long after the runner's ConfigMap informer sees this.
	s.waitJob(ctx, runner.Name(flaky, 1), "to be created", exists)
	s.setFunction(ctx, "flaky", "")

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
		// The Broker's knativeerrorcode and the dispatcher's answer to the
		// last attempt, from knativeerrordata.
		error:      "dead-lettered after HTTP 500: attempt 3 failed: boom",
		conditions: []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobFailed, batchv1.JobFailed},
	}, {
		id: flaky, function: "flaky", status: job.Succeeded,
		attempts:   []attemptSummary{failed(flaky, 1, "flaky-on-purpose"), succeeded(flaky, 2)},
		conditions: []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobComplete},
	}, {
		// The dispatcher answers 400, which the Broker does not retry: it
		// dead-letters the event at once.
		id: invalid, function: "echo", status: job.Failed,
		attempts:   []attemptSummary{failed(invalid, 1, "no-such-function-in-this-image")},
		error:      "dead-lettered after HTTP 400: attempt 1 can never succeed: no-such-function-in-this-image",
		conditions: []batchv1.JobConditionType{batchv1.JobFailed},
	}}
	for _, tt := range tests {
		j := s.api.waitFinished(ctx, tt.id)
		if j.Status != tt.status || j.Function != tt.function || j.Error != tt.error {
			t.Errorf("job %s (%s) = %s with error %q, want %s with error %q", tt.id, j.Function, j.Status, j.Error, tt.status, tt.error)
		}
		if diff := cmp.Diff(tt.attempts, summarize(j.Attempts)); diff != "" {
			t.Errorf("job %s (%s) attempts (-want +got):\n%s", tt.id, tt.function, diff)
		}
		jobs := s.jobs(ctx, tt.id)
		if diff := cmp.Diff(attemptNames(tt.id, 1, len(tt.attempts)), testenv.JobNames(jobs)); diff != "" {
			t.Errorf("Jobs of job %s (%s) (-want +got):\n%s", tt.id, tt.function, diff)
		}
		var conditions []batchv1.JobConditionType
		for i := range jobs {
			conditions = append(conditions, testenv.JobOutcome(&jobs[i]))
		}
		if diff := cmp.Diff(tt.conditions, conditions); diff != "" {
			t.Errorf("Jobs of job %s (%s): conditions (-want +got):\n%s", tt.id, tt.function, diff)
		}
		checkBackoffs(t, tt.function, jobs)
	}

	if diff := cmp.Diff(job.Stats{Succeeded: 2, Failed: 2, Retries: 3}, s.api.stats(ctx)); diff != "" {
		t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
	}
	// One dead letter each for fail and echo, taken once.
	if got := s.deliveries(ctx, "dead-letter", http.StatusOK); got != 2 {
		t.Errorf("the dispatcher took %d dead letters, want 2", got)
	}
	if got := s.deliveries(ctx, "receive", http.StatusBadRequest); got != 1 {
		t.Errorf("the dispatcher answered %d deliveries 400, want 1 (echo's only)", got)
	}
}

// checkBackoffs checks that each of jobs was created the Triggers' backoff
// after the one before it failed. The times are the API server's, in whole
// seconds: the lower bound allows one off, the upper one a loaded machine.
func checkBackoffs(t *testing.T, function string, jobs []batchv1.Job) {
	t.Helper()
	for i := 1; i < len(jobs); i++ {
		prev, next := &jobs[i-1], &jobs[i]
		cond := testenv.JobFinished(prev)
		if cond == nil || cond.Type != batchv1.JobFailed {
			t.Errorf("Job %s was retried but has not failed: %+v", prev.Name, prev.Status.Conditions)
			continue
		}
		gap := next.CreationTimestamp.Sub(cond.LastTransitionTime.Time)
		startToStart := next.CreationTimestamp.Sub(prev.CreationTimestamp.Time)
		t.Logf("%s: Job %s created %s after Job %s failed (%s after it was created)", function, next.Name, gap, prev.Name, startToStart)
		want := backoffs[min(i-1, len(backoffs)-1)]
		if gap < want-time.Second || gap > want+5*time.Second {
			t.Errorf("%s: Job %s created %s after Job %s failed, want about %s", function, next.Name, gap, prev.Name, want)
		}
	}
}
