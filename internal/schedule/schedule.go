// Package schedule validates cron schedules with the parser and rules
// Knative's PingSource applies, computes their next runs, and defines where
// schedules are kept: PingSources in a cluster, or a local cron.
package schedule

import (
	"context"
	"errors"
	"time"

	"github.com/kjobs/kjobs/internal/job"
)

// Schedule is a cron schedule that requests one job per tick.
type Schedule struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Cron      string      `json:"cron"`
	Timezone  string      `json:"timezone"`
	Function  string      `json:"function"`
	Args      job.Args    `json:"args"`
	NextRuns  []time.Time `json:"nextRuns"`
	CreatedAt time.Time   `json:"createdAt"`
	// Paused is true while the schedule's ticks are dropped instead of
	// starting jobs.
	Paused bool `json:"paused"`
	// Skipped counts the ticks dropped while the schedule was paused, each
	// tick once however often it was delivered. The dispatcher counts them
	// in Redis and the API fills this in; a Store leaves it 0.
	Skipped int64 `json:"skipped"`
}

// Request returns the job request each tick of the schedule carries.
func (s Schedule) Request() job.Request {
	return job.Request{Function: s.Function, Args: s.Args, Schedule: s.ID}
}

// ResourceName returns the name of the PingSource of schedule id. The local
// store's ticks name it in their source too, as a PingSource's ticks do.
func ResourceName(id string) string { return "kjobs-schedule-" + id }

// ErrNotFound is returned for a schedule ID that does not exist.
var ErrNotFound = errors.New("schedule not found")

// Store keeps schedules and fires them. Create is given a schedule whose
// cron and timezone have been validated and whose ID is set; the store fills
// in CreatedAt. NextRuns and Skipped are computed by the caller.
//
// SetPaused pauses or resumes schedule id, or returns ErrNotFound; setting
// the state it has already is a no-op. A paused schedule goes on ticking,
// and each tick says that it was paused (event.ExtPaused), so that the
// dispatcher drops it and counts it skipped.
type Store interface {
	Create(ctx context.Context, s Schedule) (Schedule, error)
	List(ctx context.Context) ([]Schedule, error)
	Get(ctx context.Context, id string) (Schedule, error)
	Delete(ctx context.Context, id string) error
	SetPaused(ctx context.Context, id string, paused bool) (Schedule, error)
}
