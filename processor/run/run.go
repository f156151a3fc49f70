// Package run is the processor's logic: it reads one attempt from the
// environment, runs the named function and reports the outcome the way
// Kubernetes expects of a Job's container, through the exit code and the
// termination message. The processor's main only wires it to the process.
package run

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/kjobs/kjobs/processor/function"
)

// Exit codes of the processor.
const (
	// ExitSucceeded is a function that returned a result.
	ExitSucceeded = 0
	// ExitFailed is a function that returned an error or panicked; a retry
	// may succeed.
	ExitFailed = 1
	// ExitInvalid is a request that can never succeed: an unknown function,
	// arguments its Check rejects, or a malformed environment. Retrying it
	// is pointless. It is also the Go runtime's exit code for an unrecovered
	// panic, which is why Main recovers panics into ExitFailed.
	ExitInvalid = 2
)

// MaxMessage is the most bytes of termination message that Kubernetes
// keeps; a longer message is truncated to it.
const MaxMessage = 4096

// Main runs the attempt that the environment, read through getenv,
// describes. It logs JSON lines to stderr, writes the function's result or
// error to the termination log and returns the exit code. ctx is the
// attempt's lifetime: the processor cancels it on SIGTERM.
func Main(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	cfg, err := loadConfig(getenv)
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With(
		"jobId", cfg.JobID, "attempt", cfg.Attempt, "function", cfg.Function)
	finish := func(code int, msg string) int {
		writeTerminationLog(log, cfg.TerminationLog, msg)
		return code
	}
	if err != nil {
		log.Error("request can never succeed", "error", err.Error())
		return finish(ExitInvalid, err.Error())
	}
	f, ok := function.Lookup(cfg.Function)
	if !ok {
		msg := fmt.Sprintf("unknown function %q; known functions: %s", cfg.Function, strings.Join(function.Names(), ", "))
		log.Error("request can never succeed", "error", msg)
		return finish(ExitInvalid, msg)
	}
	if err := f.Check(cfg.Args); err != nil {
		msg := fmt.Sprintf("invalid arguments for %s: %v", f.Name, err)
		log.Error("request can never succeed", "error", msg)
		return finish(ExitInvalid, msg)
	}

	log.Info("starting function", "args", cfg.Args)
	result, err := call(ctx, f, function.Env{JobID: cfg.JobID, Attempt: cfg.Attempt, Args: cfg.Args, Log: log})
	if err != nil {
		log.Error("function failed", "error", err.Error())
		return finish(ExitFailed, err.Error())
	}
	log.Info("function succeeded", "result", result)
	return finish(ExitSucceeded, result)
}

// call runs f, turning a panic into an error: left alone, a panic would exit
// with ExitInvalid and the job would never be retried.
func call(ctx context.Context, f function.Func, env function.Env) (result string, err error) {
	defer func() {
		if p := recover(); p != nil {
			env.Log.Error("function panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			result, err = "", fmt.Errorf("panic: %v", p)
		}
	}()
	return f.Run(ctx, env)
}

// writeTerminationLog writes msg, truncated, to path. A failure is only
// logged: the exit code already says how the attempt ended, and a lost
// message must not turn a success into a failure.
func writeTerminationLog(log *slog.Logger, path, msg string) {
	if err := os.WriteFile(path, []byte(truncate(msg, MaxMessage)), 0o644); err != nil {
		log.Warn("writing the termination message", "path", path, "error", err.Error())
	}
}

// truncate returns s cut to at most limit bytes at a rune boundary, ending in
// an ellipsis when cut, so that the message stays valid UTF-8 and a reader
// sees that something is missing.
func truncate(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	const ellipsis = "…"
	cut := limit - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
