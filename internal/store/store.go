// Package store keeps kjobs' state in Redis: job records with their
// attempts, the counters behind GET /jobs/stats, a time-ordered index for
// listing, the idempotency keys of POST /jobs, and the marks and counters
// by which the dispatcher drops the ticks of deleted and paused schedules.
//
// Every change is one Lua script that checks the current state before it
// writes, so a change repeated by a redelivered event is a no-op and the
// counters count each job once. All keys are built in keys.go.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
)

var (
	// ErrNotFound is returned for a job ID that has no record.
	ErrNotFound = errors.New("job not found")
	// ErrTransition is returned for a move the state machine does not
	// allow, such as succeeding an attempt that already failed.
	ErrTransition = errors.New("transition not allowed")
	// ErrBadCursor is returned by List for a cursor it did not issue.
	ErrBadCursor = errors.New("malformed cursor")
	// ErrScheduleDeleted is returned by Create for a new job of a schedule
	// that MarkScheduleDeleted marked.
	ErrScheduleDeleted = errors.New("schedule deleted")
)

// Options configure a Store.
type Options struct {
	// Retention is how long a finished job's record, and an idempotency
	// key, are kept. Defaults to 7 days.
	Retention time.Duration
	// Now tells the time. Defaults to time.Now.
	Now func() time.Time
}

// Store is the Redis-backed job state. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	batch     *batcher
	retention time.Duration
	now       func() time.Time
	// lastTrim is when a Create last trimmed the index, in Unix ms.
	lastTrim atomic.Int64
}

// trimEvery spaces out the index trims that Create does: expired entries
// may wait that long, and accepting a job stays a few commands.
const trimEvery = time.Second

// New returns a Store over rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, batch: &batcher{rdb: rdb}, retention: opts.Retention, now: opts.Now}
}

// Ping checks that Redis answers; it backs /readyz.
func (s *Store) Ping(ctx context.Context) error {
	return s.rdb.Ping(ctx).Err()
}

// createScript creates a job unless it exists, in one round trip. A job
// whose function or install is capped joins its function's queue, numbered
// in arrival order, and is created waiting unless a slot is free for it.
//
// KEYS[1] job hash, KEYS[2] index, KEYS[3] status:queued, KEYS[4] stats,
// KEYS[5] idempotency key (only read when ARGV[8] is "1"),
// KEYS[6] status:succeeded, KEYS[7] status:failed, KEYS[8] the schedule's
// deletion mark (only read when ARGV[4] is not ""), KEYS[9] status:waiting,
// KEYS[10] status:canceled, KEYS[11...] the label ZSETs of the job's labels
// and the ZSET of its binding.
// ARGV[1] id, ARGV[2] function, ARGV[3] args JSON, ARGV[4] schedule,
// ARGV[5] now (Unix ms), ARGV[6] index member, ARGV[7] retention (s),
// ARGV[8] "1" to honour the idempotency key, ARGV[9] the oldest member kept,
// or "" not to trim, ARGV[10] timeout, ARGV[11] labels JSON, ARGV[12] the
// oldest member kept in the label ZSETs, ARGV[13] the binding, ARGV[14]
// the source and ARGV[15] the id of the event that started the job (or ""),
// ARGV[16] its type, ARGV[17] the event itself in CloudEvents JSON.
//
// Returns {1, id, status} when created, {0, id} with the ID that already
// stands for this job or idempotency key, {-1, ""} for a new job of a
// deleted schedule, {-2, id} when the job exists for another binding or
// event: two events whose derived IDs collide. It also trims index entries older than the retention,
// which keeps the index as small as the records it points to. The job's own
// label ZSETs are trimmed on every create rather than every trimEvery, since
// only a create with the label reaches them; each trim removes what expired
// since the last, so it costs what the entries cost to write.
var createScript = redis.NewScript(capsRead + `
if ARGV[8] == "1" then
  local first = redis.call("GET", KEYS[5])
  if first then return {0, first} end
end
if redis.call("EXISTS", KEYS[1]) == 1 then
  if ARGV[14] ~= "" then
    local had = redis.call("HMGET", KEYS[1], "binding", "eventSource", "eventId")
    if had[1] ~= ARGV[13] or had[2] ~= ARGV[14] or had[3] ~= ARGV[15] then return {-2, ARGV[1]} end
  end
  return {0, ARGV[1]}
end
if ARGV[4] ~= "" and redis.call("EXISTS", KEYS[8]) == 1 then return {-1, ""} end
local id, fn, status, set = ARGV[1], ARGV[2], "queued", KEYS[3]
local rec = {"id", id, "function", fn, "args", ARGV[3], "schedule", ARGV[4],
  "timeout", ARGV[10], "labels", ARGV[11], "attempt", 0,
  "member", ARGV[6], "createdAt", ARGV[5], "updatedAt", ARGV[5]}
if ARGV[14] ~= "" then
  for _, f in ipairs({"binding", ARGV[13], "eventSource", ARGV[14], "eventId", ARGV[15],
      "eventType", ARGV[16], "cloudevent", ARGV[17]}) do
    table.insert(rec, f)
  end
end
local f, i = capsOf(fn)
if f ~= nil or i ~= nil then
  -- admitNew's work, with what a new job needs written into its record.
  local seq = redis.call("INCR", P .. "seq")
  table.insert(rec, "seq")
  table.insert(rec, seq)
  if firstInLine(fn, f, i) then
    redis.call("HINCRBY", P .. "slots", "fn:" .. fn, 1)
    redis.call("HINCRBY", P .. "slots", "install", 1)
    table.insert(rec, "slot")
    table.insert(rec, "1")
  else
    redis.call("ZADD", P .. "queue:" .. fn, seq, id)
    redis.call("SADD", P .. "queues", fn)
    status, set = "waiting", KEYS[9]
  end
end
table.insert(rec, "status")
table.insert(rec, status)
redis.call("HSET", KEYS[1], unpack(rec))
redis.call("ZADD", KEYS[2], 0, ARGV[6])
redis.call("ZADD", set, 0, ARGV[6])
redis.call("HINCRBY", KEYS[4], status, 1)
if ARGV[8] == "1" then
  redis.call("SET", KEYS[5], id, "EX", ARGV[7])
end
if ARGV[9] ~= "" then
  redis.call("ZREMRANGEBYLEX", KEYS[2], "-", "(" .. ARGV[9])
  redis.call("ZREMRANGEBYLEX", KEYS[6], "-", "(" .. ARGV[9])
  redis.call("ZREMRANGEBYLEX", KEYS[7], "-", "(" .. ARGV[9])
  redis.call("ZREMRANGEBYLEX", KEYS[10], "-", "(" .. ARGV[9])
end
for i = 11, #KEYS do
  redis.call("ZADD", KEYS[i], 0, ARGV[6])
  redis.call("ZREMRANGEBYLEX", KEYS[i], "-", "(" .. ARGV[12])
  redis.call("EXPIRE", KEYS[i], ARGV[7])
end
return {1, id, status}
`)

// Create records a job for req under id: queued, or waiting when a
// concurrency cap holds it back. With a non-empty
// idempotencyKey, a key seen before returns the job first created for it.
// created is false when the job, or the key, existed already. A new job of
// a schedule marked deleted is refused with ErrScheduleDeleted; one that
// exists is returned as it is.
func (s *Store) Create(ctx context.Context, id string, req job.Request, idempotencyKey string) (j job.Job, created bool, err error) {
	return s.create(ctx, id, req, idempotencyKey, nil)
}

// ErrCollision is returned by CreateBound for a job ID that a job of
// another binding or event holds already.
var ErrCollision = errors.New("job ID held by another event")

// CreateBound records the job that a binding's event starts, as Create
// does, with req.Binding and req.Event naming them and cloudevent the event
// in CloudEvents JSON, which the function receives (Event reads it back).
// The ID is derived from the event (event.JobID), so a duplicate event
// returns the job it created; one whose binding, source or id differ from
// the job's is refused with ErrCollision rather than taken for it.
func (s *Store) CreateBound(ctx context.Context, id string, req job.Request, cloudevent []byte) (j job.Job, created bool, err error) {
	if req.Binding == "" || req.Event == nil || req.Event.Source == "" || req.Event.ID == "" {
		return job.Job{}, false, fmt.Errorf("store.CreateBound %s: a bound job needs its binding, and its event's source and id", id)
	}
	return s.create(ctx, id, req, "", cloudevent)
}

func (s *Store) create(ctx context.Context, id string, req job.Request, idempotencyKey string, cloudevent []byte) (j job.Job, created bool, err error) {
	now := s.now()
	args, err := json.Marshal(argsOrEmpty(req.Args))
	if err != nil {
		return job.Job{}, false, fmt.Errorf("store.Create: %w", err)
	}
	var timeout, labels string
	if req.Timeout > 0 {
		timeout = req.Timeout.String()
	}
	if len(req.Labels) > 0 {
		// A map of strings always marshals.
		raw, _ := json.Marshal(req.Labels)
		labels = string(raw)
	}
	useKey, key := "0", jobKey(id)
	if idempotencyKey != "" {
		useKey, key = "1", idemKey(idempotencyKey)
	}
	keys := []string{jobKey(id), indexKey(), statusKey(job.Queued), statsKey(), key, statusKey(job.Succeeded), statusKey(job.Failed),
		deletedScheduleKey(req.Schedule), statusKey(job.Waiting), statusKey(job.Canceled)}
	for _, k := range slices.Sorted(maps.Keys(req.Labels)) {
		keys = append(keys, labelKey(k, req.Labels[k]))
	}
	var source, eventID, eventType string
	if cloudevent != nil {
		keys = append(keys, bindingKey(req.Binding))
		source, eventID, eventType = req.Event.Source, req.Event.ID, req.Event.Type
	}
	res, err := s.batch.run(ctx, createScript, keys,
		id, req.Function, args, req.Schedule, now.UnixMilli(), member(now, id), int64(s.retention/time.Second), useKey,
		s.trimBound(now), timeout, labels, member(now.Add(-s.retention), ""),
		req.Binding, source, eventID, eventType, cloudevent,
	).Slice()
	if err != nil {
		return job.Job{}, false, fmt.Errorf("store.Create: %w", err)
	}
	switch res[0].(int64) {
	case -1:
		return job.Job{}, false, fmt.Errorf("store.Create %s: schedule %s: %w", id, req.Schedule, ErrScheduleDeleted)
	case -2:
		return job.Job{}, false, fmt.Errorf("store.CreateBound %s: binding %s, event %q from %q: %w", id, req.Binding, req.Event.ID, req.Event.Source, ErrCollision)
	case 1:
		at := time.UnixMilli(now.UnixMilli())
		j := job.Job{
			ID: id, Function: req.Function, Args: argsOrEmpty(req.Args), Status: job.Status(res[2].(string)),
			Attempts: []job.Attempt{}, Schedule: req.Schedule, Timeout: req.Timeout, Labels: maps.Clone(req.Labels),
			CreatedAt: at, UpdatedAt: at,
		}
		if cloudevent != nil {
			j.Binding, j.Event = req.Binding, req.Event
		}
		return j, true, nil
	}
	j, err = s.Get(ctx, res[1].(string))
	return j, false, err
}

// Event returns the event that started job id, in CloudEvents JSON, or nil
// for a job no binding's event started.
func (s *Store) Event(ctx context.Context, id string) ([]byte, error) {
	v, err := s.rdb.HGet(ctx, jobKey(id), "cloudevent").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store.Event %s: %w", id, err)
	}
	return v, nil
}

// trimBound returns the oldest index member to keep, or "" when another
// Create trimmed less than trimEvery ago.
func (s *Store) trimBound(now time.Time) string {
	last := s.lastTrim.Load()
	if now.UnixMilli()-last < trimEvery.Milliseconds() || !s.lastTrim.CompareAndSwap(last, now.UnixMilli()) {
		return ""
	}
	return member(now.Add(-s.retention), "")
}

func argsOrEmpty(a job.Args) job.Args {
	if a == nil {
		return job.Args{}
	}
	return a
}

// abandonScript removes a job that is still queued or waiting with no
// attempt: the API created it but could not hand its event to the Broker,
// so nothing will ever run it. Its place in a queue, or its slot, is given
// up, which may admit the next job.
//
// KEYS[1] job hash, KEYS[2] index, KEYS[3] status:queued, KEYS[4] stats,
// KEYS[5] idempotency key, KEYS[6] status:waiting. ARGV[1] id, ARGV[2] "1"
// to drop the key.
// Returns 1 when removed, 0 when the job had moved on (left as it is).
var abandonScript = redis.NewScript(capsLib + `
local rec = redis.call("HMGET", KEYS[1], "status", "member", "function", "attempt")
if (rec[1] ~= "queued" and rec[1] ~= "waiting") or rec[4] ~= "0" then return 0 end
dequeue(ARGV[1], rec[3])
if release(ARGV[1], rec[3]) then handOff(admit(), nil) end
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], rec[2])
redis.call("ZREM", rec[1] == "queued" and KEYS[3] or KEYS[6], rec[2])
redis.call("HINCRBY", KEYS[4], rec[1], -1)
if ARGV[2] == "1" and redis.call("GET", KEYS[5]) == ARGV[1] then
  redis.call("DEL", KEYS[5])
end
return 1
`)

// Abandon undoes Create for a job whose event could not be sent, so that a
// failed POST /jobs leaves nothing behind and a retry with the same
// Idempotency-Key creates the job afresh. The job's label ZSETs keep its
// entry until the retention trims it: List skips an entry without a record,
// and the script would otherwise need the labels' keys from the caller.
func (s *Store) Abandon(ctx context.Context, id, idempotencyKey string) error {
	useKey, key := "0", jobKey(id)
	if idempotencyKey != "" {
		useKey, key = "1", idemKey(idempotencyKey)
	}
	err := abandonScript.Run(ctx, s.rdb,
		[]string{jobKey(id), indexKey(), statusKey(job.Queued), statsKey(), key, statusKey(job.Waiting)}, id, useKey).Err()
	if err != nil {
		return fmt.Errorf("store.Abandon: %w", err)
	}
	return nil
}
