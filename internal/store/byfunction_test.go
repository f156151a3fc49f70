package store_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// TestByFunction counts the running and waiting jobs by function as jobs
// start, wait behind a cap and end.
func TestByFunction(t *testing.T) {
	c := setupCaps(t, store.Caps{Functions: map[string]int{"sleep": 1}})
	ctx := context.Background()
	byFunction := func(st job.Status) map[string]int64 {
		t.Helper()
		n, err := c.s.ByFunction(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, j := range []struct{ id, function string }{{"s1", "sleep"}, {"s2", "sleep"}, {"s3", "sleep"}, {"e1", "echo"}, {"e2", "echo"}} {
		c.create(j.id, j.function)
		if c.acquire(j.id) == store.Admitted {
			c.start(j.id, 1)
		}
	}
	c.finish("e2", 1, job.OutcomeSucceeded)
	if diff := cmp.Diff(map[string]int64{"sleep": 1, "echo": 1}, byFunction(job.Running)); diff != "" {
		t.Errorf("running (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"sleep": 2}, byFunction(job.Waiting)); diff != "" {
		t.Errorf("waiting (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{}, byFunction(job.Canceled)); diff != "" {
		t.Errorf("canceled (-want +got):\n%s", diff)
	}
}

// TestFinishReturnsTheMove checks what Finish reports, which the
// dispatcher's metrics count: the status the job moved to, once.
func TestFinishReturnsTheMove(t *testing.T) {
	tests := []struct {
		name    string
		before  []step
		outcome job.Outcome
		want    job.Status
	}{
		{"success", []step{start(1)}, job.OutcomeSucceeded, job.Succeeded},
		{"failure with retries left", []step{start(1)}, job.OutcomeFailed, job.Retrying},
		{"failure after the Broker's dead letter", []step{start(1), deadLetter()}, job.OutcomeFailed, job.Failed},
		{"repeated success", []step{start(1), finish(1, job.OutcomeSucceeded)}, job.OutcomeSucceeded, ""},
		{"repeated failure", []step{start(1), finish(1, job.OutcomeFailed)}, job.OutcomeFailed, ""},
		{"an attempt whose start was not recorded", nil, job.OutcomeSucceeded, job.Succeeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := setup(t)
			ctx := context.Background()
			if _, _, err := s.Create(ctx, "j", job.Request{Function: "sleep"}, ""); err != nil {
				t.Fatal(err)
			}
			for _, st := range tc.before {
				if _, err := st.apply(s, "j"); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
			}
			got, err := s.Finish(ctx, "j", attempt(1, tc.outcome, ""))
			if err != nil || got.To != tc.want {
				t.Errorf("Finish moved to %q, %v; want %q", got.To, err, tc.want)
			}
		})
	}
}
