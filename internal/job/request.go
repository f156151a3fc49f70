package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Request is what asks for a job: the data of a dev.kjobs.job.requested
// event, the body of POST /jobs and the data of a schedule's ping.
type Request struct {
	Function string `json:"function"`
	Args     Args   `json:"args,omitempty"`
	// Schedule is the ID of the schedule the request came from, if any.
	Schedule string `json:"schedule,omitempty"`
	// Timeout bounds each attempt, below the install's job deadline; zero
	// means the deadline. The API refuses one above the deadline; a runner
	// given one anyway keeps to the deadline.
	Timeout Duration `json:"timeout,omitempty"`
	// Labels are copied to the attempt's Job and pod and index the job for
	// GET /jobs?label=k=v. They follow the syntax of Kubernetes labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Binding names the binding whose filter selected the event that
	// started the job, if any; Event says which event that was. The
	// dispatcher sets both when it records a bound job; they travel in the
	// request only when the sweep or a hand-off sends the job's event again.
	Binding string    `json:"binding,omitempty"`
	Event   *EventRef `json:"event,omitempty"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string such as "30s", which is how people write a timeout. Its decoding
// errors name the field "timeout", its one use, since encoding/json does
// not tell an UnmarshalJSON where it is.
type Duration time.Duration

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a positive duration string. Zero is refused rather
// than read as "no timeout", so that a request means what it says.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return &FieldError{Field: "timeout", Detail: fmt.Sprintf("got %s, want a duration string such as \"30s\" or \"5m\"", data)}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &FieldError{Field: "timeout", Detail: fmt.Sprintf("%q is not a duration: write it like \"30s\" or \"5m\"", s)}
	}
	if v <= 0 {
		return &FieldError{Field: "timeout", Detail: fmt.Sprintf("%q is not positive", s)}
	}
	*d = Duration(v)
	return nil
}

// DefaultFunction runs when POST /jobs has no body, like the classic demo
// processor.
const DefaultFunction = "sample"

// Limits on a request, so that a job record and its environment stay small.
const (
	// MaxArgsBytes bounds a job's args, encoded as JSON: they are one
	// environment variable of the attempt's container (KJOBS_ARGS) and one
	// field of its Job, which the API server keeps in etcd.
	MaxArgsBytes    = 64 << 10
	maxFunctionName = 63
	// MaxLabels bounds a job's labels: each is one more index entry
	// written when the job is created.
	MaxLabels = 16
)

// isLabel reports whether s is a lower-case DNS label,
// ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, of at most maxLen bytes. Every POST /jobs
// checks a function name and every route with a job ID checks that, and a
// regexp costs more than the rest of a request's validation.
func isLabel(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// FieldError is a request that is malformed in one named field.
type FieldError struct {
	Field  string
	Detail string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Detail }

// DecodeRequest reads one JSON request strictly: unknown fields, trailing
// data and values of the wrong type are errors that say what to fix. An empty
// body asks for DefaultFunction.
func DecodeRequest(data []byte) (Request, error) {
	var req Request
	if len(bytes.TrimSpace(data)) == 0 {
		req.Function = DefaultFunction
		return req, nil
	}
	if err := DecodeJSON(data, &req); err != nil {
		return Request{}, err
	}
	if req.Function == "" {
		req.Function = DefaultFunction
	}
	return req, req.Validate()
}

// Validate checks the request's shape. Whether the function exists is for
// the caller, which knows the function registry.
func (r Request) Validate() error {
	if !isLabel(r.Function, maxFunctionName) {
		return &FieldError{Field: "function", Detail: fmt.Sprintf("%q is not a function name: use lower-case letters, digits and '-', at most %d characters", r.Function, maxFunctionName)}
	}
	if len(r.Args) > 0 {
		// Args decoded from JSON always encode; a value that does not was
		// built in Go, and is as unusable as one too large.
		b, err := json.Marshal(r.Args)
		if err != nil {
			return &FieldError{Field: "args", Detail: fmt.Sprintf("not encodable as JSON: %v", err)}
		}
		if len(b) > MaxArgsBytes {
			return &FieldError{Field: "args", Detail: fmt.Sprintf("%d bytes of JSON, at most %d allowed; pass a reference to large data, such as an object store URL, instead of the data", len(b), MaxArgsBytes)}
		}
	}
	if r.Timeout < 0 {
		return &FieldError{Field: "timeout", Detail: fmt.Sprintf("%v is negative", r.Timeout)}
	}
	if len(r.Labels) > MaxLabels {
		return &FieldError{Field: "labels", Detail: fmt.Sprintf("%d labels, at most %d allowed", len(r.Labels), MaxLabels)}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
		if err := CheckLabel(k, r.Labels[k]); err != nil {
			return &FieldError{Field: "labels", Detail: err.Error()}
		}
	}
	return nil
}

// CheckLabel checks one label as the API server would check it on a pod,
// so that a job's labels never make its Job invalid, and refuses the keys
// kjobs sets itself: overriding them would hide the pod from the runner's
// informers or attribute it to another job.
func CheckLabel(k, v string) error {
	if strings.HasPrefix(k, reservedLabelPrefix) || k == managedByLabel {
		return fmt.Errorf("%q is set by kjobs itself", k)
	}
	if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
		return fmt.Errorf("%q is not a label key: %s", k, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
		return fmt.Errorf("%q: %q is not a label value: %s", k, v, strings.Join(msgs, "; "))
	}
	return nil
}

// Label keys that CheckLabel reserves for kjobs: reservedLabelPrefix
// starts every label kjobs sets on its Jobs and pods, and managedByLabel
// scopes the runner's informers.
const (
	reservedLabelPrefix = "kjobs.dev/"
	managedByLabel      = "app.kubernetes.io/managed-by"
)

// DecodeJSON decodes one JSON value into v strictly: unknown fields,
// trailing data and values of the wrong type are *FieldError that say what
// to fix. The API decodes every request body with it.
func DecodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if dec.More() {
		return &FieldError{Field: "body", Detail: "unexpected data after the JSON object"}
	}
	return nil
}

func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var fieldErr *FieldError
	switch {
	case errors.As(err, &fieldErr):
		// A type's own UnmarshalJSON, such as Duration's, names its field.
		return fieldErr
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &FieldError{Field: "body", Detail: fmt.Sprintf("got a JSON %s, want an object", typeErr.Value)}
		}
		want := typeErr.Type.String()
		if want == "string" {
			want = "a string"
		}
		return &FieldError{Field: field, Detail: fmt.Sprintf("got a JSON %s, want %s", typeErr.Value, want)}
	case errors.As(err, &syntaxErr):
		return &FieldError{Field: "body", Detail: fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Field: "body", Detail: "malformed JSON: unexpected end of input"}
	}
	if msg := err.Error(); len(msg) > len("json: unknown field ") && msg[:len("json: unknown field ")] == "json: unknown field " {
		name := strings.Trim(msg[len("json: unknown field "):], `"`)
		if name == "" {
			name = `""`
		}
		return &FieldError{Field: name, Detail: "unknown field"}
	}
	return &FieldError{Field: "body", Detail: err.Error()}
}

// maxIDLen keeps "kjobs-<id>-<attempt>" within the 63 characters of a
// Kubernetes name.
const maxIDLen = 48

// ValidateID checks that id can name a job: the attempt's Kubernetes Job is
// called kjobs-<id>-<attempt>, so the id must be a lower-case DNS label of at
// most 48 characters. UUIDs, which the API and PingSources mint, are.
func ValidateID(id string) error {
	if !isLabel(id, maxIDLen) {
		return &FieldError{Field: "id", Detail: fmt.Sprintf("%q is not a job ID: use at most %d lower-case letters, digits and '-', such as a UUID", id, maxIDLen)}
	}
	return nil
}
