// Package function is the processor's function registry: the named Go
// functions a job can run. Each function lives in one small file that
// registers it from init, so adding a function never touches the others.
//
// The API calls Lookup and Check before it accepts a job, so that a request
// for an unknown function or with wrong arguments is answered 400 at once
// instead of failing in a Job later.
package function

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/kjobs/kjobs/internal/job"
)

// Func is one named function that a job can run.
type Func struct {
	// Name is what a job request names in its function field.
	Name string
	// Doc says in one sentence what the function does and which arguments
	// it takes.
	Doc string
	// Check validates arguments without running anything. Its error is one
	// line that says what to fix, fit for an HTTP 400 detail.
	Check func(job.Args) error
	// Run runs the function once. It returns a short result on success; its
	// error is the attempt's failure message. Run stops early, with an
	// error, when ctx is done.
	Run func(ctx context.Context, env Env) (string, error)
}

// Env is what one attempt of a function is given.
type Env struct {
	JobID string
	// Attempt numbers the job's attempts from 1.
	Attempt int
	// Args have passed the function's Check.
	Args job.Args
	// Log writes the attempt's log, already labelled with the job ID,
	// attempt and function.
	Log *slog.Logger
}

var (
	mu       sync.RWMutex
	registry = map[string]Func{}
)

// Register adds f to the registry. It is meant to be called from the init
// function of the file that defines f, and panics on a name that is taken or
// that a job request could not name, or on a missing Check or Run, because
// each is a programming error that must stop the binary from starting.
func Register(f Func) {
	if err := (job.Request{Function: f.Name}).Validate(); err != nil {
		panic(fmt.Sprintf("function.Register: %v", err))
	}
	if f.Check == nil || f.Run == nil {
		panic(fmt.Sprintf("function.Register: %s has no Check or no Run", f.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, ok := registry[f.Name]; ok {
		panic(fmt.Sprintf("function.Register: %s is registered twice", f.Name))
	}
	registry[f.Name] = f
}

// Lookup returns the function registered under name.
func Lookup(name string) (Func, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names returns the names of every registered function, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
