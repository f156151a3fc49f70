package kube

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
)

// recorder keeps every attempt it is told of, and fails the first calls
// for a job when told to, as a Redis that is briefly away would.
type recorder struct {
	mu       sync.Mutex
	records  map[string][]job.Attempt
	failures map[string]int
	changed  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{records: map[string][]job.Attempt{}, failures: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) Record(_ context.Context, jobID string, a job.Attempt) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures[jobID] > 0 {
		r.failures[jobID]--
		return errors.New("redis: connection refused")
	}
	r.records[jobID] = append(r.records[jobID], a)
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// await waits until the latest record of jobID satisfies ok, and returns it.
func (r *recorder) await(t *testing.T, ctx context.Context, jobID string, ok func(job.Attempt) bool) job.Attempt {
	t.Helper()
	for {
		r.mu.Lock()
		recs := r.records[jobID]
		r.mu.Unlock()
		if len(recs) > 0 && ok(recs[len(recs)-1]) {
			return recs[len(recs)-1]
		}
		select {
		case <-r.changed:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("job %s: records %+v, still waiting: %v", jobID, recs, ctx.Err())
		}
	}
}

func ended(a job.Attempt) bool   { return a.Outcome != job.OutcomeRunning }
func running(a job.Attempt) bool { return a.Outcome == job.OutcomeRunning }

// reconcile runs the runner's reconciler into rec until the test ends.
func reconcile(t *testing.T, r *Runner, rec runner.Recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Reconcile(ctx, rec) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Reconcile: %v", err)
		}
	})
}

// TestReconcileRecordsWithoutWaiter checks that attempts nobody waits for
// are recorded from start to end, with the outcome the Job and its pod
// tell, and that a recorded Job is marked so and left to the TTL
// controller for the grace period only.
func TestReconcileRecordsWithoutWaiter(t *testing.T) {
	t.Parallel()
	env := setup(t, map[string]string{"fail": chaosFailure}, func(c *Config) { c.Grace = time.Minute })
	ctx := timeout(t, 2*time.Minute)
	rec := newRecorder()
	ok, failed := uuid.NewString(), uuid.NewString()
	// The first two records of the failing job fail, and are retried.
	rec.failures[failed] = 2
	reconcile(t, env.r, rec)
	for _, spec := range []runner.Spec{{JobID: ok, Attempt: 1, Function: "sample"}, {JobID: failed, Attempt: 1, Function: "fail"}} {
		if _, err := env.r.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}

	got := rec.await(t, ctx, ok, ended)
	if got.Outcome != job.OutcomeSucceeded || got.ExitCode == nil || *got.ExitCode != 0 || got.Job != runner.Name(ok, 1) {
		t.Errorf("succeeding attempt recorded as %+v", got)
	}
	got = rec.await(t, ctx, failed, ended)
	if got.Outcome != job.OutcomeFailed || got.ExitCode == nil || *got.ExitCode != 3 || got.Message != "no such table" {
		t.Errorf("failing attempt recorded as %+v, want failed with exit code 3 and its message", got)
	}

	for _, id := range []string{ok, failed} {
		name := runner.Name(id, 1)
		var j, err = env.client.BatchV1().Jobs(env.ns).Get(ctx, name, metav1.GetOptions{})
		for err == nil && j.Annotations[annotationRecorded] != "true" && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			j, err = env.client.BatchV1().Jobs(env.ns).Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil {
			t.Fatalf("Job %s: %v", name, err)
		}
		if ttl := j.Spec.TTLSecondsAfterFinished; ttl == nil || *ttl < 60 || *ttl > 90 {
			t.Errorf("Job %s recorded with ttlSecondsAfterFinished %v, want about the 60 s grace", name, ttl)
		}
	}
}

// TestReconcileAfterRestart checks that a reconciler started after Jobs
// finished, as a dispatcher that was down, records them.
func TestReconcileAfterRestart(t *testing.T) {
	t.Parallel()
	env := setup(t, nil, nil)
	ctx := timeout(t, 2*time.Minute)
	id := uuid.NewString()
	if _, err := env.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "sample"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.r.Wait(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	reconcile(t, env.r, rec)
	if got := rec.await(t, ctx, id, ended); got.Outcome != job.OutcomeSucceeded {
		t.Errorf("attempt recorded as %+v, want succeeded", got)
	}
}

// TestReconcileDeletedJob checks that a Job deleted while its pod waits
// records a failed attempt, so that the next delivery numbers on.
func TestReconcileDeletedJob(t *testing.T) {
	t.Parallel()
	env := setup(t, map[string]string{"sleep": nowhere}, nil)
	ctx := timeout(t, 2*time.Minute)
	id := uuid.NewString()
	rec := newRecorder()
	reconcile(t, env.r, rec)
	if _, err := env.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "sleep"}); err != nil {
		t.Fatal(err)
	}
	rec.await(t, ctx, id, running)
	if err := env.client.BatchV1().Jobs(env.ns).Delete(ctx, runner.Name(id, 1), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got := rec.await(t, ctx, id, ended)
	if got.Outcome != job.OutcomeFailed || got.Reason != ReasonDeleted || got.FinishedAt == nil {
		t.Errorf("attempt of a deleted Job recorded as %+v, want failed with reason %s", got, ReasonDeleted)
	}
}
