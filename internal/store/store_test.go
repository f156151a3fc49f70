package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const retention = time.Hour

func setup(t *testing.T) (*store.Store, *redis.Client, *clock) {
	t.Helper()
	rdb := testenv.Redis(t)
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	return store.New(rdb, store.Options{Retention: retention, Now: clk.Now}), rdb, clk
}

func stats(t *testing.T, s *store.Store) job.Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func attempt(n int, outcome job.Outcome, msg string) job.Attempt {
	return job.Attempt{Attempt: n, Job: fmt.Sprintf("kjobs-j-%d", n), Outcome: outcome, Message: msg,
		StartedAt: time.Date(2026, 11, 25, 12, 0, n, 0, time.UTC)}
}

func TestCreateAndGet(t *testing.T) {
	s, _, clk := setup(t)
	ctx := context.Background()
	req := job.Request{Function: "sleep", Args: job.Args{"seconds": "1"}, Timeout: job.Duration(90 * time.Second), Labels: map[string]string{"team": "data"}}
	created, ok, err := s.Create(ctx, "j1", req, "")
	if err != nil || !ok {
		t.Fatalf("Create = %v, %v; want created", ok, err)
	}
	got, err := s.Get(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get differs from what Create returned (-want +got):\n%s", diff)
	}
	want := job.Job{ID: "j1", Function: "sleep", Args: job.Args{"seconds": "1"}, Status: job.Queued,
		Attempts: []job.Attempt{}, Timeout: job.Duration(90 * time.Second), Labels: map[string]string{"team": "data"},
		CreatedAt: clk.Now(), UpdatedAt: clk.Now()}
	if diff := cmp.Diff(want, got, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}

	again, ok, err := s.Create(ctx, "j1", job.Request{Function: "echo"}, "")
	if err != nil || ok || again.Function != "sleep" {
		t.Errorf("second Create of j1 = %q, %v, %v; want the first job, not created", again.Function, ok, err)
	}
	if _, err := s.Get(ctx, "nope"); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(job.Stats{Queued: 1}, stats(t, s)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s, rdb, _ := setup(t)
	ctx := context.Background()
	first, ok, err := s.Create(ctx, "a1", job.Request{Function: "echo"}, "key-1")
	if err != nil || !ok {
		t.Fatalf("Create = %v, %v", ok, err)
	}
	second, ok, err := s.Create(ctx, "a2", job.Request{Function: "echo"}, "key-1")
	if err != nil || ok || second.ID != first.ID {
		t.Fatalf("Create with a repeated key = %q, %v, %v; want %q, not created", second.ID, ok, err, first.ID)
	}
	if n, _ := rdb.Exists(ctx, "kjobs:{kjobs}:job:a2").Result(); n != 0 {
		t.Error("a repeated key wrote a second job record")
	}
	other, ok, err := s.Create(ctx, "a3", job.Request{Function: "echo"}, "key-2")
	if err != nil || !ok || other.ID != "a3" {
		t.Errorf("Create with another key = %q, %v, %v; want a3 created", other.ID, ok, err)
	}
	ttl, err := rdb.TTL(ctx, "kjobs:{kjobs}:idem:"+sha("key-1")).Result()
	if err != nil || ttl <= 0 || ttl > retention {
		t.Errorf("idempotency key TTL = %v, %v; want within the retention %v", ttl, err, retention)
	}
	if diff := cmp.Diff(job.Stats{Queued: 2}, stats(t, s)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestAbandon(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, "x", job.Request{Function: "echo"}, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, "x", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "x"); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("Get after Abandon: %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(job.Stats{}, stats(t, s)); diff != "" {
		t.Errorf("stats after Abandon (-want +got):\n%s", diff)
	}
	if _, ok, _ := s.Create(ctx, "y", job.Request{Function: "echo"}, "k"); !ok {
		t.Error("the idempotency key of an abandoned job still answers")
	}
	page, err := s.List(ctx, store.ListOptions{})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != "y" {
		t.Errorf("List after Abandon = %+v, %v; want only y", page, err)
	}

	// A job already running is not abandoned.
	if _, err := s.Start(ctx, "y", attempt(1, job.OutcomeRunning, "")); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, "y", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "y"); err != nil {
		t.Errorf("Abandon removed a running job: %v", err)
	}
}

// step is one call a dispatcher makes on the store.
type step struct {
	name  string
	apply func(s *store.Store, id string) (bool, error)
}

func start(n int) step {
	return step{fmt.Sprintf("start %d", n), func(s *store.Store, id string) (bool, error) {
		m, err := s.Start(context.Background(), id, attempt(n, job.OutcomeRunning, ""))
		return m.Moved(), err
	}}
}

func finish(n int, o job.Outcome) step {
	return step{fmt.Sprintf("finish %d %s", n, o), func(s *store.Store, id string) (bool, error) {
		m, err := s.Finish(context.Background(), id, attempt(n, o, string(o)))
		return m.Moved(), err
	}}
}

func deadLetter() step {
	return step{"dead letter", func(s *store.Store, id string) (bool, error) {
		r, err := s.DeadLetter(context.Background(), id, "dead-lettered")
		return r == store.DeadLetterFailed, err
	}}
}

func cancel() step {
	return step{"cancel", func(s *store.Store, id string) (bool, error) {
		return s.Cancel(context.Background(), id)
	}}
}

func TestTransitions(t *testing.T) {
	tests := []struct {
		name       string
		steps      []step
		wantStatus job.Status
		wantStats  job.Stats
		attempts   int
		wantError  string
	}{{
		name:       "succeeds first time",
		steps:      []step{start(1), finish(1, job.OutcomeSucceeded)},
		wantStatus: job.Succeeded, wantStats: job.Stats{Succeeded: 1}, attempts: 1,
	}, {
		name:       "fails every retry then dead-lettered",
		steps:      []step{start(1), finish(1, job.OutcomeFailed), start(2), finish(2, job.OutcomeFailed), start(3), finish(3, job.OutcomeFailed), deadLetter()},
		wantStatus: job.Failed, wantStats: job.Stats{Failed: 1, Retries: 2}, attempts: 3,
	}, {
		name:       "fails once then succeeds",
		steps:      []step{start(1), finish(1, job.OutcomeFailed), start(2), finish(2, job.OutcomeSucceeded)},
		wantStatus: job.Succeeded, wantStats: job.Stats{Succeeded: 1, Retries: 1}, attempts: 2,
	}, {
		name:       "running",
		steps:      []step{start(1)},
		wantStatus: job.Running, wantStats: job.Stats{Running: 1}, attempts: 1,
	}, {
		name:       "retrying",
		steps:      []step{start(1), finish(1, job.OutcomeFailed)},
		wantStatus: job.Retrying, wantStats: job.Stats{Retrying: 1}, attempts: 1,
	}, {
		name:       "never deliverable: dead-lettered while queued",
		steps:      []step{deadLetter()},
		wantStatus: job.Failed, wantStats: job.Stats{Failed: 1},
	}, {
		name:       "dispatcher restarted and learnt attempt 2 succeeded without seeing it start",
		steps:      []step{start(1), finish(1, job.OutcomeFailed), finish(2, job.OutcomeSucceeded)},
		wantStatus: job.Succeeded, wantStats: job.Stats{Succeeded: 1, Retries: 1}, attempts: 2,
	}, {
		name:       "every step delivered twice",
		steps:      []step{start(1), start(1), finish(1, job.OutcomeFailed), finish(1, job.OutcomeFailed), start(2), start(2), finish(2, job.OutcomeSucceeded), finish(2, job.OutcomeSucceeded)},
		wantStatus: job.Succeeded, wantStats: job.Stats{Succeeded: 1, Retries: 1}, attempts: 2,
	}, {
		name:       "a late dead letter does not fail a succeeded job",
		steps:      []step{start(1), finish(1, job.OutcomeSucceeded), deadLetter()},
		wantStatus: job.Succeeded, wantStats: job.Stats{Succeeded: 1}, attempts: 1,
	}, {
		name:       "dead-lettered while the last attempt runs, which then fails",
		steps:      []step{start(1), finish(1, job.OutcomeFailed), start(2), deadLetter(), deadLetter(), finish(2, job.OutcomeFailed)},
		wantStatus: job.Failed, wantStats: job.Stats{Failed: 1, Retries: 1}, attempts: 2, wantError: "dead-lettered",
	}, {
		name:       "dead-lettered while the last attempt runs, which then succeeds",
		steps:      []step{start(1), deadLetter(), finish(1, job.OutcomeSucceeded)},
		wantStatus: job.Succeeded, wantStats: job.Stats{Succeeded: 1}, attempts: 1,
	}, {
		name:       "dead-lettered while running: the job waits for its attempt",
		steps:      []step{start(1), deadLetter()},
		wantStatus: job.Running, wantStats: job.Stats{Running: 1}, attempts: 1,
	}, {
		name:       "a stale attempt's result is ignored",
		steps:      []step{start(1), finish(1, job.OutcomeFailed), start(2), finish(1, job.OutcomeSucceeded)},
		wantStatus: job.Running, wantStats: job.Stats{Running: 1, Retries: 1}, attempts: 2,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := setup(t)
			ctx := context.Background()
			if _, _, err := s.Create(ctx, "j", job.Request{Function: "fail"}, ""); err != nil {
				t.Fatal(err)
			}
			for _, st := range tc.steps {
				if _, err := st.apply(s, "j"); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
			}
			got, err := s.Get(ctx, "j")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.wantStatus || len(got.Attempts) != tc.attempts {
				t.Errorf("status %s with %d attempts, want %s with %d", got.Status, len(got.Attempts), tc.wantStatus, tc.attempts)
			}
			if tc.wantError != "" && got.Error != tc.wantError {
				t.Errorf("error %q, want %q", got.Error, tc.wantError)
			}
			if diff := cmp.Diff(tc.wantStats, stats(t, s)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTransitionErrors(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	if _, err := s.Start(ctx, "missing", attempt(1, job.OutcomeRunning, "")); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("Start of a missing job: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Create(ctx, "j", job.Request{Function: "fail"}, ""); err != nil {
		t.Fatal(err)
	}
	for _, st := range []step{start(1), finish(1, job.OutcomeFailed)} {
		if _, err := st.apply(s, "j"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Finish(ctx, "j", attempt(1, job.OutcomeSucceeded, "")); !errorsIs(err, store.ErrTransition) {
		t.Errorf("succeeding an attempt that failed: %v, want ErrTransition", err)
	}
}

// TestConcurrentRedelivery delivers one job's whole life 50 times at once, as
// a Broker that redelivers eagerly would, and checks that every counter
// reads as if it had been delivered once.
func TestConcurrentRedelivery(t *testing.T) {
	s, _, _ := setup(t)
	life := []step{start(1), finish(1, job.OutcomeFailed), start(2), finish(2, job.OutcomeFailed), start(3), finish(3, job.OutcomeSucceeded)}
	var wg sync.WaitGroup
	errs := make(chan error, 50*len(life))
	moved := make(chan bool, 50*len(life))
	for range 50 {
		wg.Go(func() {
			if _, _, err := s.Create(context.Background(), "j", job.Request{Function: "flaky"}, ""); err != nil {
				errs <- err
			}
			for _, st := range life {
				ok, err := st.apply(s, "j")
				if err != nil && !errorsIs(err, store.ErrTransition) {
					errs <- fmt.Errorf("%s: %w", st.name, err)
				}
				moved <- ok
			}
		})
	}
	wg.Wait()
	close(errs)
	close(moved)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	for ok := range moved {
		if ok {
			n++
		}
	}
	if n > len(life) {
		t.Errorf("%d moves took effect, at most %d may", n, len(life))
	}
	if diff := cmp.Diff(job.Stats{Succeeded: 1, Retries: 2}, stats(t, s)); diff != "" {
		t.Errorf("stats after 50 concurrent deliveries (-want +got):\n%s", diff)
	}
	got, err := s.Get(context.Background(), "j")
	if err != nil || got.Status != job.Succeeded {
		t.Errorf("job = %s, %v; want succeeded", got.Status, err)
	}
}

func TestRetention(t *testing.T) {
	s, rdb, clk := setup(t)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, "old", job.Request{Function: "echo"}, ""); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, "kjobs:{kjobs}:job:old").Val(); ttl != -1 {
		t.Errorf("a queued job expires in %v; want no expiry until it finishes", ttl)
	}
	for _, st := range []step{start(1), finish(1, job.OutcomeSucceeded)} {
		if _, err := st.apply(s, "old"); err != nil {
			t.Fatal(err)
		}
	}
	if ttl := rdb.TTL(ctx, "kjobs:{kjobs}:job:old").Val(); ttl <= 0 || ttl > retention {
		t.Errorf("a finished job expires in %v; want within %v", ttl, retention)
	}
	// Past the retention the index entry is trimmed by the next create,
	// and the counters keep counting what happened.
	clk.Add(retention + time.Minute)
	if _, _, err := s.Create(ctx, "new", job.Request{Function: "echo"}, ""); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"index", "status:succeeded"} {
		members := rdb.ZRange(ctx, "kjobs:{kjobs}:"+key, 0, -1).Val()
		for _, m := range members {
			if m[14:] == "old" {
				t.Errorf("%s still holds the expired job: %v", key, members)
			}
		}
	}
	if diff := cmp.Diff(job.Stats{Succeeded: 1, Queued: 1}, stats(t, s)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestList(t *testing.T) {
	s, rdb, clk := setup(t)
	ctx := context.Background()
	var ids []string
	for i := range 25 {
		id := fmt.Sprintf("job-%02d", i)
		ids = append([]string{id}, ids...) // newest first
		if _, _, err := s.Create(ctx, id, job.Request{Function: "echo"}, ""); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := s.Start(ctx, id, attempt(1, job.OutcomeRunning, "")); err != nil {
				t.Fatal(err)
			}
		}
		if i%5 != 0 { // several jobs share a millisecond: the ID breaks ties
			clk.Add(time.Millisecond)
		}
	}

	var got []string
	pages := 0
	for cursor := ""; ; pages++ {
		page, err := s.List(ctx, store.ListOptions{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
		// A job created between pages is newer than the cursor: it must not
		// show up on a later page, nor shift it.
		if pages == 0 {
			clk.Add(time.Millisecond)
			if _, _, err := s.Create(ctx, "zz-late", job.Request{Function: "echo"}, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("paged IDs (-want +got):\n%s", diff)
	}
	if pages != 2 {
		t.Errorf("%d further pages, want 2", pages)
	}

	running, err := s.List(ctx, store.ListOptions{Status: job.Running, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(running.Jobs) != 13 || running.Next != "" {
		t.Errorf("status=running listed %d jobs (next %q), want 13 and no next page", len(running.Jobs), running.Next)
	}
	for _, j := range running.Jobs {
		if j.Status != job.Running {
			t.Errorf("status=running listed %s in %s", j.ID, j.Status)
		}
	}

	for _, bad := range []string{"!!", "bm9wZQ", "MTIzOmFiYw"} {
		if _, err := s.List(ctx, store.ListOptions{Cursor: bad}); !errorsIs(err, store.ErrBadCursor) {
			t.Errorf("List(cursor %q) error = %v, want ErrBadCursor", bad, err)
		}
	}

	// A record that expired is skipped, not returned empty.
	rdb.Del(ctx, "kjobs:{kjobs}:job:"+ids[0])
	page, err := s.List(ctx, store.ListOptions{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		if j.ID == ids[0] || j.ID == "" {
			t.Errorf("List returned an expired job: %+v", j)
		}
	}
}

// TestStale checks which jobs the sweep may re-send: queued with no
// attempt, or retrying or running and unchanged, for longer than the age; and that one claim
// per job holds until it expires.
func TestStale(t *testing.T) {
	s, _, clk := setup(t)
	ctx := context.Background()
	create := func(id string, steps ...step) {
		t.Helper()
		if _, _, err := s.Create(ctx, id, job.Request{Function: "echo"}, ""); err != nil {
			t.Fatal(err)
		}
		for _, st := range steps {
			if _, err := st.apply(s, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	create("old-queued")
	create("old-retrying", start(1), finish(1, job.OutcomeFailed))
	create("old-running", start(1))
	create("old-succeeded", start(1), finish(1, job.OutcomeSucceeded))
	create("old-retrying-moved-lately", start(1))
	clk.Add(time.Minute)
	if _, err := finish(1, job.OutcomeFailed).apply(s, "old-retrying-moved-lately"); err != nil {
		t.Fatal(err)
	}
	create("new-queued")
	clk.Add(30 * time.Second)

	stale, err := s.Stale(ctx, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range stale {
		ids = append(ids, j.ID)
	}
	if diff := cmp.Diff([]string{"old-queued", "old-retrying", "old-running"}, ids); diff != "" {
		t.Errorf("stale jobs (-want +got):\n%s", diff)
	}
	if stale, err := s.Stale(ctx, time.Minute, 1); err != nil || len(stale) != 1 {
		t.Errorf("Stale with limit 1: %d jobs, %v", len(stale), err)
	}

	for i, want := range []bool{true, false} {
		if got, err := s.Claim(ctx, "old-queued", time.Minute); err != nil || got != want {
			t.Errorf("claim %d: %v, %v; want %v", i+1, got, err, want)
		}
	}
}

// TestListLabels checks listing by labels: one label walks its own index,
// several labels or a label and a status filter what it reads, and paging
// by cursor neither repeats nor skips a job either way.
func TestListLabels(t *testing.T) {
	s, _, clk := setup(t)
	ctx := context.Background()
	// job-i has team=a when i is even, else team=b; tier=gold when i%3 == 0;
	// it runs when i%4 == 0.
	for i := range 30 {
		id := fmt.Sprintf("job-%02d", i)
		labels := map[string]string{"team": "b"}
		if i%2 == 0 {
			labels["team"] = "a"
		}
		if i%3 == 0 {
			labels["tier"] = "gold"
		}
		if _, _, err := s.Create(ctx, id, job.Request{Function: "echo", Labels: labels}, ""); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if _, err := s.Start(ctx, id, attempt(1, job.OutcomeRunning, "")); err != nil {
				t.Fatal(err)
			}
		}
		clk.Add(time.Millisecond)
	}
	want := func(keep func(i int) bool) []string {
		var ids []string
		for i := 29; i >= 0; i-- {
			if keep(i) {
				ids = append(ids, fmt.Sprintf("job-%02d", i))
			}
		}
		return ids
	}

	tests := []struct {
		name  string
		opts  store.ListOptions
		limit int
		want  []string
	}{{
		name: "one label",
		opts: store.ListOptions{Labels: map[string]string{"team": "a"}},
		want: want(func(i int) bool { return i%2 == 0 }),
	}, {
		name: "two labels",
		opts: store.ListOptions{Labels: map[string]string{"team": "a", "tier": "gold"}},
		want: want(func(i int) bool { return i%6 == 0 }),
	}, {
		name: "a label and a status",
		opts: store.ListOptions{Labels: map[string]string{"tier": "gold"}, Status: job.Running},
		want: want(func(i int) bool { return i%12 == 0 }),
	}, {
		name: "a label no job has",
		opts: store.ListOptions{Labels: map[string]string{"team": "c"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, limit := range []int{2, 3, 100} {
				var got []string
				opts := tt.opts
				opts.Limit = limit
				for {
					page, err := s.List(ctx, opts)
					if err != nil {
						t.Fatal(err)
					}
					for _, j := range page.Jobs {
						got = append(got, j.ID)
					}
					if page.Next == "" {
						break
					}
					opts.Cursor = page.Next
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("limit %d: listed IDs (-want +got):\n%s", limit, diff)
				}
			}
		})
	}
}

// TestLabelRetention checks that a label's index is trimmed on the
// retention of the index, and expires with its newest entry.
func TestLabelRetention(t *testing.T) {
	s, rdb, clk := setup(t)
	ctx := context.Background()
	labels := map[string]string{"team": "a"}
	if _, _, err := s.Create(ctx, "old", job.Request{Function: "echo", Labels: labels}, ""); err != nil {
		t.Fatal(err)
	}
	clk.Add(retention + time.Minute)
	if _, _, err := s.Create(ctx, "new", job.Request{Function: "echo", Labels: labels}, ""); err != nil {
		t.Fatal(err)
	}
	key := "kjobs:{kjobs}:label:team=a"
	members := rdb.ZRange(ctx, key, 0, -1).Val()
	if len(members) != 1 || members[0][14:] != "new" {
		t.Errorf("%s = %v, want only the new job", key, members)
	}
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= retention-time.Minute || ttl > retention {
		t.Errorf("%s expires in %v, want the retention %v", key, ttl, retention)
	}
}

// TestListLabelsBounded checks that a filtered listing reads a bounded
// number of entries per request: a page over many jobs that do not match
// comes back short, with a cursor that goes on from where it stopped.
func TestListLabelsBounded(t *testing.T) {
	s, _, clk := setup(t)
	ctx := context.Background()
	const n = 1500 // more than one request reads
	for i := range n {
		if _, _, err := s.Create(ctx, fmt.Sprintf("job-%04d", i), job.Request{Function: "echo", Labels: map[string]string{"team": "a"}}, ""); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Millisecond)
	}
	// Only the oldest job runs: every request but the last finds nothing.
	if _, err := s.Start(ctx, "job-0000", attempt(1, job.OutcomeRunning, "")); err != nil {
		t.Fatal(err)
	}
	opts := store.ListOptions{Labels: map[string]string{"team": "a"}, Status: job.Running, Limit: 10}
	var got []string
	requests := 0
	for ; ; requests++ {
		page, err := s.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		if page.Next == "" {
			break
		}
		opts.Cursor = page.Next
	}
	if diff := cmp.Diff([]string{"job-0000"}, got); diff != "" {
		t.Errorf("listed IDs (-want +got):\n%s", diff)
	}
	if requests != 1 {
		t.Errorf("%d further requests, want 1: each reads at most a bounded number of entries", requests)
	}
}
