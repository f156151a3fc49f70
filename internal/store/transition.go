package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
)

// transitionScript moves a job through its state machine, the same table as
// job.Status.CanMove. A move is keyed by attempt number, which makes every
// move idempotent: a move for an older attempt, or one already made, is a
// no-op that changes no counter.
//
// An attempt number above the current one first starts that attempt
// (status running, retries += the attempts it adds beyond the first), so a
// dispatcher that crashed between steps still leaves exact counters.
//
// The dead-letter sink's move (ARGV[7] "1") fails a job only when no
// attempt is left to wait for. While an attempt runs it leaves the job
// running and keeps the Broker's reason in the field deadLetter instead:
// that attempt's failure then fails the job for good, with that reason,
// rather than making it retrying, and its success still succeeds it.
//
// A move out of running, or to an end, gives back the job's concurrency
// slot, if it holds one, and admits the waiting jobs that now fit; a move
// to running takes the job out of its queue, and takes a slot if its
// function is capped and it holds none (an attempt that runs counts,
// whoever started it). A canceled job moves no more, but keeps how its
// stopped attempt ended; the start of an attempt of it is answered -3, so
// that the caller stops that attempt.
//
// The move that ends a job, succeeded or failed, also counts it in the
// current minute's hash (minuteKey), so that the history counts each job
// once, as the stats do.
//
// KEYS[1] job hash, KEYS[2] stats, KEYS[3..9] status ZSETs for queued,
// waiting, running, retrying, succeeded, failed, canceled, KEYS[10] the
// current minute's hash.
// ARGV[1] target status, ARGV[2] attempt number (0: not about one attempt,
// as from the dead-letter sink), ARGV[3] the attempt as JSON or "",
// ARGV[4] now (Unix ms), ARGV[5] the job's error or "", ARGV[6] retention (s),
// ARGV[7] "1" for the dead-letter sink's move, ARGV[8] the job's ID,
// ARGV[9] how long a minute's hash is kept (s).
//
// Returns 1 when moved, 3 when an attempt's end moved the job to failed
// rather than to the target (a dead letter was kept for it), 0 for a no-op,
// -1 when the job does not exist, -2 when the state machine forbids the
// move, 2 when a dead letter was kept for the running attempt, -3 for the
// start of an attempt of a canceled job. A move (1 or 3) comes as {code,
// function, createdAt}, the two fields that the caller counts it by, so
// that it need not read the job again.
var transitionScript = redis.NewScript(capsLib + `
local sets = {queued = KEYS[3], waiting = KEYS[4], running = KEYS[5], retrying = KEYS[6],
  succeeded = KEYS[7], failed = KEYS[8], canceled = KEYS[9]}
local allowed = {
  queued = {waiting = true, running = true, failed = true},
  waiting = {running = true, failed = true},
  running = {retrying = true, succeeded = true, failed = true},
  retrying = {waiting = true, running = true, failed = true},
}
local to, n, reason, id = ARGV[1], tonumber(ARGV[2]), ARGV[5], ARGV[8]
local rec = redis.call("HMGET", KEYS[1], "status", "attempt", "member", "deadLetter", "function", "createdAt")
local status, cur, m, fn = rec[1], tonumber(rec[2]), rec[3], rec[5]
if not status then return -1 end
if status == "canceled" and n > 0 and n >= cur then
  if to == "running" then return -3 end
  local held = redis.call("HGET", KEYS[1], "a:" .. n)
  if ARGV[3] ~= "" and (not held or string.find(held, '"outcome":"running"', 1, true)) then
    redis.call("HSET", KEYS[1], "a:" .. n, ARGV[3], "attempt", n)
  end
  return 0
end
if allowed[status] == nil then return 0 end
if ARGV[7] == "1" and status == "running" then
  if rec[4] then return 0 end
  redis.call("HSET", KEYS[1], "deadLetter", reason, "updatedAt", ARGV[4])
  return 2
end
if to == "retrying" and rec[4] then
  to, reason = "failed", rec[4]
end

local admitted = {}
local function move(next)
  if next == status then return end
  local ends = next == "succeeded" or next == "failed"
  if (status == "running" or ends) and release(id, fn) then admitted = admit() end
  if ends or next == "running" then dequeue(id, fn) end
  if next == "running" and capped(fn) and redis.call("HGET", KEYS[1], "slot") ~= "1" then take(id, fn) end
  redis.call("ZREM", sets[status], m)
  redis.call("ZADD", sets[next], 0, m)
  redis.call("HINCRBY", KEYS[2], status, -1)
  redis.call("HINCRBY", KEYS[2], next, 1)
  redis.call("HSET", KEYS[1], "status", next)
  if ends then
    redis.call("HINCRBY", KEYS[10], next, 1)
    redis.call("EXPIRE", KEYS[10], ARGV[9])
  end
  status = next
end

if n > 0 then
  if n < cur then return 0 end
  if n > cur then
    local added = n - math.max(cur, 1)
    if added > 0 then redis.call("HINCRBY", KEYS[2], "retries", added) end
    move("running")
    redis.call("HSET", KEYS[1], "attempt", n)
  elseif to == "running" then
    return 0
  end
end
if to ~= "running" then
  if status == to then return 0 end
  if not allowed[status][to] then return -2 end
  move(to)
end
handOff(admitted, nil)
if n > 0 and ARGV[3] ~= "" then
  redis.call("HSET", KEYS[1], "a:" .. n, ARGV[3])
end
redis.call("HSET", KEYS[1], "updatedAt", ARGV[4])
if reason ~= "" then redis.call("HSET", KEYS[1], "error", reason) end
if to == "succeeded" or to == "failed" then
  redis.call("EXPIRE", KEYS[1], ARGV[6])
end
if to == "failed" and ARGV[7] ~= "1" then return {3, fn, rec[6]} end
return {1, fn, rec[6]}
`)

// Move is what Start or Finish did to a job, so that a caller counts each
// move once, by the job's function, without reading the job again.
type Move struct {
	// To is the status the job moved to, or "" when it did not move.
	To job.Status
	// Function and CreatedAt are the job's, which never change; they are
	// set only when the job moved.
	Function  string
	CreatedAt time.Time
}

// Moved reports whether the job moved.
func (m Move) Moved() bool { return m.To != "" }

// Start records that attempt a.Attempt is running. It reports whether the
// job moved; a repeated Start of one attempt is a no-op. For a canceled
// job it returns ErrCanceled: the attempt must be stopped, not run.
func (s *Store) Start(ctx context.Context, id string, a job.Attempt) (Move, error) {
	r, m, err := s.transition(ctx, "store.Start", id, job.Running, a, "", false)
	if r == moved {
		m.To = job.Running
	}
	return m, err
}

// Finish records how attempt a ended: a succeeded attempt makes the job
// succeeded, a failed one makes it retrying, for the Broker to deliver its
// event again, or failed when the Broker has already dead-lettered it. It
// reports the status the job moved to, with To "" when it did not move (a
// repeated Finish of one attempt), so that a caller counts each end once.
func (s *Store) Finish(ctx context.Context, id string, a job.Attempt) (Move, error) {
	to := job.Retrying
	if a.Outcome == job.OutcomeSucceeded {
		to = job.Succeeded
	}
	r, m, err := s.transition(ctx, "store.Finish", id, to, a, "", false)
	switch r {
	case moved:
		m.To = to
	case movedFailed:
		m.To = job.Failed
	}
	return m, err
}

// DeadLetterResult says what DeadLetter did.
type DeadLetterResult int

const (
	// DeadLetterIgnored: the job had finished already, or a dead letter was
	// already kept for its running attempt.
	DeadLetterIgnored DeadLetterResult = iota
	// DeadLetterFailed: the job had no attempt left to wait for and is now
	// failed.
	DeadLetterFailed
	// DeadLetterKept: an attempt is running; its failure will fail the job
	// with reason, and its success will still succeed it.
	DeadLetterKept
)

// DeadLetter records that the Broker gave up on a job, with reason. It
// fails the job only when no attempt of it is running. The caller records
// what the cluster knows of the latest attempt first, so that a job whose
// attempt succeeded or failed is recorded so before its dead letter.
func (s *Store) DeadLetter(ctx context.Context, id, reason string) (DeadLetterResult, error) {
	r, _, err := s.transition(ctx, "store.DeadLetter", id, job.Failed, job.Attempt{}, reason, true)
	switch r {
	case moved:
		return DeadLetterFailed, err
	case kept:
		return DeadLetterKept, err
	}
	return DeadLetterIgnored, err
}

// Results of the transition script that are not errors.
const (
	noop        = 0
	moved       = 1
	kept        = 2
	movedFailed = 3
)

// ErrCanceled is returned by Start for an attempt of a canceled job: the
// caller stops the attempt instead of running it.
var ErrCanceled = errors.New("job canceled")

// transition runs transitionScript and returns its code, with the job's
// function and creation time when it moved.
func (s *Store) transition(ctx context.Context, op, id string, to job.Status, a job.Attempt, reason string, deadLetter bool) (int, Move, error) {
	var attemptJSON []byte
	if a.Attempt > 0 {
		var err error
		if attemptJSON, err = json.Marshal(a); err != nil {
			return noop, Move{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	dl := "0"
	if deadLetter {
		dl = "1"
	}
	now := s.now()
	keys := append(append([]string{jobKey(id), statsKey()}, statusKeys()...), minuteKey(now.Unix()/60))
	reply, err := transitionScript.Run(ctx, s.rdb, keys,
		string(to), a.Attempt, attemptJSON, now.UnixMilli(), reason, int64(s.retention/time.Second), dl, id,
		int64(minuteKeep/time.Second)).Result()
	if err != nil {
		return noop, Move{}, fmt.Errorf("%s: %w", op, err)
	}
	var m Move
	res, ok := reply.(int64)
	if moved, isMove := reply.([]any); isMove && len(moved) == 3 {
		// Redis turns the Lua false of a missing field into nil, which
		// leaves that field empty.
		res, ok = moved[0].(int64)
		m.Function, _ = moved[1].(string)
		created, _ := moved[2].(string)
		ms, _ := strconv.ParseInt(created, 10, 64)
		m.CreatedAt = time.UnixMilli(ms)
	}
	if !ok {
		return noop, Move{}, fmt.Errorf("%s %s: unexpected reply %v", op, id, reply)
	}
	switch res {
	case -1:
		return noop, Move{}, fmt.Errorf("%s %s: %w", op, id, ErrNotFound)
	case -2:
		return noop, Move{}, fmt.Errorf("%s %s to %s for attempt %d: %w", op, id, to, a.Attempt, ErrTransition)
	case -3:
		return noop, Move{}, fmt.Errorf("%s %s attempt %d: %w", op, id, a.Attempt, ErrCanceled)
	}
	return int(res), m, nil
}

// Status returns a job's status alone, one field of its record.
func (s *Store) Status(ctx context.Context, id string) (job.Status, error) {
	st, err := s.rdb.HGet(ctx, jobKey(id), "status").Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("store.Status %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store.Status: %w", err)
	}
	return job.Status(st), nil
}

// Get returns a job with every attempt.
func (s *Store) Get(ctx context.Context, id string) (job.Job, error) {
	fields, err := s.rdb.HGetAll(ctx, jobKey(id)).Result()
	if err != nil {
		return job.Job{}, fmt.Errorf("store.Get: %w", err)
	}
	if len(fields) == 0 {
		return job.Job{}, fmt.Errorf("store.Get %s: %w", id, ErrNotFound)
	}
	j, err := decodeJob(fields)
	if err != nil {
		return job.Job{}, fmt.Errorf("store.Get %s: %w", id, err)
	}
	return j, nil
}

func decodeJob(f map[string]string) (job.Job, error) {
	j := job.Job{
		ID:       f["id"],
		Function: f["function"],
		Status:   job.Status(f["status"]),
		Schedule: f["schedule"],
		Error:    f["error"],
		Attempts: []job.Attempt{},
		Binding:  f["binding"],
	}
	if f["eventSource"] != "" {
		j.Event = &job.EventRef{Source: f["eventSource"], ID: f["eventId"], Type: f["eventType"]}
	}
	if err := json.Unmarshal([]byte(f["args"]), &j.Args); err != nil {
		return job.Job{}, fmt.Errorf("decoding args: %w", err)
	}
	// Jobs created before timeouts and labels existed have neither field.
	if v := f["timeout"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return job.Job{}, fmt.Errorf("decoding timeout: %w", err)
		}
		j.Timeout = job.Duration(d)
	}
	if v := f["labels"]; v != "" {
		if err := json.Unmarshal([]byte(v), &j.Labels); err != nil {
			return job.Job{}, fmt.Errorf("decoding labels: %w", err)
		}
	}
	created, _ := strconv.ParseInt(f["createdAt"], 10, 64)
	updated, _ := strconv.ParseInt(f["updatedAt"], 10, 64)
	j.CreatedAt, j.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	n, _ := strconv.Atoi(f["attempt"])
	for i := 1; i <= n; i++ {
		raw, ok := f["a:"+strconv.Itoa(i)]
		if !ok {
			continue // an attempt the dispatcher skipped while it was down
		}
		var a job.Attempt
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			return job.Job{}, fmt.Errorf("decoding attempt %d: %w", i, err)
		}
		j.Attempts = append(j.Attempts, a)
	}
	return j, nil
}

// Stats returns the counters. It reads one hash, whatever the number of jobs.
func (s *Store) Stats(ctx context.Context) (job.Stats, error) {
	cmd := redis.NewSliceCmd(ctx, "hmget", statsKey(), "succeeded", "failed", "canceled", "retries", "queued", "waiting", "running", "retrying")
	if err := s.batch.do(ctx, cmd); err != nil {
		return job.Stats{}, fmt.Errorf("store.Stats: %w", err)
	}
	v := cmd.Val()
	n := func(i int) int64 {
		str, _ := v[i].(string)
		x, _ := strconv.ParseInt(str, 10, 64)
		return x
	}
	return job.Stats{Succeeded: n(0), Failed: n(1), Canceled: n(2), Retries: n(3), Queued: n(4), Waiting: n(5), Running: n(6), Retrying: n(7)}, nil
}
