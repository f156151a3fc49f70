package dispatch

import (
	"context"
	"time"

	"github.com/kjobs/kjobs/internal/runner/kube"
	"github.com/kjobs/kjobs/internal/store"
)

// CapsFor returns the caps that an install cap (KJOBS_MAX_RUNNING, 0 for
// none) and the functions ConfigMap's data set together. A malformed entry
// is reported and leaves its function uncapped; the others apply.
func CapsFor(install int, functions map[string]string) (store.Caps, error) {
	def, fns, err := kube.MaxRunning(functions)
	return store.Caps{Install: install, Default: def, Functions: fns}, err
}

// PutCaps puts caps in force for every replica, retrying Redis with
// backoff until it answers or ctx is done.
func (d *Dispatcher) PutCaps(ctx context.Context, caps store.Caps) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := d.store.SetCaps(ctx, caps)
		if err == nil {
			d.log.Info("concurrency caps in force", "install", caps.Install, "default", caps.Default, "functions", caps.Functions)
			return
		}
		d.log.Warn("putting the concurrency caps in force failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
