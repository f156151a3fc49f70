package store_test

import (
	"context"
	"testing"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// TestTransitionTable checks the transition script against job.CanMove for
// every pair of statuses, so that the Lua table and the Go table cannot
// drift apart.
func TestTransitionTable(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	// Jobs of "held" wait: the one slot of its cap is taken for good.
	if err := s.SetCaps(ctx, store.Caps{Functions: map[string]int{"held": 1}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, "holder", job.Request{Function: "held"}, ""); err != nil {
		t.Fatal(err)
	}
	// reach puts a new job in a status, at attempt 1.
	reach := map[job.Status][]step{
		job.Queued:    nil,
		job.Waiting:   nil,
		job.Canceled:  {cancel()},
		job.Running:   {start(1)},
		job.Retrying:  {start(1), finish(1, job.OutcomeFailed)},
		job.Succeeded: {start(1), finish(1, job.OutcomeSucceeded)},
		job.Failed:    {deadLetter()},
	}
	// moveTo asks for a status, for attempt 1 where an attempt is involved;
	// running means the next attempt, which after a retry is attempt 2.
	moveTo := map[job.Status]step{
		job.Running:   start(1),
		job.Retrying:  finish(1, job.OutcomeFailed),
		job.Succeeded: finish(1, job.OutcomeSucceeded),
		job.Failed:    deadLetter(),
	}
	for _, from := range job.Statuses {
		for to, st := range moveTo {
			if from == job.Retrying && to == job.Running {
				st = start(2)
			}
			// A dead letter waits for the running attempt, whose failure
			// then fails the job.
			if from == job.Running && to == job.Failed {
				st = step{"dead letter, then attempt 1 fails", func(s *store.Store, id string) (bool, error) {
					if _, err := deadLetter().apply(s, id); err != nil {
						return false, err
					}
					return finish(1, job.OutcomeFailed).apply(s, id)
				}}
			}
			// A finish for an attempt that never started starts it first, so
			// from queued it may go where running may.
			// From waiting too: the cluster shows what ran.
			notStarted := from == job.Queued || from == job.Waiting
			allowed := from.CanMove(to) || (notStarted && to != job.Running && job.Running.CanMove(to))
			fn := "echo"
			if from == job.Waiting {
				fn = "held"
			}
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				id := string(from) + "-" + string(to)
				if _, _, err := s.Create(ctx, id, job.Request{Function: fn}, ""); err != nil {
					t.Fatal(err)
				}
				for _, r := range reach[from] {
					if _, err := r.apply(s, id); err != nil {
						t.Fatal(err)
					}
				}
				moved, err := st.apply(s, id)
				got, gerr := s.Get(ctx, id)
				if gerr != nil {
					t.Fatal(gerr)
				}
				switch {
				case from == job.Canceled && to == job.Running:
					// The caller must stop the attempt rather than run it.
					if !errorsIs(err, store.ErrCanceled) || moved || got.Status != from {
						t.Errorf("start of a canceled job: moved=%v err=%v status=%s; want ErrCanceled", moved, err, got.Status)
					}
				case allowed:
					if err != nil || !moved || got.Status != to {
						t.Errorf("allowed move: moved=%v err=%v status=%s", moved, err, got.Status)
					}
				case from == to || from.Terminal():
					if err != nil || moved || got.Status != from {
						t.Errorf("repeated or terminal move must be a no-op: moved=%v err=%v status=%s", moved, err, got.Status)
					}
				default:
					if moved || got.Status != from {
						t.Errorf("forbidden move happened: moved=%v err=%v status=%s", moved, err, got.Status)
					}
				}
			})
		}
	}
}
