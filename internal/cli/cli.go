// Package cli is the kjobs command line: every command talks to the kjobs
// HTTP API, prints what it answers as a table, JSON or YAML, and exits
// with a code a script can branch on. The same commands serve the kn
// plugin kn-jobs.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// The exit codes, which `kjobs --help` and the README document.
const (
	// ExitOK is a command that did what it was asked; for run --wait, a
	// job that succeeded.
	ExitOK = 0
	// ExitFailed is a job that failed or was canceled (run --wait), or an
	// API that refused the request (4xx or 5xx).
	ExitFailed = 1
	// ExitUsage is a command line that cannot be run: an unknown command or
	// flag, a missing argument, a malformed key=value.
	ExitUsage = 2
	// ExitUnreachable is an API that could not be reached: connection
	// refused, an unknown host, a timeout.
	ExitUnreachable = 3
)

// PluginName is the name kn finds the plugin by on PATH: `kn jobs` runs
// kn-jobs.
const PluginName = "kn-jobs"

// exitError is an error with the exit code it ends the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a command line that cannot be run.
func usageError(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

// Execute runs the command line args of the binary called name (argv[0]'s
// base name) and returns the process's exit code.
func Execute(name string, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// On Windows kn runs kn-jobs.exe.
	root := newRoot(strings.TrimSuffix(name, ".exe") == PluginName)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "kjobs: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Only cobra's own errors are left: an unknown command or flag, or
	// arguments its validators refused. Every command's RunE returns an
	// exitError (see action).
	return ExitUsage
}

const exitCodesHelp = `Exit codes:
  0  the command succeeded; with run --wait, the job succeeded
  1  the job failed or was canceled (run --wait), or the API refused the request (4xx/5xx)
  2  usage error: unknown command or flag, missing argument, malformed key=value
  3  the API is unreachable: connection refused, unknown host, timeout`

func newRoot(plugin bool) *cobra.Command {
	var g globals
	root := &cobra.Command{
		Use:   "kjobs",
		Short: "Run functions as Kubernetes Jobs through the kjobs API",
		Long: `kjobs runs functions as Kubernetes Jobs through the kjobs HTTP API: run a job
and follow it, list and inspect jobs and their attempts, read an attempt's
log, manage cron schedules and event bindings.

The API is found with --url, else KJOBS_URL, else url in the config file
($KJOBS_CONFIG, default $XDG_CONFIG_HOME/kjobs/config.yaml), else
http://localhost:8080; the bearer token likewise with --token, KJOBS_TOKEN or
token.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if plugin {
		// kn runs kn-jobs as `kn jobs`; the help shows how it was called.
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kn jobs"}
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.url, "url", "", "the API's URL (default: $KJOBS_URL, the config file's url, else "+defaultURL+")")
	pf.StringVar(&g.token, "token", "", "the API's bearer token (default: $KJOBS_TOKEN, else the config file's token)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "print each HTTP request and its answer's status to stderr")

	root.AddCommand(
		runCommand(&g), getCommand(&g), listCommand(&g), cancelCommand(&g), logsCommand(&g), statsCommand(&g),
		scheduleCommand(&g), bindingCommand(&g), versionCommand(),
	)
	return root
}

// globals are the flags every command takes.
type globals struct {
	url, token string
	verbose    bool
}

// action wraps a command's RunE so that every error it returns carries an
// exit code: ExitFailed unless it says otherwise. Execute can then take any
// error without one for cobra's own usage errors.
func action(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		var ee *exitError
		if err == nil || errors.As(err, &ee) {
			return err
		}
		return &exitError{code: ExitFailed, err: err}
	}
}

// exactArgs is cobra.ExactArgs with the argument's name in the error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageError("missing %s", names[len(args)])
		}
		if len(args) > len(names) {
			return usageError("unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// functionArgs checks the arguments of run and schedule create: FUNCTION,
// then its key=value arguments, which parseArgs reads.
func functionArgs(_ *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usageError("missing FUNCTION")
	}
	return nil
}

// showCommand completes cmd, whose Use, Short and Args the caller sets, into
// a command that sends method to the route path makes of its arguments and
// prints the object the API answers: by table, or as JSON or YAML with -o.
func showCommand[T any](g *globals, cmd *cobra.Command, method string, path func(args []string) string, table func(io.Writer, T) error) *cobra.Command {
	var output string
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(output); err != nil {
			return err
		}
		c, err := newClient(*g, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		var v T
		raw, err := c.callInto(cmd.Context(), method, path(args), nil, nil, &v)
		if err != nil {
			return err
		}
		return printAs(cmd.OutOrStdout(), output, raw, func(w io.Writer) error { return table(w, v) })
	})
	addOutput(cmd, &output)
	return cmd
}

// deleteCommand completes cmd, whose Use, Short and Args the caller sets,
// into a command that deletes the object at the route path makes of its
// arguments and prints "KIND ID deleted".
func deleteCommand(g *globals, cmd *cobra.Command, kind string, path func(args []string) string) *cobra.Command {
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		c, err := newClient(*g, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		if _, err := c.call(cmd.Context(), http.MethodDelete, path(args), nil, nil, nil); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s deleted\n", kind, args[0])
		return err
	})
	return cmd
}

// argPath is the route of the object a command's one argument, an ID or a
// NAME, names: prefix, the argument path-escaped, then suffix.
func argPath(prefix, suffix string) func(args []string) string {
	return func(args []string) string { return prefix + url.PathEscape(args[0]) + suffix }
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the CLI's version",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			version, revision := "(unknown)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				version = bi.Main.Version
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						revision = " " + s.Value
					}
				}
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "kjobs %s%s %s\n", version, revision, runtime.Version())
			return err
		}),
	}
}
