package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/kjobs/kjobs/internal/job"
)

// TestConcurrentCreates has many callers create jobs at once, so that
// their scripts share pipelines: each gets its own job back, every job is
// stored as asked, and the counters count each once. Half the callers
// reuse an Idempotency-Key, in the same batches as the jobs they repeat.
func TestConcurrentCreates(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	const n = 400
	var wg sync.WaitGroup
	got := make([]job.Job, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			req := job.Request{Function: "sleep", Args: job.Args{"i": fmt.Sprint(i / 2)}}
			got[i], created[i], errs[i] = s.Create(ctx, fmt.Sprintf("j%d", i), req, fmt.Sprintf("key-%d", i/2))
		})
	}
	wg.Wait()
	for i := 0; i < n; i += 2 {
		a, b := i, i+1
		if err := errors.Join(errs[a], errs[b]); err != nil {
			t.Fatal(err)
		}
		if created[a] == created[b] {
			t.Fatalf("jobs %d and %d share a key; created = %v and %v, want exactly one", a, b, created[a], created[b])
		}
		if got[a].ID != got[b].ID || got[a].Args["i"] != fmt.Sprint(i/2) {
			t.Errorf("jobs %d and %d: got IDs %s and %s with args %v, want one job with args i=%d", a, b, got[a].ID, got[b].ID, got[a].Args, i/2)
		}
		stored, err := s.Get(ctx, got[a].ID)
		if err != nil || stored.Args["i"] != fmt.Sprint(i/2) {
			t.Errorf("stored job %s = %v, %v; want args i=%d", got[a].ID, stored.Args, err, i/2)
		}
	}
	if st := stats(t, s); st.Queued != n/2 {
		t.Errorf("queued = %d, want %d", st.Queued, n/2)
	}
}

// TestCreateAfterScriptFlush checks that a Redis that lost its scripts,
// as after a restart, is given them again.
func TestCreateAfterScriptFlush(t *testing.T) {
	s, rdb, _ := setup(t)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, "j1", job.Request{Function: "sleep"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Create(ctx, "j2", job.Request{Function: "sleep"}, ""); err != nil || !ok {
		t.Fatalf("Create after SCRIPT FLUSH = %v, %v; want created", ok, err)
	}
	if st := stats(t, s); st.Queued != 2 {
		t.Errorf("queued = %d, want 2", st.Queued)
	}
}

// TestCreateCanceled checks that a caller who stops waiting gets its
// context's error, while the others' creates go on.
func TestCreateCanceled(t *testing.T) {
	s, _, _ := setup(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, _, err := s.Create(context.Background(), fmt.Sprintf("j%d", i), job.Request{Function: "sleep"}, ""); err != nil {
				t.Error(err)
			}
		})
	}
	if _, _, err := s.Create(canceled, "gone", job.Request{Function: "sleep"}, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a canceled context: error %v, want context.Canceled", err)
	}
	wg.Wait()
	if _, err := s.Stats(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("Stats with a canceled context: error %v, want context.Canceled", err)
	}
}
