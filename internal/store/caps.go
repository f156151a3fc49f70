package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Caps are the concurrency caps in force: how many jobs may run at once.
type Caps struct {
	// Install caps every function's jobs together; 0 is no cap.
	Install int
	// Default caps each function that has no entry in Functions; 0 is no
	// cap.
	Default int
	// Functions caps each named function's jobs; 0 is an entry without a
	// cap, which replaces Default for that function.
	Functions map[string]int
}

// capsRead is the part of capsLib that reads caps and slots: all that the
// create script needs, which runs on every POST /jobs, so that it does not
// build the rest.
var capsRead = fmt.Sprintf(`
local P = %q
local function capsOf(fn)
  local c = redis.call("HMGET", P .. "caps", "fn:" .. fn, "default", "install")
  local f = c[1]
  if not f then f = c[2] end
  if f == "none" then f = false end
  return tonumber(f), tonumber(c[3])
end
local function room(fn, f, i)
  if f == nil and i == nil then f, i = capsOf(fn) end
  local held = redis.call("HMGET", P .. "slots", "fn:" .. fn, "install")
  return (f == nil or (tonumber(held[1]) or 0) < f) and (i == nil or (tonumber(held[2]) or 0) < i)
end
local function firstInLine(fn, f, i)
  return redis.call("EXISTS", P .. "queue:" .. fn) == 0 and room(fn, f, i)
end
`, prefix)

// capsLib is the Lua that every script which moves jobs in or out of a
// slot starts with, so that admission has one implementation. A job takes
// a slot when its function or the install is capped; it gives it back when
// its attempt ends, whoever records that first, since release checks and
// clears the record's slot field. Whenever a slot frees or a cap rises,
// admit hands the free slots to the waiting jobs that arrived first, so
// that after every script no waiting job could run: a new job may take a
// free slot only when no job of its function waits.
//
// admitNew is admission's fast path for a job that is in no queue: by that
// invariant it may take a free slot if no job of its function waits, and
// otherwise joins the queue, where admit would not pick it either. Either
// way it is numbered, so that a retry keeps its place. An uncapped job is
// admitted without a slot.
//
// The keys of queues and of other jobs' records are built here from the
// prefix; they share the hash tag of the keys each script declares.
var capsLib = capsRead + `
local function capped(fn)
  local f, i = capsOf(fn)
  return f ~= nil or i ~= nil
end
local function nowMs()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function take(id, fn)
  redis.call("HINCRBY", P .. "slots", "fn:" .. fn, 1)
  redis.call("HINCRBY", P .. "slots", "install", 1)
  redis.call("HSET", P .. "job:" .. id, "slot", "1", "updatedAt", nowMs())
end
local function release(id, fn)
  local k = P .. "job:" .. id
  if redis.call("HGET", k, "slot") ~= "1" then return false end
  redis.call("HDEL", k, "slot")
  redis.call("HINCRBY", P .. "slots", "fn:" .. fn, -1)
  redis.call("HINCRBY", P .. "slots", "install", -1)
  return true
end
local function enqueue(id, fn)
  local k = P .. "job:" .. id
  local seq = redis.call("HGET", k, "seq")
  if not seq then
    seq = redis.call("INCR", P .. "seq")
    redis.call("HSET", k, "seq", seq)
  end
  redis.call("ZADD", P .. "queue:" .. fn, seq, id)
  redis.call("SADD", P .. "queues", fn)
end
local function dequeue(id, fn)
  local q = P .. "queue:" .. fn
  if redis.call("ZREM", q, id) == 1 and redis.call("ZCARD", q) == 0 then
    redis.call("SREM", P .. "queues", fn)
  end
end
local function admitNew(id, fn)
  local f, i = capsOf(fn)
  if f == nil and i == nil then return true end
  if firstInLine(fn, f, i) then
    local k = P .. "job:" .. id
    if not redis.call("HGET", k, "seq") then
      redis.call("HSET", k, "seq", redis.call("INCR", P .. "seq"))
    end
    take(id, fn)
    return true
  end
  enqueue(id, fn)
  return false
end
local function inQueue(id, fn)
  return redis.call("ZSCORE", P .. "queue:" .. fn, id) ~= false
end
local function admit()
  local out = {}
  while true do
    local best, bestFn, bestSeq
    for _, fn in ipairs(redis.call("SMEMBERS", P .. "queues")) do
      local head = redis.call("ZRANGE", P .. "queue:" .. fn, 0, 0, "WITHSCORES")
      if #head > 0 and room(fn) then
        local seq = tonumber(head[2])
        if best == nil or seq < bestSeq then best, bestFn, bestSeq = head[1], fn, seq end
      end
    end
    if best == nil then return out end
    dequeue(best, bestFn)
    take(best, bestFn)
    out[#out + 1] = best
  end
end
local function handOff(ids, except)
  for _, id in ipairs(ids) do
    if id ~= except then redis.call("RPUSH", P .. "handoff", id) end
  end
end
local function setStatus(id, member, from, to)
  if from == to then return end
  redis.call("ZREM", P .. "status:" .. from, member)
  redis.call("ZADD", P .. "status:" .. to, 0, member)
  redis.call("HINCRBY", P .. "stats", from, -1)
  redis.call("HINCRBY", P .. "stats", to, 1)
  redis.call("HSET", P .. "job:" .. id, "status", to)
end
`

// setCapsScript replaces the caps in force and admits the waiting jobs
// that now fit.
//
// KEYS[1] caps. ARGV field, value, field, value... (none: no cap at all).
// Returns how many jobs it admitted.
var setCapsScript = redis.NewScript(capsLib + `
redis.call("DEL", KEYS[1])
if #ARGV > 0 then redis.call("HSET", KEYS[1], unpack(ARGV)) end
local got = admit()
handOff(got, nil)
return #got
`)

// SetCaps puts caps in force for every API and dispatcher sharing this
// Redis. A raised or removed cap admits waiting jobs at once; a lowered one
// stops no running job, it only admits none until the running ones fit.
func (s *Store) SetCaps(ctx context.Context, c Caps) error {
	var args []any
	if c.Install > 0 {
		args = append(args, "install", c.Install)
	}
	if c.Default > 0 {
		args = append(args, "default", c.Default)
	}
	for _, fn := range slices.Sorted(maps.Keys(c.Functions)) {
		v := any(c.Functions[fn])
		if c.Functions[fn] <= 0 {
			v = "none"
		}
		args = append(args, "fn:"+fn, v)
	}
	if err := setCapsScript.Run(ctx, s.rdb, []string{capsKey()}, args...).Err(); err != nil {
		return fmt.Errorf("store.SetCaps: %w", err)
	}
	return nil
}

// Slots returns the slots held now: by every function together, and by
// each function.
func (s *Store) Slots(ctx context.Context) (install int, functions map[string]int, err error) {
	all, err := s.rdb.HGetAll(ctx, slotsKey()).Result()
	if err != nil {
		return 0, nil, fmt.Errorf("store.Slots: %w", err)
	}
	functions = map[string]int{}
	for k, v := range all {
		n, _ := strconv.Atoi(v)
		if k == "install" {
			install = n
		} else if fn, ok := strings.CutPrefix(k, "fn:"); ok && n != 0 {
			functions[fn] = n
		}
	}
	return install, functions, nil
}

// Admission says whether a delivery may start a job's next attempt.
type Admission int

const (
	// Admitted: the job holds a slot, or is not capped; start the attempt.
	Admitted Admission = iota
	// Wait: the job waits for a slot. It is handed off, its event sent
	// again, once admitted.
	Wait
)

// ErrFinished is returned for a move of a job that has ended: by Acquire,
// and by Cancel for a job that succeeded or failed.
var ErrFinished = errors.New("job finished")

// acquireScript gives a job about to start an attempt a slot, or puts it
// in its function's queue (status waiting) in its arrival order: a retry
// keeps the place its first arrival took.
//
// KEYS[1] job hash. ARGV[1] id.
// Returns 1 admitted, 2 waiting, 0 when the job has ended, -1 when it does
// not exist.
var acquireScript = redis.NewScript(capsLib + `
local rec = redis.call("HMGET", KEYS[1], "status", "function", "slot", "member")
local status, fn, id = rec[1], rec[2], ARGV[1]
if not status then return -1 end
if status == "succeeded" or status == "failed" or status == "canceled" then return 0 end
if rec[3] == "1" then return 1 end
if not inQueue(id, fn) and admitNew(id, fn) then return 1 end
if status ~= "waiting" then
  setStatus(id, rec[4], status, "waiting")
  redis.call("HSET", KEYS[1], "updatedAt", nowMs())
end
return 2
`)

// Acquire is called by a delivery before it starts a new attempt of job
// id: it returns Admitted when the attempt may start now, and Wait when
// the job joined, or stays in, its function's queue.
func (s *Store) Acquire(ctx context.Context, id string) (Admission, error) {
	res, err := acquireScript.Run(ctx, s.rdb, []string{jobKey(id)}, id).Int()
	if err != nil {
		return Wait, fmt.Errorf("store.Acquire: %w", err)
	}
	switch res {
	case -1:
		return Wait, fmt.Errorf("store.Acquire %s: %w", id, ErrNotFound)
	case 0:
		return Wait, fmt.Errorf("store.Acquire %s: %w", id, ErrFinished)
	case 2:
		return Wait, nil
	}
	return Admitted, nil
}

// NextHandOff returns the ID of the next admitted job whose event must be
// sent again, waiting up to wait for one; "" when none came. Every
// dispatcher replica takes from the one list, so each ID goes to one.
func (s *Store) NextHandOff(ctx context.Context, wait time.Duration) (string, error) {
	return s.pop(ctx, "store.NextHandOff", handOffKey(), wait)
}

// NextCancel returns the ID of the next canceled job whose attempt must be
// stopped, waiting up to wait for one; "" when none came.
func (s *Store) NextCancel(ctx context.Context, wait time.Duration) (string, error) {
	return s.pop(ctx, "store.NextCancel", cancelsKey(), wait)
}

// pop takes the head of the list key, waiting up to wait for one; a wait
// of 0 does not block. Redis counts a blocking wait in whole seconds.
func (s *Store) pop(ctx context.Context, op, key string, wait time.Duration) (string, error) {
	var id string
	var err error
	if wait <= 0 {
		id, err = s.rdb.LPop(ctx, key).Result()
	} else {
		var res []string
		if res, err = s.rdb.BLPop(ctx, wait, key).Result(); err == nil {
			id = res[1]
		}
	}
	switch {
	case errors.Is(err, redis.Nil):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return id, nil
}
