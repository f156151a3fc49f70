package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
//	error, createdAt, updatedAt (Unix ms), a:<n> (attempt n as JSON), and
//	deadLetter (the Broker's reason, kept while the attempt it gave up
//	during still runs).
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

// statsKey is a HASH of counters: succeeded, failed, retries (cumulative)
// and queued, running, retrying (jobs in that status now).
func statsKey() string { return prefix + "stats" }

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
