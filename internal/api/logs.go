package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
	"github.com/kjobs/kjobs/internal/runner"
)

// followSlack is how much longer than the job deadline a followed log may
// stream: an attempt's deadline counts from its start, which may come a
// moment after the request, once its pod is scheduled.
const followSlack = time.Minute

// jobLogs answers GET /jobs/{id}/logs: the output of one attempt of a job,
// by default its latest, as text; with follow=true, streamed as it is
// written until the attempt ends. Which attempts exist is the job record's
// say: an attempt it has whose output the runner no longer has is 410.
func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request) {
	attempt, follow, ok := logParams(w, r)
	if !ok {
		return
	}
	j, ok := s.readJob(w, r)
	if !ok {
		return
	}
	id := j.ID
	a, ok := pickAttempt(w, r, j, attempt)
	if !ok {
		return
	}
	if s.cfg.Logs == nil {
		problem.Write(w, r, problem.LogGone, "this install keeps no logs")
		return
	}

	ctx := r.Context()
	rc := http.NewResponseController(w)
	if follow {
		// The server's write timeout suits answers that are written at
		// once; a followed log is written for as long as the attempt runs,
		// which the job deadline bounds.
		until := time.Now().Add(s.cfg.JobDeadline + followSlack)
		if err := rc.SetWriteDeadline(until); err != nil {
			s.cfg.Log.Warn("a followed log may be cut by the server's write timeout", "error", err)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, until)
		defer cancel()
	}
	log, err := s.cfg.Logs.Open(ctx, id, a, follow)
	switch {
	case errors.Is(err, runner.ErrLogGone):
		problem.Write(w, r, problem.LogGone, fmt.Sprintf("the output of attempt %d of job %s is no longer kept", a, id))
		return
	case errors.Is(err, runner.ErrNotFound):
		// The record has the attempt, so it was started: a runner that
		// does not know it, such as a local runner started since, has not
		// kept its output.
		problem.Write(w, r, problem.LogGone, fmt.Sprintf("the output of attempt %d of job %s is not kept by this install's runner, which may have restarted since", a, id))
		return
	case err != nil && r.Context().Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !isConnError(err):
		// The runner could not give the log, but it is not lost: a kubelet
		// the apiserver cannot reach (as under kwok) or a pod not yet
		// scheduled to a node. The error may name nodes' addresses, so it
		// is logged and not answered.
		s.cfg.Log.Warn("reading an attempt's log", "job", id, "attempt", a, "error", err)
		problem.Write(w, r, problem.LogUnavailable, fmt.Sprintf("the output of attempt %d of job %s could not be read from where it runs; the error is logged", a, id))
		return
	case err != nil:
		s.internalError(w, r, "opening an attempt's log", err)
		return
	}
	defer log.Close()

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if !follow {
		if _, err := io.Copy(w, log); err != nil {
			s.cfg.Log.Warn("writing an attempt's log", "job", id, "attempt", a, "error", err)
		}
		return
	}
	// The status goes out at once, so that a client following a quiet
	// attempt knows the log is coming; then each read as it comes.
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := log.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client went away
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			if r.Context().Err() == nil {
				// The status is sent: the log just ends here.
				s.cfg.Log.Warn("following an attempt's log", "job", id, "attempt", a, "error", err)
			}
			return
		}
	}
}

// logParams reads the query of GET /jobs/{id}/logs: attempt, a positive
// number or 0 for the latest, and follow. It returns false when it has
// answered a bad one.
func logParams(w http.ResponseWriter, r *http.Request) (attempt int, follow, ok bool) {
	q := r.URL.Query()
	for name := range q {
		if name != "attempt" && name != "follow" {
			problem.WriteField(w, r, problem.InvalidParameter, name, "unknown query parameter "+strconv.Quote(name)+"; use attempt and follow")
			return 0, false, false
		}
	}
	if q.Has("attempt") {
		v := q.Get("attempt")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			problem.WriteField(w, r, problem.InvalidParameter, "attempt", fmt.Sprintf("attempt %q: want an attempt number, a whole number from 1", v))
			return 0, false, false
		}
		attempt = n
	}
	switch v := q.Get("follow"); v {
	case "", "false":
	case "true":
		follow = true
	default:
		problem.WriteField(w, r, problem.InvalidParameter, "follow", fmt.Sprintf("follow %q: want true or false", v))
		return 0, false, false
	}
	return attempt, follow, true
}

// pickAttempt returns the number of j's attempt n, or of its latest when n
// is 0. It returns false when it has answered that j has no such attempt.
func pickAttempt(w http.ResponseWriter, r *http.Request, j job.Job, n int) (int, bool) {
	latest := 0
	for _, a := range j.Attempts {
		if a.Attempt == n && n > 0 {
			return n, true
		}
		latest = max(latest, a.Attempt)
	}
	switch {
	case latest == 0:
		problem.Write(w, r, problem.NotFound, fmt.Sprintf("job %s has no attempt yet; it is %s", j.ID, j.Status))
	case n == 0:
		return latest, true
	default:
		problem.WriteField(w, r, problem.NotFound, "attempt", fmt.Sprintf("job %s has no attempt %d; its latest is %d", j.ID, n, latest))
	}
	return 0, false
}
