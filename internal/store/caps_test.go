package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// capped is a store with caps in force and helpers that drive jobs through
// it as the dispatcher does.
type capped struct {
	t *testing.T
	s *store.Store
}

func setupCaps(t *testing.T, caps store.Caps) *capped {
	t.Helper()
	s, _, _ := setup(t)
	if err := s.SetCaps(context.Background(), caps); err != nil {
		t.Fatal(err)
	}
	return &capped{t: t, s: s}
}

func (c *capped) create(id, function string) job.Status {
	c.t.Helper()
	j, created, err := c.s.Create(context.Background(), id, job.Request{Function: function}, "")
	if err != nil || !created {
		c.t.Fatalf("Create %s = %v, %v", id, created, err)
	}
	return j.Status
}

func (c *capped) acquire(id string) store.Admission {
	c.t.Helper()
	adm, err := c.s.Acquire(context.Background(), id)
	if err != nil {
		c.t.Fatalf("Acquire %s: %v", id, err)
	}
	return adm
}

func (c *capped) start(id string, n int) {
	c.t.Helper()
	if _, err := c.s.Start(context.Background(), id, attempt(n, job.OutcomeRunning, "")); err != nil {
		c.t.Fatalf("Start %s: %v", id, err)
	}
}

func (c *capped) finish(id string, n int, outcome job.Outcome) {
	c.t.Helper()
	if _, err := c.s.Finish(context.Background(), id, attempt(n, outcome, "")); err != nil {
		c.t.Fatalf("Finish %s: %v", id, err)
	}
}

// handOffs drains the hand-off list.
func (c *capped) handOffs() []string {
	c.t.Helper()
	var ids []string
	for {
		id, err := c.s.NextHandOff(context.Background(), 0)
		if err != nil {
			c.t.Fatal(err)
		}
		if id == "" {
			return ids
		}
		ids = append(ids, id)
	}
}

func (c *capped) slots() (int, map[string]int) {
	c.t.Helper()
	install, fns, err := c.s.Slots(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return install, fns
}

func (c *capped) status(id string) job.Status {
	c.t.Helper()
	j, err := c.s.Get(context.Background(), id)
	if err != nil {
		c.t.Fatal(err)
	}
	return j.Status
}

func TestCapFirstComeFirstServed(t *testing.T) {
	c := setupCaps(t, store.Caps{Functions: map[string]int{"sleep": 2}})
	var statuses []job.Status
	for i := 1; i <= 5; i++ {
		statuses = append(statuses, c.create(fmt.Sprintf("j%d", i), "sleep"))
	}
	if diff := cmp.Diff([]job.Status{job.Queued, job.Queued, job.Waiting, job.Waiting, job.Waiting}, statuses); diff != "" {
		t.Fatalf("statuses at creation (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(job.Stats{Queued: 2, Waiting: 3}, stats(t, c.s)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	// Deliveries arrive in any order: j5 first waits, j1 and j2 start.
	if c.acquire("j5") != store.Wait || c.acquire("j1") != store.Admitted || c.acquire("j2") != store.Admitted {
		t.Fatal("want j5 to wait and j1, j2 to start")
	}
	c.start("j1", 1)
	c.start("j2", 1)
	c.finish("j2", 1, job.OutcomeSucceeded)
	// The reconciler and the delivery both record the end: one release.
	c.finish("j2", 1, job.OutcomeSucceeded)
	if diff := cmp.Diff([]string{"j3"}, c.handOffs()); diff != "" {
		t.Errorf("handed off after j2 ended (-want +got):\n%s", diff)
	}
	if c.acquire("j3") != store.Admitted {
		t.Error("j3, admitted, must start")
	}
	c.start("j3", 1)
	if install, fns := c.slots(); install != 2 || fns["sleep"] != 2 {
		t.Errorf("slots = %d, %v; want 2 held", install, fns)
	}
	c.finish("j1", 1, job.OutcomeSucceeded)
	c.finish("j3", 1, job.OutcomeSucceeded)
	if diff := cmp.Diff([]string{"j4", "j5"}, c.handOffs()); diff != "" {
		t.Errorf("handed off after j1 and j3 ended (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(job.Stats{Succeeded: 3, Waiting: 2}, stats(t, c.s)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestCapInstallServesFunctionsInArrivalOrder(t *testing.T) {
	c := setupCaps(t, store.Caps{Install: 1, Functions: map[string]int{"b": 5}})
	c.create("a1", "a")
	c.create("b1", "b")
	c.create("a2", "a")
	c.start("a1", 1)
	c.finish("a1", 1, job.OutcomeSucceeded)
	if diff := cmp.Diff([]string{"b1"}, c.handOffs()); diff != "" {
		t.Errorf("the install's free slot goes to the oldest waiting job (-want +got):\n%s", diff)
	}
}

func TestCapFullFunctionHoldsBackNoOther(t *testing.T) {
	c := setupCaps(t, store.Caps{Functions: map[string]int{"sleep": 1}})
	c.create("s1", "sleep")
	if got := c.create("s2", "sleep"); got != job.Waiting {
		t.Fatalf("s2 = %s, want waiting", got)
	}
	if got := c.create("e1", "echo"); got != job.Queued || c.acquire("e1") != store.Admitted {
		t.Errorf("an uncapped function's job = %s, want queued and admitted", got)
	}
	if _, fns := c.slots(); fns["echo"] != 0 {
		t.Errorf("an uncapped function holds %d slots, want 0", fns["echo"])
	}
}

func TestCapDefaultAndOwnEntry(t *testing.T) {
	// A function's own entry without a cap replaces the default's.
	c := setupCaps(t, store.Caps{Default: 1, Functions: map[string]int{"echo": 0}})
	c.create("s1", "sleep")
	if got := c.create("s2", "sleep"); got != job.Waiting {
		t.Errorf("sleep under the default cap = %s, want waiting", got)
	}
	c.create("e1", "echo")
	if got := c.create("e2", "echo"); got != job.Queued {
		t.Errorf("echo, whose entry has no cap = %s, want queued", got)
	}
}

func TestCapRetryKeepsItsPlace(t *testing.T) {
	c := setupCaps(t, store.Caps{Functions: map[string]int{"flaky": 1}})
	for _, id := range []string{"j1", "j2", "j3"} {
		c.create(id, "flaky")
	}
	c.start("j1", 1)
	c.finish("j1", 1, job.OutcomeFailed)
	if diff := cmp.Diff([]string{"j2"}, c.handOffs()); diff != "" {
		t.Fatalf("a failed attempt frees its slot (-want +got):\n%s", diff)
	}
	// j1's retry comes back while j2 holds the slot: it waits, ahead of j3.
	if c.acquire("j1") != store.Wait || c.status("j1") != job.Waiting {
		t.Fatal("j1's retry must wait")
	}
	c.start("j2", 1)
	c.finish("j2", 1, job.OutcomeSucceeded)
	if diff := cmp.Diff([]string{"j1"}, c.handOffs()); diff != "" {
		t.Errorf("the retry arrived first (-want +got):\n%s", diff)
	}
	c.start("j1", 2)
	if got := stats(t, c.s); got.Retries != 1 || got.Running != 1 || got.Waiting != 1 {
		t.Errorf("stats = %+v; want 1 retry, 1 running, 1 waiting", got)
	}
}

func TestCapRaisedAdmitsAtOnce(t *testing.T) {
	c := setupCaps(t, store.Caps{Install: 1})
	for _, id := range []string{"j1", "j2", "j3"} {
		c.create(id, "sleep")
	}
	if err := c.s.SetCaps(context.Background(), store.Caps{Install: 3}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"j2", "j3"}, c.handOffs()); diff != "" {
		t.Errorf("raising the cap (-want +got):\n%s", diff)
	}
	if err := c.s.SetCaps(context.Background(), store.Caps{}); err != nil {
		t.Fatal(err)
	}
	c.create("j4", "sleep")
	if c.acquire("j4") != store.Admitted {
		t.Error("with no cap, a job starts")
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	c := setupCaps(t, store.Caps{Functions: map[string]int{"sleep": 1}})
	c.create("run", "sleep")
	c.create("wait", "sleep")
	c.create("next", "sleep")
	c.start("run", 1)

	if ok, err := c.s.Cancel(ctx, "wait"); !ok || err != nil {
		t.Fatalf("Cancel of a waiting job = %v, %v", ok, err)
	}
	if ok, err := c.s.Cancel(ctx, "wait"); ok || err != nil {
		t.Errorf("a second Cancel = %v, %v; want false, nil", ok, err)
	}
	if ok, err := c.s.Cancel(ctx, "run"); !ok || err != nil {
		t.Fatalf("Cancel of a running job = %v, %v", ok, err)
	}
	// Its slot goes to the job behind, not to the canceled one.
	if diff := cmp.Diff([]string{"next"}, c.handOffs()); diff != "" {
		t.Errorf("handed off (-want +got):\n%s", diff)
	}
	var stops []string
	for {
		id, err := c.s.NextCancel(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if id == "" {
			break
		}
		stops = append(stops, id)
	}
	if diff := cmp.Diff([]string{"wait", "run"}, stops); diff != "" {
		t.Errorf("attempts to stop (-want +got):\n%s", diff)
	}
	// A late start of the canceled job's attempt is refused; how the
	// stopped attempt ended is kept.
	if _, err := c.s.Start(ctx, "run", attempt(2, job.OutcomeRunning, "")); !errorsIs(err, store.ErrCanceled) {
		t.Errorf("Start of a canceled job = %v, want ErrCanceled", err)
	}
	c.finish("run", 1, job.OutcomeFailed)
	j, err := c.s.Get(ctx, "run")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Canceled || len(j.Attempts) != 1 || j.Attempts[0].Outcome != job.OutcomeFailed {
		t.Errorf("canceled job = %s with %+v; want canceled with its failed attempt", j.Status, j.Attempts)
	}
	if _, err := c.s.Acquire(ctx, "wait"); !errorsIs(err, store.ErrFinished) {
		t.Errorf("Acquire of a canceled job = %v, want ErrFinished", err)
	}
	c.start("next", 1)
	c.finish("next", 1, job.OutcomeSucceeded)
	if _, err := c.s.Cancel(ctx, "next"); !errorsIs(err, store.ErrFinished) {
		t.Errorf("Cancel of a succeeded job = %v, want ErrFinished", err)
	}
	if _, err := c.s.Cancel(ctx, "nope"); !errorsIs(err, store.ErrNotFound) {
		t.Errorf("Cancel of an unknown job = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(job.Stats{Succeeded: 1, Canceled: 2}, stats(t, c.s)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if install, _ := c.slots(); install != 0 {
		t.Errorf("%d slots held after every job ended, want 0", install)
	}
}

// TestCancelRacingSuccess cancels jobs as their attempt succeeds: each ends
// in exactly one terminal status, counted once.
func TestCancelRacingSuccess(t *testing.T) {
	ctx := context.Background()
	c := setupCaps(t, store.Caps{Install: 100})
	const n = 50
	for i := range n {
		id := fmt.Sprintf("j%d", i)
		c.create(id, "sleep")
		c.start(id, 1)
	}
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("j%d", i)
		wg.Go(func() {
			if _, err := c.s.Cancel(ctx, id); err != nil && !errorsIs(err, store.ErrFinished) {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := c.s.Finish(ctx, id, attempt(1, job.OutcomeSucceeded, "")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := stats(t, c.s)
	if st.Succeeded+st.Canceled != n || st.Running != 0 {
		t.Errorf("stats = %+v; want %d jobs ended once each", st, n)
	}
	if install, _ := c.slots(); install != 0 {
		t.Errorf("%d slots held, want 0", install)
	}
}

func TestStaleAdmittedJob(t *testing.T) {
	ctx := context.Background()
	s, _, clk := setup(t)
	if err := s.SetCaps(ctx, store.Caps{Install: 1}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"j1", "j2", "j3"} {
		if _, _, err := s.Create(ctx, id, job.Request{Function: "sleep"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Start(ctx, "j1", attempt(1, job.OutcomeRunning, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, "j1", attempt(1, job.OutcomeSucceeded, "")); err != nil {
		t.Fatal(err)
	}
	// j2 is admitted and its hand-off lost; j3 waits for a slot. The
	// admission time comes from Redis, so the clock moves well past it.
	clk.Add(time.Since(clk.Now()) + time.Hour)
	stale, err := s.Stale(ctx, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range stale {
		ids = append(ids, j.ID)
	}
	if diff := cmp.Diff([]string{"j2"}, ids); diff != "" {
		t.Errorf("stale (-want +got):\n%s", diff)
	}
}
