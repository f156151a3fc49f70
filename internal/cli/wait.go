package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/kjobs/kjobs/internal/job"
)

// How follow polls: the API has no watch route, so the job is read again,
// often at first, since most jobs are short, and less often as it runs on.
const (
	pollFirst = 200 * time.Millisecond
	pollMax   = 2 * time.Second
	// outage is how long the API may stay unreachable, or answer 5xx,
	// while a job is followed: a restarting API does not end the wait.
	outage = 30 * time.Second
	// spinEvery redraws the spinner on a terminal.
	spinEvery = 100 * time.Millisecond
)

var spinner = []rune{'|', '/', '-', '\\'}

// follow polls job id until it ends, printing to out a line as each
// attempt starts and as it ends; on a terminal (tty) the current line
// shows a spinner, the job's status and the time elapsed. It returns the
// job as last read, and the API's answer as it came.
func follow(ctx context.Context, c *client, id string, out io.Writer, tty bool) (job.Job, []byte, error) {
	start := time.Now()
	started, ended := map[int]bool{}, map[int]bool{}
	poll := time.NewTimer(0)
	defer poll.Stop()
	var spin <-chan time.Time
	if tty {
		t := time.NewTicker(spinEvery)
		defer t.Stop()
		spin = t.C
	}
	clearLine := func() {
		if tty {
			fmt.Fprint(out, "\r\x1b[K")
		}
	}
	var (
		j         job.Job
		frame     int
		delay     = pollFirst
		failSince time.Time
	)
	for {
		select {
		case <-ctx.Done():
			clearLine()
			return j, nil, &exitError{code: ExitFailed, err: fmt.Errorf("stopped following job %s, which goes on: see kjobs get %s", id, id)}
		case <-spin:
			status := j.Status
			if status == "" {
				status = job.Queued
			}
			fmt.Fprintf(out, "\r%c %s %v\x1b[K", spinner[frame%len(spinner)], status, time.Since(start).Round(100*time.Millisecond))
			frame++
			continue
		case <-poll.C:
		}

		var next job.Job
		raw, err := c.callInto(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id), nil, nil, &next)
		switch {
		case err == nil:
			failSince = time.Time{}
			j = next
		case ctx.Err() != nil:
			continue // the next select ends the wait
		case transient(err):
			if failSince.IsZero() {
				failSince = time.Now()
			}
			if time.Since(failSince) < outage {
				poll.Reset(pollMax)
				continue
			}
			clearLine()
			return j, nil, err
		default:
			clearLine()
			return j, nil, err
		}

		var lines []string
		for _, a := range j.Attempts {
			if !started[a.Attempt] {
				started[a.Attempt] = true
				lines = append(lines, fmt.Sprintf("attempt %d  %s  started", a.Attempt, a.Job))
			}
			if a.Outcome != job.OutcomeRunning && a.FinishedAt != nil && !ended[a.Attempt] {
				ended[a.Attempt] = true
				line := fmt.Sprintf("attempt %d  %s  %s after %v", a.Attempt, a.Job, a.Outcome, a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond))
				if a.Reason != "" {
					line += " (" + a.Reason + ")"
				}
				if a.Message != "" {
					line += ": " + oneLine(a.Message)
				}
				lines = append(lines, line)
			}
		}
		if len(lines) > 0 || j.Status.Terminal() {
			clearLine()
		}
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
		if j.Status.Terminal() {
			fmt.Fprintf(out, "job %s %s after %v\n", j.ID, j.Status, time.Since(start).Round(100*time.Millisecond))
			return j, raw, nil
		}
		delay = min(delay*3/2, pollMax)
		poll.Reset(delay)
	}
}

// transient reports whether err may pass if the request is sent again: an
// unreachable API, or one that answered 5xx.
func transient(err error) bool {
	var ee *exitError
	if errors.As(err, &ee) && ee.code == ExitUnreachable {
		return true
	}
	var ae *apiError
	return errors.As(err, &ae) && ae.status >= 500
}
