package job

import "fmt"

// Status is where a job is in its lifecycle.
type Status string

const (
	// Queued is a job that was accepted and whose first attempt has not
	// started yet.
	Queued Status = "queued"
	// Waiting is a job held behind a concurrency cap, of its function or of
	// the install: it starts, first come first served, when a slot frees.
	// An admitted job stays waiting until its delivery starts the attempt.
	Waiting Status = "waiting"
	// Running is a job with an attempt in progress.
	Running Status = "running"
	// Retrying is a job whose latest attempt failed and whose event the
	// Broker will deliver again after its backoff.
	Retrying Status = "retrying"
	// Succeeded is a job whose latest attempt succeeded. It is terminal.
	Succeeded Status = "succeeded"
	// Failed is a job that the dead-letter sink gave up on: every retry
	// failed, or the event could never succeed. It is terminal.
	Failed Status = "failed"
	// Canceled is a job stopped by POST /jobs/<id>/cancel: its running
	// attempt was stopped, and no delivery starts another. It is terminal.
	Canceled Status = "canceled"
)

// Statuses lists every status in lifecycle order.
var Statuses = []Status{Queued, Waiting, Running, Retrying, Succeeded, Failed, Canceled}

// transitions is the one table of allowed moves. The store's transition
// script enforces the same table in Redis; TestTransitionTable keeps the two
// from drifting.
var transitions = map[Status][]Status{
	Queued:    {Waiting, Running, Failed, Canceled},
	Waiting:   {Running, Failed, Canceled},
	Running:   {Retrying, Succeeded, Failed, Canceled},
	Retrying:  {Waiting, Running, Failed, Canceled},
	Succeeded: nil,
	Failed:    nil,
	Canceled:  nil,
}

// Terminal reports whether no move leaves s.
func (s Status) Terminal() bool { return s == Succeeded || s == Failed || s == Canceled }

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// CanMove reports whether a job may move from s to to.
func (s Status) CanMove(to Status) bool {
	for _, t := range transitions[s] {
		if t == to {
			return true
		}
	}
	return false
}

// ParseStatus returns the status named s.
func ParseStatus(s string) (Status, error) {
	if st := Status(s); st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("unknown status %q: want one of queued, waiting, running, retrying, succeeded, failed, canceled", s)
}
