package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Args are a job's arguments: one JSON object, whose values may be of any
// JSON type, passed to the function as JSON. The function's declared JSON
// Schema says which it accepts.
type Args map[string]any

// UnmarshalJSON reads a JSON object, keeping numbers as json.Number so that
// an integer too large for a float64 reaches the function and the store
// unchanged, and an args value reads the same however often it is
// re-encoded.
func (a *Args) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*a = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return &FieldError{Field: "args", Detail: fmt.Sprintf("got a JSON %s, want an object", jsonKind(v))}
	}
	*a = m
	return nil
}

// jsonKind names the JSON type of a value decoded with UseNumber.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// Job is the record kept for one job, as the API shows it.
type Job struct {
	ID       string    `json:"id"`
	Function string    `json:"function"`
	Args     Args      `json:"args"`
	Status   Status    `json:"status"`
	Attempts []Attempt `json:"attempts"`
	// Schedule is the ID of the schedule that started the job, if any.
	Schedule string `json:"schedule"`
	// Timeout and Labels are the request's, when it set them.
	Timeout Duration          `json:"timeout,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Binding and Event say which binding and which event started the job,
	// when an event from any source did.
	Binding   string    `json:"binding,omitempty"`
	Event     *EventRef `json:"event,omitempty"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Request returns the request the job was created from, which the sweep
// sends again for a job whose event was lost.
func (j Job) Request() Request {
	return Request{Function: j.Function, Args: j.Args, Schedule: j.Schedule, Timeout: j.Timeout, Labels: j.Labels, Binding: j.Binding, Event: j.Event}
}

// EventRef names the CloudEvent that started a bound job: its source and
// id, which identify it (a duplicate carries the same pair), and its type.
type EventRef struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	Type   string `json:"type"`
}

// Outcome is how one attempt ended, or that it has not yet.
type Outcome string

const (
	// OutcomeRunning is an attempt still in progress.
	OutcomeRunning Outcome = "running"
	// OutcomeSucceeded is an attempt whose function exited 0.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeFailed is an attempt whose function exited non-zero, or that
	// was stopped by its deadline.
	OutcomeFailed Outcome = "failed"
)

// Attempt is one run of a job's function: one Kubernetes Job, or one child
// process locally.
type Attempt struct {
	// Attempt numbers attempts from 1.
	Attempt int `json:"attempt"`
	// Job names what ran the attempt: the Kubernetes Job, or the local
	// process.
	Job        string     `json:"job"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Outcome    Outcome    `json:"outcome"`
	// Message is the function's short result or error: its termination
	// message.
	Message string `json:"message,omitempty"`
	// ExitCode is the function's exit code once it finished.
	ExitCode *int `json:"exitCode,omitempty"`
	// Reason says why a failed attempt stopped, such as DeadlineExceeded.
	Reason string `json:"reason,omitempty"`
}

// Stats are the job counters. Succeeded, Failed, Canceled and Retries count
// every job once, however often its event was delivered; Queued, Waiting,
// Running and Retrying count jobs by their current status.
type Stats struct {
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Canceled  int64 `json:"canceled"`
	Retries   int64 `json:"retries"`
	Queued    int64 `json:"queued"`
	Waiting   int64 `json:"waiting"`
	Running   int64 `json:"running"`
	Retrying  int64 `json:"retrying"`
}

// Minute counts the jobs that ended in one minute: At is the minute's start
// in UTC. Like Stats, each job is counted once.
type Minute struct {
	At        time.Time `json:"at"`
	Succeeded int64     `json:"succeeded"`
	Failed    int64     `json:"failed"`
}
