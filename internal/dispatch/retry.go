package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kjobs/kjobs/internal/store"
)

// permanentError is an error that retrying cannot cure.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// transient reports whether err may go away by itself: Redis or the API
// server unreachable, slow or restarting. A request the API server refuses
// for what it is (invalid, forbidden, or a configuration error of ours)
// stays refused.
func transient(err error) bool {
	var p permanentError
	switch {
	case errors.As(err, &p), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, store.ErrTransition), errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrScheduleDeleted):
		return false
	case apierrors.IsInvalid(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsBadRequest(err):
		return false
	}
	return true
}

// retry runs step until it succeeds, fails for good, ctx ends or the
// dispatcher's transient budget is spent, backing off from 100 ms to 5 s,
// and returns step's last error.
// A delivery's own hiccups are thus retried here rather than answered 503
// at once, which would use up one of the job's retries at the Broker.
func (d *Dispatcher) retry(ctx context.Context, log *slog.Logger, what string, step func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d.transient)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		err := step()
		if err == nil || !transient(err) {
			return err
		}
		log.Warn("retrying "+what, "error", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
