package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// cancelScript ends a job canceled, unless it has ended: it leaves its
// queue, gives back its slot (admitting the waiting jobs that now fit) and
// is listed for a dispatcher to stop its attempt, if one runs or is about
// to. Cancelling a canceled job changes nothing.
//
// KEYS[1] job hash, KEYS[2] cancels. ARGV[1] id, ARGV[2] now (Unix ms),
// ARGV[3] retention (s).
// Returns 1 when canceled now, 0 when it was already, -1 when the job does
// not exist, -2 when it succeeded or failed.
var cancelScript = redis.NewScript(capsLib + `
local rec = redis.call("HMGET", KEYS[1], "status", "function", "member")
local status, fn, id = rec[1], rec[2], ARGV[1]
if not status then return -1 end
if status == "canceled" then return 0 end
if status == "succeeded" or status == "failed" then return -2 end
dequeue(id, fn)
if release(id, fn) then handOff(admit(), nil) end
setStatus(id, rec[3], status, "canceled")
redis.call("HSET", KEYS[1], "updatedAt", ARGV[2], "error", "canceled")
redis.call("HDEL", KEYS[1], "deadLetter")
redis.call("EXPIRE", KEYS[1], ARGV[3])
redis.call("RPUSH", KEYS[2], id)
return 1
`)

// Cancel ends job id canceled. It reports whether this call canceled it:
// false for a job canceled before. A job that succeeded or failed is
// ErrFinished, one without a record ErrNotFound. A dispatcher stops the
// attempt (NextCancel); a delivery of the job after this starts none.
func (s *Store) Cancel(ctx context.Context, id string) (bool, error) {
	res, err := cancelScript.Run(ctx, s.rdb, []string{jobKey(id), cancelsKey()},
		id, s.now().UnixMilli(), int64(s.retention/time.Second)).Int()
	if err != nil {
		return false, fmt.Errorf("store.Cancel: %w", err)
	}
	switch res {
	case -1:
		return false, fmt.Errorf("store.Cancel %s: %w", id, ErrNotFound)
	case -2:
		return false, fmt.Errorf("store.Cancel %s: %w", id, ErrFinished)
	}
	return res == 1, nil
}
