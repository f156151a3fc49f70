// Package function is the public run package of kjobs functions: the main of
// a function's container image calls Main, which reads one attempt from the
// environment every kjobs runner sets, runs the function and reports the
// outcome the way Kubernetes expects of a Job's container, through the exit
// code and the termination message.
//
// A function of one's own lives in a module of its own:
//
//	func main() { function.Main(function.Func{Name: "resize", Check: checkResize, Run: resize}) }
//
// built into an image (ko build), and declared in the kjobs-functions
// ConfigMap with that image and the JSON Schema of its arguments. The
// built-in functions of the kjobs processor image are built on this package
// too (package github.com/kjobs/kjobs/processor/builtin).
package function

import (
	"context"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Exit codes of a function's container.
const (
	// ExitSucceeded is a function that returned a result.
	ExitSucceeded = 0
	// ExitFailed is a function that returned an error or panicked; a retry
	// may succeed.
	ExitFailed = 1
	// ExitInvalid is a request that can never succeed: an unknown function,
	// arguments its Check rejects, or a malformed environment. kjobs does
	// not retry it. It is also the Go runtime's exit code for an
	// unrecovered panic, which is why Main recovers panics into ExitFailed.
	ExitInvalid = 2
)

// MaxMessage is the most bytes of termination message that Kubernetes
// keeps; a longer message is truncated to it.
const MaxMessage = 4096

// Func is one named function that a job can run.
type Func struct {
	// Name is what a job request names in its function field, and what
	// the function is declared as in kjobs-functions.
	Name string
	// Doc says in one sentence what the function does and which arguments
	// it takes.
	Doc string
	// Schema is the JSON Schema of the function's arguments, as JSON. kjobs
	// validates every request against the declared schema before it
	// accepts a job; for the built-in functions the declaration is
	// generated from this field. Optional for a function of one's own,
	// whose schema is declared in kjobs-functions.
	Schema string
	// Check validates arguments without running anything, beyond what a
	// schema can say. Its error is one line that says what to fix; an
	// attempt whose arguments it refuses ends ExitInvalid. Optional.
	Check func(Args) error
	// Run runs the function once. It returns a short result on success; its
	// error is the attempt's failure message. Run stops early, with an
	// error, when ctx is done.
	Run func(ctx context.Context, env Env) (string, error)
}

// Args are a job's arguments: one JSON object. Numbers are json.Number, so
// that no integer loses precision on the way.
type Args map[string]any

// Env is what one attempt of a function is given.
type Env struct {
	JobID string
	// Attempt numbers the job's attempts from 1.
	Attempt int
	// Args have passed the function's Check.
	Args Args
	// Event is the CloudEvent that started the job, or nil when it was not
	// started by an event (a POST /jobs, a schedule's tick).
	Event *event.Event
	// Log writes the attempt's log, already labelled with the job ID,
	// attempt and function.
	Log *slog.Logger
}
