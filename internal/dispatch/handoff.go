package dispatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// popWait bounds one blocking pop of the hand-off and cancel lists, so that
// a loop notices its context ending.
const popWait = 2 * time.Second

// HandOff sends again, until ctx is done, the event of every job admitted
// to a concurrency slot after its delivery was answered: the delivery that
// the re-sent event starts runs the attempt. Every replica takes from the
// one list in Redis, so each admitted job is sent once; one whose hand-off
// is lost with a replica that died is sent by the sweep.
func (d *Dispatcher) HandOff(ctx context.Context, sender event.Sender) error {
	return d.drain(ctx, "hand-off", d.store.NextHandOff, func(ctx context.Context, id string) {
		j, err := d.store.Get(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return
		case err != nil:
			d.log.Warn("reading an admitted job failed; the sweep sends it", "job", id, "error", err)
			return
		case j.Status != job.Waiting:
			return // started by a delivery meanwhile, or canceled
		}
		if err := resend(ctx, sender, j); err != nil {
			d.log.Warn("handing off an admitted job failed; the sweep sends it", "job", id, "error", err)
			return
		}
		d.log.Info("handed off an admitted job", "job", id)
	})
}

// Cancels stops, until ctx is done, the attempts of every job canceled
// through the API, which has no access to Jobs. A cancel whose stop is lost
// with a replica that died is stopped by the reconciler, which stops every
// running attempt of a canceled job it sees.
// It counts each canceled job: the store lists a job when its cancel moves
// it, once, and one replica takes it from the list.
func (d *Dispatcher) Cancels(ctx context.Context) error {
	return d.drain(ctx, "cancel", d.store.NextCancel, func(ctx context.Context, id string) {
		d.count(ctx, id, func(j job.Job) { d.finished(j.Function, job.Canceled) })
		if err := d.runner.Stop(ctx, id); err != nil {
			d.log.Warn("stopping a canceled job's attempt failed; the reconciler stops it", "job", id, "error", err)
			return
		}
		d.log.Info("stopped a canceled job's attempt", "job", id)
	})
}

// drain takes IDs from one of the store's lists until ctx is done and
// handles each in a goroutine of its own, so that one slow send does not
// hold the others back.
func (d *Dispatcher) drain(ctx context.Context, what string, next func(context.Context, time.Duration) (string, error), handle func(context.Context, string)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		id, err := next(ctx, popWait)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			d.log.Warn("reading the "+what+" list failed", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		case id == "":
			continue
		}
		wg.Go(func() { handle(ctx, id) })
	}
	return nil
}
