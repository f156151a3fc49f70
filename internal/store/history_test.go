package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// TestHistory ends jobs in two minutes, some of their moves delivered
// twice, and checks that History counts each job once, in the minute it
// ended, within an hour of exactly 60 minutes, oldest first.
func TestHistory(t *testing.T) {
	s, rdb, clk := setup(t)
	ctx := context.Background()
	clk.Add(30 * time.Second) // mid-minute: a minute is its start, not now
	run := func(id string, steps ...step) {
		t.Helper()
		if _, _, err := s.Create(ctx, id, job.Request{Function: "fail"}, ""); err != nil {
			t.Fatal(err)
		}
		for _, st := range steps {
			if _, err := st.apply(s, id); err != nil {
				t.Fatalf("%s %s: %v", id, st.name, err)
			}
		}
	}
	run("early", start(1), finish(1, job.OutcomeSucceeded))
	early := clk.Now().Truncate(time.Minute)
	clk.Add(3 * time.Minute)
	run("succeeds twice", start(1), finish(1, job.OutcomeSucceeded), finish(1, job.OutcomeSucceeded))
	run("fails", start(1), finish(1, job.OutcomeFailed), start(2), finish(2, job.OutcomeFailed), deadLetter(), deadLetter())
	run("retrying", start(1), finish(1, job.OutcomeFailed))
	run("canceled", start(1), cancel())
	now := clk.Now().Truncate(time.Minute)

	got, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != store.HistoryMinutes {
		t.Fatalf("History returned %d minutes, want %d", len(got), store.HistoryMinutes)
	}
	want := make([]job.Minute, store.HistoryMinutes)
	for i := range want {
		want[i].At = now.Add(time.Duration(i-store.HistoryMinutes+1) * time.Minute)
	}
	want[len(want)-1].Succeeded, want[len(want)-1].Failed = 1, 1
	want[len(want)-4].Succeeded = 1
	if !want[len(want)-4].At.Equal(early) {
		t.Fatalf("test setup: minute %v, want %v", want[len(want)-4].At, early)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("History (-want +got):\n%s", diff)
	}

	// Minutes are not kept for ever: the hash expires after two hours.
	key := fmt.Sprintf("kjobs:{kjobs}:minute:%d", now.Unix()/60)
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= time.Hour || ttl > 2*time.Hour {
		t.Errorf("TTL of %s = %v, want about 2h", key, ttl)
	}

	// 57 minutes later the early minute has left the window, which starts
	// one minute after it; the later one is still in it.
	clk.Add(57 * time.Minute)
	got, err = s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sum job.Minute
	for _, m := range got {
		sum.Succeeded += m.Succeeded
		sum.Failed += m.Failed
	}
	if sum.Succeeded != 1 || sum.Failed != 1 || !got[0].At.Equal(early.Add(time.Minute)) {
		t.Errorf("57 minutes later: %d succeeded and %d failed from %v, want 1 and 1 from %v", sum.Succeeded, sum.Failed, got[0].At, early.Add(time.Minute))
	}
}
