package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
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

// PauseMarkTTL is how long MarkSchedulePaused's mark lasts: far longer than
// Knative's adapter takes to apply a change of a PingSource (under a second
// while it runs), short enough that the PingSource, which stays the truth,
// is obeyed again soon after, also when it was changed by hand or when a
// change the API marked could not be made.
const PauseMarkTTL = 10 * time.Minute

// MarkSchedulePaused records that the API paused (or resumed) schedule id,
// for PauseMarkTTL. The schedule itself keeps its state, and each of its
// ticks says it (event.ExtPaused), but a PingSource's ticks say so only once
// Knative's adapter has seen the change: until then this mark is what
// DropPausedTick goes by.
func (s *Store) MarkSchedulePaused(ctx context.Context, id string, paused bool) error {
	v := "0"
	if paused {
		v = "1"
	}
	if err := s.rdb.Set(ctx, pausedScheduleKey(id), v, PauseMarkTTL).Err(); err != nil {
		return fmt.Errorf("store.MarkSchedulePaused: %w", err)
	}
	return nil
}

// skipScript drops the tick of a paused schedule and counts it, once per
// tick ID.
//
// KEYS[1] the tick's job hash, KEYS[2] the tick's skip mark, KEYS[3] the
// schedule's deletion mark, KEYS[4] the schedule's pause mark, KEYS[5] the
// skipped counters.
// ARGV[1] schedule ID, ARGV[2] "1" when the tick says its schedule was
// paused, ARGV[3] retention (s).
//
// Returns 1 when the tick is dropped (counted now or by an earlier
// delivery), 0 when it goes on to become a job: the schedule is not paused,
// the tick already has a job, or the schedule is deleted (Create refuses
// those ticks, uncounted).
var skipScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
if redis.call("EXISTS", KEYS[2]) == 1 then return 1 end
if redis.call("EXISTS", KEYS[3]) == 1 then return 0 end
local mark = redis.call("GET", KEYS[4])
if mark then
  if mark ~= "1" then return 0 end
elseif ARGV[2] ~= "1" then
  return 0
end
redis.call("SET", KEYS[2], "1", "EX", ARGV[3])
redis.call("HINCRBY", KEYS[5], ARGV[1], 1)
return 1
`)

// DropPausedTick reports whether tick tickID of schedule scheduleID is to be
// dropped because the schedule is paused, and counts it skipped the first
// time. pausedOnTick is what the tick itself says; MarkSchedulePaused's
// mark, when there is one, wins over it. A tick that already has a job is
// never dropped, and a dropped tick never becomes a job: a redelivery gets
// the same answer whatever happened meanwhile.
func (s *Store) DropPausedTick(ctx context.Context, tickID, scheduleID string, pausedOnTick bool) (bool, error) {
	onTick := "0"
	if pausedOnTick {
		onTick = "1"
	}
	n, err := skipScript.Run(ctx, s.rdb,
		[]string{jobKey(tickID), skippedTickKey(tickID), deletedScheduleKey(scheduleID), pausedScheduleKey(scheduleID), skippedKey()},
		scheduleID, onTick, int64(s.retention/time.Second),
	).Int()
	if err != nil {
		return false, fmt.Errorf("store.DropPausedTick: %w", err)
	}
	return n == 1, nil
}

// TicksSkipped returns how many ticks of each schedule in ids were dropped while
// it was paused, in the order of ids.
func (s *Store) TicksSkipped(ctx context.Context, ids ...string) ([]int64, error) {
	out := make([]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, skippedKey(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("store.TicksSkipped: %w", err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // never skipped
		}
		if out[i], err = strconv.ParseInt(str, 10, 64); err != nil {
			return nil, fmt.Errorf("store.TicksSkipped: schedule %s: %w", ids[i], err)
		}
	}
	return out, nil
}

// ForgetSchedule drops the pause mark and the skipped count of a deleted
// schedule. Its deletion mark stays: ticks still on their way are refused
// by that.
func (s *Store) ForgetSchedule(ctx context.Context, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, pausedScheduleKey(id))
		p.HDel(ctx, skippedKey(), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store.ForgetSchedule: %w", err)
	}
	return nil
}
