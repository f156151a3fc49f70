// Package problem writes RFC 9457 problem details (application/problem+json)
// with a stable type URI per kind of error, so that clients can branch on
// the type and people can read the detail.
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// typeBase prefixes every problem type. The URIs identify kinds of error;
// they need not resolve.
const typeBase = "https://kjobs.dev/problems/"

// Kind is one kind of error: its type, title and HTTP status never change.
type Kind struct {
	Slug   string
	Title  string
	Status int
}

// The kinds of error the API answers with.
var (
	MalformedJSON        = Kind{"malformed-json", "The request body is not valid JSON", http.StatusBadRequest}
	InvalidField         = Kind{"invalid-field", "A field of the request is invalid", http.StatusBadRequest}
	UnknownFunction      = Kind{"unknown-function", "No such function", http.StatusBadRequest}
	InvalidArgs          = Kind{"invalid-args", "The function's arguments are invalid", http.StatusBadRequest}
	FunctionUnavailable  = Kind{"function-unavailable", "The function cannot run in this install", http.StatusBadRequest}
	InvalidCron          = Kind{"invalid-cron", "The cron schedule is invalid", http.StatusBadRequest}
	InvalidTimezone      = Kind{"invalid-timezone", "The timezone is unknown", http.StatusBadRequest}
	InvalidFilter        = Kind{"invalid-filter", "The event filter is invalid", http.StatusBadRequest}
	InvalidQuery         = Kind{"invalid-query", "A query parameter is invalid", http.StatusBadRequest}
	InvalidCursor        = Kind{"invalid-cursor", "The cursor is not one this API issued", http.StatusBadRequest}
	InvalidHeader        = Kind{"invalid-header", "A request header is invalid", http.StatusBadRequest}
	InvalidParameter     = Kind{"invalid-parameter", "A parameter of the request is invalid", http.StatusBadRequest}
	IdempotencyKeyReused = Kind{"idempotency-key-reused", "The Idempotency-Key was used for another request", http.StatusUnprocessableEntity}
	AlreadyExists        = Kind{"already-exists", "The name is taken", http.StatusConflict}
	JobFinished          = Kind{"job-finished", "The job has ended", http.StatusConflict}
	Unauthorized         = Kind{"unauthorized", "A valid bearer token is required", http.StatusUnauthorized}
	NotFound             = Kind{"not-found", "Not found", http.StatusNotFound}
	MethodNotAllowed     = Kind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	LogGone              = Kind{"log-gone", "The attempt's log is no longer kept", http.StatusGone}
	LogUnavailable       = Kind{"log-unavailable", "The attempt's log could not be read", http.StatusBadGateway}
	BodyTooLarge         = Kind{"body-too-large", "The request body is too large", http.StatusRequestEntityTooLarge}
	UnsupportedMediaType = Kind{"unsupported-media-type", "The request body must be JSON", http.StatusUnsupportedMediaType}
	Unavailable          = Kind{"unavailable", "The service cannot take the request now", http.StatusServiceUnavailable}
	Internal             = Kind{"internal", "Internal error", http.StatusInternalServerError}
)

// Details is an RFC 9457 problem document.
type Details struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the request field at fault, where there is one.
	Field string `json:"field,omitempty"`
	// Errors lists each fault of a request that has several, such as args
	// that fail their schema in more than one place.
	Errors []Error `json:"errors,omitempty"`
}

// Error is one fault of a request, in the shape of RFC 9457's example
// "errors" member.
type Error struct {
	Detail string `json:"detail"`
	// Pointer is a JSON Pointer, as a URI fragment, to the faulty value in
	// the request body, such as "#/args/width".
	Pointer string `json:"pointer"`
}

// Type is the kind's type URI.
func (k Kind) Type() string { return typeBase + k.Slug }

// New returns the problem document of kind k with detail.
func New(k Kind, detail string) Details {
	return Details{Type: k.Type(), Title: k.Title, Status: k.Status, Detail: detail}
}

// Write answers r with a problem of kind k. detail says what to fix.
func Write(w http.ResponseWriter, r *http.Request, k Kind, detail string) {
	WriteDetails(w, r, New(k, detail))
}

// WriteField answers r with a problem of kind k about one request field.
func WriteField(w http.ResponseWriter, r *http.Request, k Kind, field, detail string) {
	d := New(k, detail)
	d.Field = field
	WriteDetails(w, r, d)
}

// WriteDetails answers r with d.
func WriteDetails(w http.ResponseWriter, r *http.Request, d Details) {
	if d.Instance == "" {
		d.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_ = json.NewEncoder(w).Encode(d)
}
