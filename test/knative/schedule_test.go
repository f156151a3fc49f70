package knative

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/store"
)

// TestScheduleThroughPingSource creates a schedule every 2 s (the finest
// cron PingSource takes has a seconds field) through POST /jobs/schedule:
// the real PingSource reconciler and mtping adapter tick it to the Broker,
// the kjobs-schedule Trigger delivers the ticks to the dispatcher, and each
// becomes a job that names the schedule and succeeds. Deleting the schedule
// stops it: the PingSource, held Terminating by the reconciler's finalizer
// for a moment, goes, and no job starts after that.
func TestScheduleThroughPingSource(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	ctx := timeout(t, 4*time.Minute)
	var sc schedule.Schedule
	status, raw := s.api.do(ctx, http.MethodPost, "/jobs/schedule",
		`{"name":"every-2s","cron":"*/2 * * * * *","function":"sleep","args":{"seconds":"0"}}`, &sc)
	if status != http.StatusCreated || sc.ID == "" {
		t.Fatalf("POST /jobs/schedule = %d, want 201 with a schedule\n%s", status, raw)
	}
	created := time.Now()

	// Three ticks' jobs, all finished.
	var jobs []job.Job
	for {
		jobs = scheduleJobs(t, ctx, s.api, sc.ID)
		if len(jobs) >= 3 && !slices.ContainsFunc(jobs[:3], func(j job.Job) bool { return !j.Status.Terminal() }) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("schedule %s: %d jobs after %s, want 3 finished: %v", sc.ID, len(jobs), time.Since(created), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("the first tick's job was created %s after the schedule", jobs[0].CreatedAt.Sub(created).Round(time.Millisecond))
	for i, j := range jobs[:3] {
		if j.Status != job.Succeeded || j.Function != "sleep" || len(j.Attempts) != 1 {
			t.Errorf("schedule %s's job %s = %s %s with %d attempts, want sleep succeeded with 1", sc.ID, j.ID, j.Function, j.Status, len(j.Attempts))
		}
		if i > 0 {
			gap := j.CreatedAt.Sub(jobs[i-1].CreatedAt)
			t.Logf("tick %d's job created %s after tick %d's", i+1, gap.Round(time.Millisecond), i)
			if gap < time.Second || gap > 5*time.Second {
				t.Errorf("ticks' jobs created %s apart, want about 2s", gap)
			}
		}
	}

	if status, raw := s.api.do(ctx, http.MethodDelete, "/jobs/schedule/"+sc.ID, "", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE /jobs/schedule/%s = %d, want 204\n%s", sc.ID, status, raw)
	}
	deleted := time.Now()
	pingSources := eventingclient.NewForConfigOrDie(s.cfg).SourcesV1().PingSources(s.ns)
	for {
		_, err := pingSources.Get(ctx, "kjobs-schedule-"+sc.ID, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the PingSource of schedule %s is still there %s after DELETE: %v", sc.ID, time.Since(deleted), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("the PingSource was gone %s after DELETE", time.Since(deleted).Round(time.Millisecond))
	// A tick sent just before may still be on its way.
	time.Sleep(3 * time.Second)
	before := scheduleJobs(t, ctx, s.api, sc.ID)
	time.Sleep(8 * time.Second)
	after := scheduleJobs(t, ctx, s.api, sc.ID)
	if len(after) != len(before) {
		t.Errorf("schedule %s: %d jobs 3 s after its PingSource went, %d 8 s later; want no new job", sc.ID, len(before), len(after))
	}
	for _, j := range after {
		if j.Status != job.Succeeded {
			t.Errorf("schedule %s's job %s is %s, want succeeded", sc.ID, j.ID, j.Status)
		}
	}
	n := int64(len(after))
	if got := s.api.stats(ctx); got != (job.Stats{Succeeded: n}) {
		t.Errorf("GET /jobs/stats = %+v, want %d succeeded and nothing else", got, n)
	}
	t.Logf("schedule %s made %d jobs", sc.ID, n)
}

// TestDeletedScheduleWhileTerminating deletes a schedule whose PingSource
// another finalizer holds Terminating, as happens while Knative's
// controllers are down or slow, or when any other controller has a
// finalizer on it. DELETE /jobs/schedule/<id> answers 204, so the schedule
// is gone for the user: the API must not show it any more, and the ticks
// that mtping goes on sending for the Terminating PingSource (it stops only
// when the object is gone) must not become jobs.
func TestDeletedScheduleWhileTerminating(t *testing.T) {
	t.Parallel()
	const holder = "kjobs.dev/test-hold"
	s := newStack(t, options{})
	ctx := timeout(t, 3*time.Minute)
	var sc schedule.Schedule
	status, raw := s.api.do(ctx, http.MethodPost, "/jobs/schedule",
		`{"name":"every-2s","cron":"*/2 * * * * *","function":"sleep","args":{"seconds":"0"}}`, &sc)
	if status != http.StatusCreated || sc.ID == "" {
		t.Fatalf("POST /jobs/schedule = %d, want 201 with a schedule\n%s", status, raw)
	}
	name := "kjobs-schedule-" + sc.ID
	pingSources := eventingclient.NewForConfigOrDie(s.cfg).SourcesV1().PingSources(s.ns)
	// hold adds (or removes) a finalizer of the test's own, as a
	// controller that owns one does: read, change the list, update.
	hold := func(add bool) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			ps, err := pingSources.Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			ps.Finalizers = slices.DeleteFunc(ps.Finalizers, func(f string) bool { return f == holder })
			if add {
				ps.Finalizers = append(ps.Finalizers, holder)
			}
			_, err = pingSources.Update(context.Background(), ps, metav1.UpdateOptions{})
			return err
		})
	}
	if err := hold(true); err != nil {
		t.Fatalf("adding a finalizer to PingSource %s: %v", name, err)
	}
	// Without this the namespace would never go.
	t.Cleanup(func() {
		if err := hold(false); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("removing the test's finalizer from PingSource %s: %v", name, err)
		}
	})
	// It ticks.
	for len(scheduleJobs(t, ctx, s.api, sc.ID)) == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("schedule %s never ticked: %v", sc.ID, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}

	if status, raw := s.api.do(ctx, http.MethodDelete, "/jobs/schedule/"+sc.ID, "", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE /jobs/schedule/%s = %d, want 204\n%s", sc.ID, status, raw)
	}
	deleted := time.Now()
	ps, err := pingSources.Get(ctx, name, metav1.GetOptions{})
	if err != nil || ps.DeletionTimestamp == nil {
		t.Fatalf("PingSource %s after DELETE: %v, deletionTimestamp %v; want it Terminating", name, err, ps.GetDeletionTimestamp())
	}
	if status, raw := s.api.do(ctx, http.MethodGet, "/jobs/schedule/"+sc.ID, "", nil); status != http.StatusNotFound {
		t.Errorf("GET /jobs/schedule/%s after DELETE answered 204 = %d, want 404\n%s", sc.ID, status, raw)
	}
	var list struct{ Schedules []schedule.Schedule }
	if status, raw := s.api.do(ctx, http.MethodGet, "/jobs/schedule", "", &list); status != http.StatusOK || len(list.Schedules) != 0 {
		t.Errorf("GET /jobs/schedule after DELETE = %d with %d schedules, want 200 with none\n%s", status, len(list.Schedules), raw)
	}
	if status, raw := s.api.do(ctx, http.MethodDelete, "/jobs/schedule/"+sc.ID, "", nil); status != http.StatusNotFound {
		t.Errorf("a second DELETE /jobs/schedule/%s = %d, want 404\n%s", sc.ID, status, raw)
	}

	// A tick sent just before the DELETE may still be on its way.
	time.Sleep(3 * time.Second)
	before := scheduleJobs(t, ctx, s.api, sc.ID)
	time.Sleep(8 * time.Second)
	after := scheduleJobs(t, ctx, s.api, sc.ID)
	if len(after) != len(before) {
		t.Errorf("schedule %s, deleted %s ago: %d jobs 3 s after the DELETE, %d 8 s later; want no job after a DELETE answered 204",
			sc.ID, time.Since(deleted).Round(time.Second), len(before), len(after))
	}
}

// scheduleJobs returns the jobs of schedule id, oldest first, and fails the
// test on a job of another schedule or of none.
func scheduleJobs(t *testing.T, ctx context.Context, a api, id string) []job.Job {
	t.Helper()
	var page store.Page
	if status, raw := a.do(ctx, http.MethodGet, "/jobs?limit=200", "", &page); status != http.StatusOK {
		t.Fatalf("GET /jobs = %d\n%s", status, raw)
	}
	jobs := page.Jobs
	slices.Reverse(jobs)
	for _, j := range jobs {
		if j.Schedule != id {
			t.Fatalf("job %s names schedule %q, want %q", j.ID, j.Schedule, id)
		}
	}
	return jobs
}
