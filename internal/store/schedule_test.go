package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

func TestDropPausedTick(t *testing.T) {
	paused, resumed := true, false
	for _, tc := range []struct {
		name string
		// mark is what MarkSchedulePaused last recorded; nil for nothing.
		mark *bool
		// onTick is what the tick says.
		onTick bool
		// before runs before the mark is set and the tick delivered.
		before      func(t *testing.T, s *store.Store, tick, sched string)
		wantSkip    bool
		wantSkipped int64
	}{
		{name: "running schedule", onTick: false, wantSkip: false},
		{name: "the tick says paused", onTick: true, wantSkip: true, wantSkipped: 1},
		{name: "paused, the adapter not caught up yet", mark: &paused, onTick: false, wantSkip: true, wantSkipped: 1},
		{name: "resumed, the adapter not caught up yet", mark: &resumed, onTick: true, wantSkip: false},
		{name: "paused and the adapter caught up", mark: &paused, onTick: true, wantSkip: true, wantSkipped: 1},
		{
			name: "the tick has a job from before the pause", mark: &paused, onTick: true, wantSkip: false,
			before: func(t *testing.T, s *store.Store, tick, sched string) {
				if _, _, err := s.Create(context.Background(), tick, job.Request{Function: "echo", Schedule: sched}, ""); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "deleted schedule", mark: &paused, onTick: true, wantSkip: false,
			before: func(t *testing.T, s *store.Store, _, sched string) {
				if err := s.MarkScheduleDeleted(context.Background(), sched); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "skipped before the resume, redelivered after it", mark: &resumed, onTick: false, wantSkip: true, wantSkipped: 1,
			before: func(t *testing.T, s *store.Store, tick, sched string) {
				if skip, err := s.DropPausedTick(context.Background(), tick, sched, true); err != nil || !skip {
					t.Fatalf("DropPausedTick while paused = %v, %v; want true", skip, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _, _ := setup(t)
			ctx := context.Background()
			const tick, sched = "tick-1", "sched-1"
			if tc.before != nil {
				tc.before(t, s, tick, sched)
			}
			if tc.mark != nil {
				if err := s.MarkSchedulePaused(ctx, sched, *tc.mark); err != nil {
					t.Fatal(err)
				}
			}
			// A delivery and two redeliveries of the same tick.
			for range 3 {
				skip, err := s.DropPausedTick(ctx, tick, sched, tc.onTick)
				if err != nil {
					t.Fatal(err)
				}
				if skip != tc.wantSkip {
					t.Errorf("DropPausedTick = %v, want %v", skip, tc.wantSkip)
				}
			}
			got, err := s.TicksSkipped(ctx, sched)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]int64{tc.wantSkipped}, got); diff != "" {
				t.Errorf("Skipped (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTicksSkippedConcurrent delivers each tick of a paused schedule from many
// goroutines at once: each is counted once.
func TestTicksSkippedConcurrent(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	if err := s.MarkSchedulePaused(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	const ticks, deliveries = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, ticks*deliveries)
	for i := range ticks {
		for range deliveries {
			wg.Go(func() {
				if skip, err := s.DropPausedTick(ctx, fmt.Sprintf("tick-%d", i), "a", false); err != nil || !skip {
					errs <- fmt.Errorf("DropPausedTick = %v, %v; want true", skip, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.TicksSkipped(ctx, "a", "never-paused")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{ticks, 0}, got); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}
}

func TestForgetSchedule(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	if err := s.MarkSchedulePaused(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DropPausedTick(ctx, "tick-1", "a", false); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetSchedule(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TicksSkipped(ctx, "a"); err != nil || got[0] != 0 {
		t.Errorf("Skipped after ForgetSchedule = %v, %v; want [0]", got, err)
	}
	// The pause mark is gone too: a tick that does not say paused runs.
	if skip, err := s.DropPausedTick(ctx, "tick-2", "a", false); err != nil || skip {
		t.Errorf("DropPausedTick after ForgetSchedule = %v, %v; want false", skip, err)
	}
	if got, err := s.TicksSkipped(ctx); err != nil || len(got) != 0 {
		t.Errorf("TicksSkipped() = %v, %v; want []", got, err)
	}
}

// TestDeletedScheduleStillRefused checks that a deleted schedule's ticks go
// on to Create, which refuses them, however the schedule was paused.
func TestDeletedScheduleStillRefused(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	if err := s.MarkSchedulePaused(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkScheduleDeleted(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if skip, err := s.DropPausedTick(ctx, "tick-1", "a", true); err != nil || skip {
		t.Fatalf("DropPausedTick = %v, %v; want false", skip, err)
	}
	if _, _, err := s.Create(ctx, "tick-1", job.Request{Function: "echo", Schedule: "a"}, ""); !errors.Is(err, store.ErrScheduleDeleted) {
		t.Errorf("Create = %v, want ErrScheduleDeleted", err)
	}
}

// TestPauseMarkExpires checks that the pause mark lasts PauseMarkTTL, not
// the retention: after that, the PingSource alone decides.
func TestPauseMarkExpires(t *testing.T) {
	s, rdb, _ := setup(t)
	ctx := context.Background()
	if err := s.MarkSchedulePaused(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	keys := rdb.Keys(ctx, "*schedule-paused:a").Val()
	if len(keys) != 1 {
		t.Fatalf("keys of the mark = %v, want one", keys)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= store.PauseMarkTTL-time.Minute || ttl > store.PauseMarkTTL {
		t.Errorf("the mark's TTL = %v, want about %v", ttl, store.PauseMarkTTL)
	}
	rdb.Del(ctx, keys[0]) // as when it expires
	if skip, err := s.DropPausedTick(ctx, "tick-1", "a", false); err != nil || skip {
		t.Errorf("DropPausedTick of a tick that does not say paused, once the mark is gone = %v, %v; want false", skip, err)
	}
}
