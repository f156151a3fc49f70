package knative

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/schedule/ping"
	"github.com/kjobs/kjobs/internal/store"
)

// TestPauseThroughPingSource pauses a per-second schedule for 5 s through
// the API while the real PingSource adapter ticks it: no job is created in
// that window, the pause outlasts a restart of the API process (it reads
// the state back from the PingSource), and jobs start again once resumed.
// Then it pauses a second schedule on its PingSource alone, with no mark in
// Redis, as kubectl would: the adapter's ticks carry the new ceOverrides
// within a few seconds, which is what the mark covers.
func TestPauseThroughPingSource(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	ctx := timeout(t, 4*time.Minute)

	create := func(t *testing.T) schedule.Schedule {
		t.Helper()
		var sc schedule.Schedule
		status, raw := s.api.do(ctx, http.MethodPost, "/jobs/schedule",
			`{"cron":"* * * * * *","function":"sleep","args":{"seconds":"0"}}`, &sc)
		if status != http.StatusCreated || sc.ID == "" {
			t.Fatalf("POST /jobs/schedule = %d, want 201 with a schedule\n%s", status, raw)
		}
		for len(jobsOf(t, ctx, s.api, sc.ID)) == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("schedule %s never ticked: %v", sc.ID, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
		return sc
	}
	get := func(t *testing.T, id string) schedule.Schedule {
		t.Helper()
		var sc schedule.Schedule
		if status, raw := s.api.do(ctx, http.MethodGet, "/jobs/schedule/"+id, "", &sc); status != http.StatusOK {
			t.Fatalf("GET /jobs/schedule/%s = %d\n%s", id, status, raw)
		}
		return sc
	}
	setPaused := func(t *testing.T, id, path string, want bool) {
		t.Helper()
		var sc schedule.Schedule
		if status, raw := s.api.do(ctx, http.MethodPost, "/jobs/schedule/"+id+path, "", &sc); status != http.StatusOK || sc.Paused != want {
			t.Fatalf("POST /jobs/schedule/%s%s = %d, want 200 with paused %v\n%s", id, path, status, want, raw)
		}
	}
	remove := func(t *testing.T, id string) {
		t.Helper()
		if status, raw := s.api.do(ctx, http.MethodDelete, "/jobs/schedule/"+id, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE /jobs/schedule/%s = %d\n%s", id, status, raw)
		}
	}

	t.Run("through the API, across a restart of it", func(t *testing.T) {
		sc := create(t)
		pausedAt := midSecond()
		setPaused(t, sc.ID, "/pause", true)

		// The API's state is the PingSource's, not the process's.
		s.apiProcess.Kill()
		s.startAPI(ctx)
		if got := get(t, sc.ID); !got.Paused {
			t.Errorf("GET /jobs/schedule/%s after the API restarted: paused false, want true", sc.ID)
		}

		time.Sleep(time.Until(pausedAt.Add(5 * time.Second)))
		resumedAt := midSecond()
		setPaused(t, sc.ID, "/resume", false)
		for !slices.ContainsFunc(jobsOf(t, ctx, s.api, sc.ID), func(j job.Job) bool { return j.CreatedAt.After(resumedAt) }) {
			select {
			case <-ctx.Done():
				t.Fatalf("schedule %s: no job after the resume: %v", sc.ID, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
		for _, j := range jobsOf(t, ctx, s.api, sc.ID) {
			if j.CreatedAt.After(pausedAt) && j.CreatedAt.Before(resumedAt) {
				t.Errorf("job %s created at %s, while schedule %s was paused (%s to %s)",
					j.ID, j.CreatedAt.Format(time.StampMilli), sc.ID, pausedAt.Format(time.StampMilli), resumedAt.Format(time.StampMilli))
			}
		}
		got := get(t, sc.ID)
		if got.Paused || got.Skipped < 5 {
			t.Errorf("schedule %s after the resume: paused %v, skipped %d; want false and the 5 or 6 ticks of the window", sc.ID, got.Paused, got.Skipped)
		}
		t.Logf("paused %s, %d ticks skipped", resumedAt.Sub(pausedAt).Round(time.Millisecond), got.Skipped)
		remove(t, sc.ID)
	})

	t.Run("on the PingSource alone", func(t *testing.T) {
		sc := create(t)
		schedules := ping.New(eventingclient.NewForConfigOrDie(s.cfg), ping.Config{Namespace: s.ns, Broker: brokerName})
		pausedAt := midSecond()
		if _, err := schedules.SetPaused(ctx, sc.ID, true); err != nil {
			t.Fatalf("SetPaused: %v", err)
		}
		time.Sleep(6 * time.Second)
		var last time.Time
		for _, j := range jobsOf(t, ctx, s.api, sc.ID) {
			if j.CreatedAt.After(pausedAt) {
				last = j.CreatedAt
			}
		}
		switch {
		case last.IsZero():
			t.Logf("no job after the PingSource's update: the adapter applied it before the next tick, within 700 ms")
		default:
			t.Logf("the last job was created %s after the PingSource's update", last.Sub(pausedAt).Round(time.Millisecond))
		}
		if !last.IsZero() && last.Sub(pausedAt) > 3*time.Second {
			t.Errorf("schedule %s made jobs until %s after its PingSource was paused, want the adapter to apply it within 3 s", sc.ID, last.Sub(pausedAt))
		}
		if got := get(t, sc.ID); !got.Paused || got.Skipped < 2 {
			t.Errorf("schedule %s paused on its PingSource: paused %v, skipped %d; want true and at least 2", sc.ID, got.Paused, got.Skipped)
		}
		remove(t, sc.ID)
	})
}

// midSecond waits until 300 ms into a second and returns the time. Ticks
// fire on the second and their jobs are created within milliseconds on an
// idle machine: a change made then races no tick.
func midSecond() time.Time {
	now := time.Now()
	at := now.Truncate(time.Second).Add(300 * time.Millisecond)
	if at.Before(now) {
		at = at.Add(time.Second)
	}
	time.Sleep(time.Until(at))
	return time.Now()
}

// jobsOf returns the jobs of schedule id, oldest first.
func jobsOf(t *testing.T, ctx context.Context, a api, id string) []job.Job {
	t.Helper()
	var page store.Page
	if status, raw := a.do(ctx, http.MethodGet, "/jobs?limit=200", "", &page); status != http.StatusOK {
		t.Fatalf("GET /jobs = %d\n%s", status, raw)
	}
	jobs := slices.DeleteFunc(page.Jobs, func(j job.Job) bool { return j.Schedule != id })
	slices.Reverse(jobs)
	return jobs
}
