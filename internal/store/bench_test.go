package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// BenchmarkJobLifecycle runs a job's whole life through the store, as the
// API and a dispatcher do: create, take a slot, start, succeed. With a cap
// in force, the create, acquire and finish scripts also admit and release;
// the difference is the cap's cost per job, one round trip each.
func BenchmarkJobLifecycle(b *testing.B) {
	for _, tc := range []struct {
		name string
		caps store.Caps
	}{
		{"uncapped", store.Caps{}},
		{"capped", store.Caps{Install: 1000, Functions: map[string]int{"sleep": 1000}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			s := store.New(testenv.Redis(b), store.Options{})
			if err := s.SetCaps(ctx, tc.caps); err != nil {
				b.Fatal(err)
			}
			req := job.Request{Function: "sleep", Args: job.Args{"seconds": "1"}}
			a := job.Attempt{Attempt: 1, Job: "kjobs-x-1", StartedAt: time.Now(), Outcome: job.OutcomeRunning}
			done := a
			done.Outcome, done.FinishedAt = job.OutcomeSucceeded, new(time.Now())
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("j%d", i)
				i++
				if _, _, err := s.Create(ctx, id, req, ""); err != nil {
					b.Fatal(err)
				}
				if adm, err := s.Acquire(ctx, id); err != nil || adm != store.Admitted {
					b.Fatalf("Acquire = %v, %v", adm, err)
				}
				if _, err := s.Start(ctx, id, a); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Finish(ctx, id, done); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
