package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/kjobs/kjobs/internal/job"
)

// Every key shares the hash tag {kjobs} so that one script may touch them all
// on Redis Cluster too: they live in one slot.
const prefix = "kjobs:{kjobs}:"

// jobKey is a HASH with one job's record:
//
//	id, function, args (JSON), schedule, timeout (a Go duration, or ""),
//	labels (JSON, or ""), status, attempt (current number),
//	error, createdAt, updatedAt (Unix ms), a:<n> (attempt n as JSON),
//	binding, eventSource, eventId, eventType and cloudevent (the event in
//	CloudEvents JSON) for a job a binding's event started,
//	deadLetter (the Broker's reason, kept while the attempt it gave up
//	during still runs), seq (its place in its function's queue, once it
//	met a cap) and slot ("1" while it holds a concurrency slot).
func jobKey(id string) string { return prefix + "job:" + id }

// indexKey is a ZSET of every job, all scored 0 so that members sort by
// their text: member(createdAt, id). Listing walks it newest first by
// lexicographic range, which makes a cursor an exact position.
func indexKey() string { return prefix + "index" }

// statusKey is a ZSET like indexKey of the jobs in one status.
func statusKey(s job.Status) string { return prefix + "status:" + string(s) }

// labelKey is a ZSET like indexKey of the jobs created with label k=v. The
// create script writes it and trims it to the retention, and gives it the
// retention as its expiry: once no job with the label was created for that
// long, every entry would have been trimmed anyway. Neither a label key nor
// a label value can hold '=', so the key names one label.
func labelKey(k, v string) string { return prefix + "label:" + k + "=" + v }

// bindingKey is a ZSET like labelKey of the jobs that binding's events
// started, written, trimmed and expired the same way.
func bindingKey(name string) string { return prefix + "binding:" + name }

// statsKey is a HASH of counters: succeeded, failed, canceled, retries
// (cumulative) and queued, waiting, running, retrying (jobs in that status
// now).
func statsKey() string { return prefix + "stats" }

// minuteKey is a HASH of the jobs that ended in the minute starting at
// Unix second unixMinute*60: fields succeeded and failed, counted by the
// transition script in the move that ends the job, so each job once. It
// expires after minuteKeep, so only the last couple of hours are kept.
func minuteKey(unixMinute int64) string {
	return prefix + "minute:" + strconv.FormatInt(unixMinute, 10)
}

// idemKey is a STRING holding the job ID first created for an
// Idempotency-Key. The key is hashed so that any header value makes a
// bounded, printable Redis key.
func idemKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	return prefix + "idem:" + hex.EncodeToString(sum[:])
}

// sweepKey is a STRING that one dispatcher replica sets, with an expiry, to
// claim the re-send of a stale job for a while, so that replicas sweeping
// at once send it once.
func sweepKey(id string) string { return prefix + "sweep:" + id }

// deletedScheduleKey is a STRING that marks a deleted schedule, so that a
// tick of its PingSource while that is still being deleted runs no job.
func deletedScheduleKey(id string) string { return prefix + "schedule-deleted:" + id }

// pausedScheduleKey is a STRING, "1" or "0", that records whether the API
// last paused or resumed schedule id, for a few minutes. The dispatcher
// prefers it to the extension a tick carries, which Knative's adapter
// updates only once it has seen the PingSource change.
func pausedScheduleKey(id string) string { return prefix + "schedule-paused:" + id }

// skippedKey is a HASH of schedule ID to the number of that schedule's ticks
// dropped while it was paused.
func skippedKey() string { return prefix + "schedule-skipped" }

// skippedTickKey is a STRING that marks tick id as dropped and counted in
// skippedKey, so that a redelivered tick is dropped again and counted once.
func skippedTickKey(id string) string { return prefix + "tick-skipped:" + id }

// The concurrency caps' keys. Besides these, the Lua of caps.go builds from
// prefix, as it needs them, keys that share the hash tag and so the slot of
// the keys each script declares:
//
//	queue:<function>  ZSET of the IDs of the function's jobs waiting for a
//	                  slot, scored by their seq: the lowest came first
//	queues            SET of the functions whose queue is not empty
//	seq               STRING counter that numbers jobs as they meet a cap,
//	                  their arrival order across functions
//	job:<id>          the records of the jobs it admits or releases

// capsKey is a HASH of the caps in force: install (every function),
// default (a function without an entry of its own) and fn:<name>; a value
// of "none" is a function's own entry without a cap, which replaces the
// default's. A missing field is no cap.
func capsKey() string { return prefix + "caps" }

// slotsKey is a HASH of the slots held now: install, and fn:<name> per
// function. A job holds one while its attempt runs (its record's slot).
func slotsKey() string { return prefix + "slots" }

// handOffKey is a LIST of the IDs of jobs admitted to a slot whose event a
// dispatcher must send again: their first delivery was answered at once.
func handOffKey() string { return prefix + "handoff" }

// cancelsKey is a LIST of the IDs of canceled jobs whose attempt a
// dispatcher must stop.
func cancelsKey() string { return prefix + "cancels" }

// statusKeys lists the status ZSETs in the order the transition script
// expects them in KEYS.
func statusKeys() []string {
	keys := make([]string, len(job.Statuses))
	for i, s := range job.Statuses {
		keys[i] = statusKey(s)
	}
	return keys
}

// member is a job's entry in the index ZSETs: the creation time in
// zero-padded Unix milliseconds, so that text order is time order, then the
// ID to make it unique.
func member(createdAt time.Time, id string) string {
	return fmt.Sprintf("%013d:%s", createdAt.UnixMilli(), id)
}

// memberID returns the job ID of an index member.
func memberID(m string) string { return m[len("0000000000000:"):] }
