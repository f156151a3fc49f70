package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
	"github.com/kjobs/kjobs/internal/store"
)

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := job.DecodeRequest(body)
	if err != nil {
		writeDecodeError(w, r, err)
		return
	}
	if req.Schedule != "" {
		problem.WriteField(w, r, problem.InvalidField, "schedule", "schedule: only a schedule's own ticks set it; create a schedule with POST /jobs/schedule")
		return
	}
	if req.Binding != "" || req.Event != nil {
		// The dispatcher sets them for a bound job's event; a client's
		// would file its job under a binding that did not start it.
		field := "binding"
		if req.Binding == "" {
			field = "event"
		}
		problem.WriteField(w, r, problem.InvalidField, field, field+": only a binding's events set it; create a binding with POST /jobs/bindings")
		return
	}
	if time.Duration(req.Timeout) > s.cfg.JobDeadline {
		problem.WriteField(w, r, problem.InvalidField, "timeout",
			fmt.Sprintf("timeout: %v is longer than this install's job deadline of %v", req.Timeout, s.cfg.JobDeadline))
		return
	}
	if !s.checkFunction(w, r, req.Function, req.Args) {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || strings.IndexFunc(key, func(c rune) bool { return c > unicode.MaxASCII || !unicode.IsPrint(c) }) >= 0 {
		problem.Write(w, r, problem.InvalidHeader, fmt.Sprintf("Idempotency-Key must be at most %d printable ASCII characters", maxIdempotencyKey))
		return
	}

	id := s.cfg.NewID()
	j, created, err := s.cfg.Store.Create(r.Context(), id, req, key)
	if err != nil {
		s.internalError(w, r, "creating a job", err)
		return
	}
	if !created {
		// As the IETF Idempotency-Key draft asks: a key names one request,
		// and reusing it for another is the client's error.
		if j.Function != req.Function || !reflect.DeepEqual(j.Args, argsOf(req)) || j.Timeout != req.Timeout || !maps.Equal(j.Labels, req.Labels) {
			problem.Write(w, r, problem.IdempotencyKeyReused, fmt.Sprintf("Idempotency-Key was first used for job %s, with another function, args, timeout or labels; use a new key for a new request", j.ID))
			return
		}
		w.Header().Set("Location", "/jobs/"+j.ID)
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusAccepted, j)
		return
	}
	if err := s.send(r, id, req); err != nil {
		if !errors.Is(err, event.ErrNotSent) {
			// The Broker may have the event. The job stays, and so does its
			// key: a retry with the key gets this job, and if the event
			// was lost the dispatcher's sweep sends it again.
			s.cfg.Log.Warn("sending a job's event may have failed; keeping the job for the sweep", "job", id, "error", err)
			w.Header().Set("Location", "/jobs/"+j.ID)
			writeJSON(w, http.StatusAccepted, j)
			return
		}
		// Nothing will run the job: take the record back so that the
		// client's retry, with the same Idempotency-Key, starts afresh.
		if aerr := s.cfg.Store.Abandon(context.WithoutCancel(r.Context()), id, key); aerr != nil {
			s.cfg.Log.Error("abandoning a job whose event was not sent", "job", id, "error", aerr)
		}
		s.cfg.Log.Warn("sending a job's event failed", "job", id, "error", err)
		problem.Write(w, r, problem.Unavailable, "the job could not be handed to the broker; nothing was created, retry later")
		return
	}
	w.Header().Set("Location", "/jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, j)
}

// send hands job id's event to the Broker, within the API's own send
// timeout. The send goes on if the client goes away: a send cut halfway
// would leave it unknown whether the job runs.
func (s *Server) send(r *http.Request, id string, req job.Request) error {
	e, err := event.NewRequested(id, req)
	if err != nil {
		return fmt.Errorf("%w: %w", event.ErrNotSent, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.SendTimeout)
	defer cancel()
	return s.cfg.Sender.Send(ctx, e)
}

// argsOf returns req's args as the store keeps them: never nil.
func argsOf(req job.Request) job.Args {
	if req.Args == nil {
		return job.Args{}
	}
	return req.Args
}

// checkFunction answers a request for a function that is not declared or
// cannot run here, or with arguments its schema refuses. It returns false
// when it has answered.
func (s *Server) checkFunction(w http.ResponseWriter, r *http.Request, name string, args job.Args) bool {
	err := s.cfg.Functions.Check(name, args)
	var (
		unknown    *catalog.UnknownError
		unrunnable *catalog.UnrunnableError
		invalid    *catalog.ArgsError
	)
	switch {
	case err == nil:
		return true
	case errors.As(err, &unknown):
		problem.WriteField(w, r, problem.UnknownFunction, "function", err.Error())
	case errors.As(err, &unrunnable):
		problem.WriteField(w, r, problem.FunctionUnavailable, "function", err.Error())
	case errors.As(err, &invalid):
		d := problem.New(problem.InvalidArgs, err.Error())
		// field names the first failing value as the API always has
		// (args.width); the errors member has each, by JSON Pointer.
		d.Field = "args"
		if len(invalid.Errors) > 0 {
			d.Field = strings.ReplaceAll(strings.TrimPrefix(invalid.Errors[0].Pointer, "/"), "/", ".")
		}
		for _, fe := range invalid.Errors {
			d.Errors = append(d.Errors, problem.Error{Detail: fe.Detail, Pointer: "#" + fe.Pointer})
		}
		problem.WriteDetails(w, r, d)
	default:
		s.internalError(w, r, "checking args against their schema", err)
	}
	return false
}

// jobID returns the job ID of the request's path. One that cannot name a
// job is answered 404, as a job that does not exist: it returns false then.
func jobID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if job.ValidateID(id) != nil {
		problem.Write(w, r, problem.NotFound, "no job "+strconv.Quote(id))
		return "", false
	}
	return id, true
}

// noJob answers 404 for job id, which the store does not have.
func noJob(w http.ResponseWriter, r *http.Request, id string) {
	problem.Write(w, r, problem.NotFound, "no job "+strconv.Quote(id)+"; finished jobs are kept for the retention period")
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	if j, ok := s.readJob(w, r); ok {
		writeJSON(w, http.StatusOK, j)
	}
}

// readJob returns the job the request's path names. It returns false when
// it has answered instead: a malformed or unknown ID, or a store error.
func (s *Server) readJob(w http.ResponseWriter, r *http.Request) (job.Job, bool) {
	id, ok := jobID(w, r)
	if !ok {
		return job.Job{}, false
	}
	j, err := s.cfg.Store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		noJob(w, r, id)
		return job.Job{}, false
	}
	if err != nil {
		s.internalError(w, r, "reading a job", err)
		return job.Job{}, false
	}
	return j, true
}

// cancelJob ends a job canceled. The API only records it: a dispatcher
// stops the attempt, so the API needs no access to Jobs.
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	_, err := s.cfg.Store.Cancel(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		noJob(w, r, id)
		return
	case errors.Is(err, store.ErrFinished):
		status := job.Status("ended")
		if st, serr := s.cfg.Store.Status(r.Context(), id); serr == nil {
			status = st
		}
		problem.Write(w, r, problem.JobFinished, fmt.Sprintf("job %s has %s; only a job that has not ended can be canceled", id, status))
		return
	case err != nil:
		s.internalError(w, r, "canceling a job", err)
		return
	}
	j, err := s.cfg.Store.Get(r.Context(), id)
	if err != nil {
		s.internalError(w, r, "reading a job", err)
		return
	}
	w.Header().Set("Location", "/jobs/"+id)
	writeJSON(w, http.StatusAccepted, j)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name := range q {
		if name != "status" && name != "limit" && name != "cursor" && name != "label" && name != "binding" {
			problem.WriteField(w, r, problem.InvalidQuery, name, "unknown query parameter "+strconv.Quote(name)+"; use status, label, binding, limit and cursor")
			return
		}
	}
	opts := store.ListOptions{Cursor: q.Get("cursor"), Binding: q.Get("binding")}
	if q.Has("binding") && !binding.CheckName(opts.Binding) {
		problem.WriteField(w, r, problem.InvalidQuery, "binding", fmt.Sprintf("%q is not a binding name: use at most %d lower-case letters, digits and '-'", opts.Binding, binding.MaxNameLen))
		return
	}
	labels, err := parseLabels(q["label"])
	if err != nil {
		problem.WriteField(w, r, problem.InvalidQuery, "label", err.Error())
		return
	}
	opts.Labels = labels
	if v := q.Get("status"); v != "" {
		st, err := job.ParseStatus(v)
		if err != nil {
			problem.WriteField(w, r, problem.InvalidQuery, "status", err.Error())
			return
		}
		opts.Status = st
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxLimit {
			problem.WriteField(w, r, problem.InvalidQuery, "limit", fmt.Sprintf("limit %q: want a whole number from 1 to %d", v, store.MaxLimit))
			return
		}
		opts.Limit = n
	}
	page, err := s.cfg.Store.List(r.Context(), opts)
	if errors.Is(err, store.ErrBadCursor) {
		problem.WriteField(w, r, problem.InvalidCursor, "cursor", "use the next value of an earlier page, unchanged")
		return
	}
	if err != nil {
		s.internalError(w, r, "listing jobs", err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// parseLabels reads the label=k=v query parameters: every one must match,
// so one key given twice with two values could match nothing and is
// refused as the mistake it must be.
func parseLabels(params []string) (map[string]string, error) {
	if len(params) == 0 {
		return nil, nil
	}
	if len(params) > job.MaxLabels {
		return nil, fmt.Errorf("%d labels, at most %d allowed: a job has no more", len(params), job.MaxLabels)
	}
	labels := make(map[string]string, len(params))
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value, such as label=team=data", p)
		}
		if err := job.CheckLabel(k, v); err != nil {
			return nil, fmt.Errorf("label %q: %w", p, err)
		}
		if prev, dup := labels[k]; dup && prev != v {
			return nil, fmt.Errorf("label %q: %q is given twice; a job has one value per label", p, k)
		}
		labels[k] = v
	}
	return labels, nil
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Store.Stats(r.Context())
	if err != nil {
		s.internalError(w, r, "reading stats", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
