package store

import (
	"context"
	"fmt"
)

// MarkScheduleDeleted records that schedule id is deleted, for the
// retention period. A PingSource goes on ticking while it is being deleted
// (Knative's adapter stops it only once the object is gone, and a finalizer
// may hold it for a while), so Create refuses new jobs of a schedule marked
// so, and the dispatcher drops their ticks.
func (s *Store) MarkScheduleDeleted(ctx context.Context, id string) error {
	if err := s.rdb.Set(ctx, deletedScheduleKey(id), "1", s.retention).Err(); err != nil {
		return fmt.Errorf("store.MarkScheduleDeleted: %w", err)
	}
	return nil
}

// UnmarkScheduleDeleted undoes MarkScheduleDeleted for a schedule whose
// deletion failed.
func (s *Store) UnmarkScheduleDeleted(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, deletedScheduleKey(id)).Err(); err != nil {
		return fmt.Errorf("store.UnmarkScheduleDeleted: %w", err)
	}
	return nil
}
