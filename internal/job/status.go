package job

import "fmt"

// Status is where a job is in its lifecycle.
type Status string

const (
	// Queued is a job that was accepted and whose first attempt has not
	// started yet.
	Queued Status = "queued"
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
)

// Statuses lists every status in lifecycle order.
var Statuses = []Status{Queued, Running, Retrying, Succeeded, Failed}

// transitions is the one table of allowed moves. The store's transition
// script enforces the same table in Redis; TestTransitionTable keeps the two
// from drifting.
var transitions = map[Status][]Status{
	Queued:    {Running, Failed},
	Running:   {Retrying, Succeeded, Failed},
	Retrying:  {Running, Failed},
	Succeeded: nil,
	Failed:    nil,
}

// Terminal reports whether no move leaves s.
func (s Status) Terminal() bool { return s == Succeeded || s == Failed }

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
	return "", fmt.Errorf("unknown status %q: want one of queued, running, retrying, succeeded, failed", s)
}
