package function

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Main runs the attempt that the process's environment describes, with the
// one of fs that it names, and exits with the outcome's exit code. An image
// of one function passes that one; the built-in processor passes all of
// its own. It never returns.
func Main(fs ...Func) {
	// Kubernetes sends SIGTERM at a Job's deadline and on deletion; the
	// function gets to stop and say so in its termination message.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := Run(ctx, os.Getenv, os.Stderr, fs...)
	stop()
	os.Exit(code)
}

// Run is Main without the process: it reads the environment through
// getenv, logs JSON lines to stderr, writes the function's result or error
// to the termination log and returns the exit code. ctx is the attempt's
// lifetime. Tests call it; Main wires it to the process.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, fs ...Func) int {
	cfg, err := loadConfig(getenv)
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With(
		"jobId", cfg.JobID, "attempt", cfg.Attempt, "function", cfg.Function)
	finish := func(code int, msg string) int {
		writeTerminationLog(log, cfg.TerminationLog, msg)
		return code
	}
	invalid := func(msg string) int {
		log.Error("request can never succeed", "error", msg)
		return finish(ExitInvalid, msg)
	}
	if err != nil {
		return invalid(err.Error())
	}
	i := slices.IndexFunc(fs, func(f Func) bool { return f.Name == cfg.Function })
	if i < 0 || fs[i].Run == nil {
		names := make([]string, 0, len(fs))
		for _, f := range fs {
			names = append(names, f.Name)
		}
		slices.Sort(names)
		return invalid(fmt.Sprintf("unknown function %q; this image has: %s", cfg.Function, strings.Join(names, ", ")))
	}
	f := fs[i]
	if f.Check != nil {
		if err := f.Check(cfg.Args); err != nil {
			return invalid(fmt.Sprintf("invalid arguments for %s: %v", f.Name, err))
		}
	}

	log.Info("starting function", "args", cfg.Args)
	result, err := call(ctx, f, Env{JobID: cfg.JobID, Attempt: cfg.Attempt, Args: cfg.Args, Event: cfg.Event, Log: log})
	if err != nil {
		log.Error("function failed", "error", err.Error())
		return finish(ExitFailed, err.Error())
	}
	log.Info("function succeeded", "result", result)
	return finish(ExitSucceeded, result)
}

// call runs f, turning a panic into an error: left alone, a panic would exit
// with ExitInvalid and the job would never be retried.
func call(ctx context.Context, f Func, env Env) (result string, err error) {
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
