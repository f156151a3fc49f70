package dispatch

import (
	"context"
	"time"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
)

// sweepBatch bounds how many events one sweep re-sends.
const sweepBatch = 100

// sendTimeout bounds one re-send to the Broker.
const sendTimeout = 10 * time.Second

// Sweep re-sends, every age/2 until ctx is done, the event of every job
// that has waited longer than age for a delivery that will not come: queued
// with no attempt (the event was lost by a non-durable channel, or by a
// Broker that died before its Trigger fired), retrying with nothing moving
// it (the Broker's retries and dead letter met a dispatcher that was down),
// or running with no Job for its attempt (a dispatcher that died between
// recording an attempt and creating its Job, its retries lost too). The event keeps the job's ID, so the delivery it starts adopts
// whatever already exists, and at-least-once delivery holds end to end: a
// job always ends terminal.
//
// The re-sent event is a dev.kjobs.job.requested whatever started the job;
// a schedule's job keeps its schedule in the data. Replicas sweeping at once
// claim each job in the store first, so each stale job is sent once per age.
func (d *Dispatcher) Sweep(ctx context.Context, sender event.Sender, age time.Duration) error {
	t := time.NewTicker(max(age/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d.sweep(ctx, sender, age)
	}
}

func (d *Dispatcher) sweep(ctx context.Context, sender event.Sender, age time.Duration) {
	stale, err := d.store.Stale(ctx, age, sweepBatch)
	if err != nil {
		d.log.Warn("finding stale jobs failed", "error", err)
		return
	}
	for _, j := range stale {
		log := d.log.With("job", j.ID, "status", j.Status)
		if j.Status == job.Running {
			inCluster, err := d.runner.Attempts(ctx, j.ID)
			if err != nil {
				log.Warn("reading a stale job's attempts failed", "error", err)
				continue
			}
			if n := len(inCluster); n > 0 && inCluster[n-1].Attempt >= j.Attempts[len(j.Attempts)-1].Attempt {
				continue // its Job runs, or has ended and the reconciler records it
			}
		}
		claimed, err := d.store.Claim(ctx, j.ID, age)
		if err != nil {
			log.Warn("claiming a stale job failed", "error", err)
			return
		}
		if !claimed {
			continue
		}
		if err := resend(ctx, sender, j); err != nil {
			log.Warn("re-sending a stale job's event failed; a sweep tries again once the claim expires", "error", err)
			continue
		}
		log.Info("re-sent the event of a job no delivery was moving", "updatedAt", j.UpdatedAt)
	}
}

// resend sends job j's event to the Broker again, with the job's ID, so
// that the delivery it starts adopts whatever exists. It is a
// dev.kjobs.job.requested whatever started the job; a schedule's job keeps
// its schedule in the data.
func resend(ctx context.Context, sender event.Sender, j job.Job) error {
	e, err := event.NewRequested(j.ID, j.Request())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	return sender.Send(ctx, e)
}
