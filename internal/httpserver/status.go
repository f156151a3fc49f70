package httpserver

import "net/http"

// StatusRecorder is a ResponseWriter that remembers the status code written
// through it, for metrics by status code.
type StatusRecorder struct {
	http.ResponseWriter
	// Code is the status written, or 200 when the handler wrote none.
	Code int
}

// NewStatusRecorder wraps w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w, Code: http.StatusOK}
}

// WriteHeader records code and writes it.
func (r *StatusRecorder) WriteHeader(code int) {
	r.Code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap returns the wrapped ResponseWriter, so that an
// http.ResponseController reaches its Flush and SetWriteDeadline.
func (r *StatusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
