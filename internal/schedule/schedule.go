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
// in CreatedAt. NextRuns is computed by the caller.
type Store interface {
	Create(ctx context.Context, s Schedule) (Schedule, error)
	List(ctx context.Context) ([]Schedule, error)
	Get(ctx context.Context, id string) (Schedule, error)
	Delete(ctx context.Context, id string) error
}
