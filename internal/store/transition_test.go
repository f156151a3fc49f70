package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// TestMoveNamesTheJob checks that a move reports the job's function and
// creation time, which the dispatcher counts it by without reading the job,
// and that a repeated move reports nothing to count.
func TestMoveNamesTheJob(t *testing.T) {
	s, _, clk := setup(t)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, "j", job.Request{Function: "sleep"}, ""); err != nil {
		t.Fatal(err)
	}
	created := clk.Now()
	clk.Add(3 * time.Second)

	tests := []struct {
		name string
		move func() (store.Move, error)
		want store.Move
	}{
		{"start", func() (store.Move, error) { return s.Start(ctx, "j", attempt(1, job.OutcomeRunning, "")) },
			store.Move{To: job.Running, Function: "sleep", CreatedAt: created}},
		{"start again", func() (store.Move, error) { return s.Start(ctx, "j", attempt(1, job.OutcomeRunning, "")) },
			store.Move{}},
		{"finish failed", func() (store.Move, error) { return s.Finish(ctx, "j", attempt(1, job.OutcomeFailed, "x")) },
			store.Move{To: job.Retrying, Function: "sleep", CreatedAt: created}},
		{"finish again", func() (store.Move, error) { return s.Finish(ctx, "j", attempt(1, job.OutcomeFailed, "x")) },
			store.Move{}},
		{"finish the next attempt", func() (store.Move, error) { return s.Finish(ctx, "j", attempt(2, job.OutcomeSucceeded, "")) },
			store.Move{To: job.Succeeded, Function: "sleep", CreatedAt: created}},
	}
	// In order: each step moves from where the one before left the job.
	for _, tt := range tests {
		got, err := tt.move()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
		if got.Moved() != (tt.want.To != "") {
			t.Errorf("%s: Moved() = %v", tt.name, got.Moved())
		}
	}
}
