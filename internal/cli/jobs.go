package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kjobs/kjobs/internal/job"
)

func runCommand(g *globals) *cobra.Command {
	var (
		wait           bool
		timeout        time.Duration
		labels         []string
		idempotencyKey string
		output         string
	)
	cmd := &cobra.Command{
		Use:   "run FUNCTION [key=value ...]",
		Short: "Run a function as a job and print its ID; with --wait, follow it to its end",
		Long: `Run a function as a job. Each key=value is one of its arguments: a value
that is valid JSON (3, true, {"w":1}, "quoted") is that JSON value, any other
is a string. The job's ID is printed.

With --wait, the job is followed to its end: a line as each attempt starts
and ends, and the exit code is the job's outcome (0 succeeded, 1 failed or
canceled).`,
		Example: `  kjobs run sleep seconds=3 --wait
  kjobs run echo name=report size='{"w":640}' --label team=data`,
		Args: functionArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			fargs, err := parseArgs(args[1:])
			if err != nil {
				return err
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if timeout < 0 {
				return usageError("--timeout %v: want a positive duration", timeout)
			}
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			req := job.Request{Function: args[0], Args: fargs, Timeout: job.Duration(timeout), Labels: lbls}
			var header http.Header
			if idempotencyKey != "" {
				header = http.Header{"Idempotency-Key": {idempotencyKey}}
			}
			data, err := c.call(cmd.Context(), http.MethodPost, "/jobs", nil, req, header)
			if err != nil {
				return err
			}
			var j job.Job
			if err := decode(data, &j); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !wait {
				return printAs(out, output, data, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, j.ID)
					return err
				})
			}
			// With -o json or yaml stdout is for the job's record alone.
			progress := out
			if output != "table" {
				progress = cmd.ErrOrStderr()
			} else {
				fmt.Fprintln(out, j.ID)
			}
			final, raw, err := follow(cmd.Context(), c, j.ID, progress, isTerminal(progress))
			if err != nil {
				return err
			}
			if output != "table" {
				if err := printAs(out, output, raw, nil); err != nil {
					return err
				}
			}
			if final.Status != job.Succeeded {
				msg := fmt.Sprintf("job %s %s", final.ID, final.Status)
				if final.Error != "" {
					msg += ": " + final.Error
				}
				return &exitError{code: ExitFailed, err: fmt.Errorf("%s", msg)}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&wait, "wait", "w", false, "follow the job to its end and exit with its outcome")
	f.DurationVar(&timeout, "timeout", 0, "bound on each attempt, such as 30s (default: the install's job deadline)")
	f.StringArrayVarP(&labels, "label", "l", nil, "a label k=v for the job, its Job and pod (repeatable)")
	f.StringVar(&idempotencyKey, "idempotency-key", "", "a key that makes a repeated run return the first job")
	addOutput(cmd, &output)
	return cmd
}

// isTerminal reports whether w is a terminal, where progress is redrawn in
// place rather than printed line by line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// decode reads an API answer into out.
func decode(data []byte, out any) error {
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the API's answer is not what this CLI expects: %w", err)
	}
	return nil
}

func getCommand(g *globals) *cobra.Command {
	return showCommand(g, &cobra.Command{
		Use:   "get ID",
		Short: "Show a job and its attempts",
		Args:  exactArgs("ID"),
	}, http.MethodGet, argPath("/jobs/", ""), jobTable)
}

// jobTable shows a job's fields, then its attempts as a table.
func jobTable(w io.Writer, j job.Job) error {
	row(w, "ID:", j.ID)
	row(w, "Function:", j.Function)
	row(w, "Args:", compactJSON(j.Args))
	row(w, "Status:", j.Status)
	if j.Timeout > 0 {
		row(w, "Timeout:", j.Timeout)
	}
	if len(j.Labels) > 0 {
		row(w, "Labels:", compactJSON(j.Labels))
	}
	if j.Schedule != "" {
		row(w, "Schedule:", j.Schedule)
	}
	if j.Binding != "" {
		row(w, "Binding:", j.Binding)
	}
	if j.Event != nil {
		row(w, "Event:", j.Event.Type+" "+j.Event.Source+" "+j.Event.ID)
	}
	row(w, "Created:", timestamp(j.CreatedAt))
	row(w, "Updated:", timestamp(j.UpdatedAt))
	if j.Error != "" {
		row(w, "Error:", oneLine(j.Error))
	}
	fmt.Fprintln(w)
	if len(j.Attempts) == 0 {
		_, err := fmt.Fprintln(w, "No attempt yet.")
		return err
	}
	row(w, "ATTEMPT", "JOB", "STARTED", "DURATION", "OUTCOME", "EXIT", "MESSAGE")
	for _, a := range j.Attempts {
		duration, exit := "-", "-"
		if a.FinishedAt != nil {
			duration = a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond).String()
		}
		if a.ExitCode != nil {
			exit = strconv.Itoa(*a.ExitCode)
		}
		msg := a.Message
		if a.Reason != "" {
			msg = a.Reason + ": " + msg
		}
		row(w, a.Attempt, a.Job, timestamp(a.StartedAt), duration, a.Outcome, exit, oneLine(msg))
	}
	return nil
}

// jobPage is the answer of GET /jobs, store.Page, which is not imported so
// that the CLI does not link the Redis client.
type jobPage struct {
	Jobs []job.Job `json:"jobs"`
	Next string    `json:"next,omitempty"`
}

func listCommand(g *globals) *cobra.Command {
	var (
		status, cursor, output string
		limit                  int
		labels                 []string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Long: `List jobs, newest first, a page at a time. When there are more, the command
to show the next page is printed to stderr: next: --cursor X.`,
		Example: `  kjobs list --status failed --limit 50
  kjobs list --label team=data`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if _, err := parseLabels(labels); err != nil {
				return err
			}
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			if limit != 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			for _, l := range labels {
				q.Add("label", l)
			}
			var page jobPage
			raw, err := c.callInto(cmd.Context(), http.MethodGet, "/jobs", q, nil, &page)
			if err != nil {
				return err
			}
			err = printAs(cmd.OutOrStdout(), output, raw, func(w io.Writer) error {
				row(w, "ID", "FUNCTION", "STATUS", "ATTEMPTS", "CREATED", "LABELS")
				for _, j := range page.Jobs {
					lbls := "-"
					if len(j.Labels) > 0 {
						lbls = compactJSON(j.Labels)
					}
					row(w, j.ID, j.Function, j.Status, len(j.Attempts), timestamp(j.CreatedAt), lbls)
				}
				return nil
			})
			if err == nil && output == "table" && page.Next != "" {
				// On stderr, so that stdout stays the table alone.
				fmt.Fprintf(cmd.ErrOrStderr(), "next: --cursor %s\n", page.Next)
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only jobs with this status: "+strings.Join(statusNames(), ", "))
	f.IntVar(&limit, "limit", 0, "at most this many jobs (the API's default if 0)")
	f.StringVar(&cursor, "cursor", "", "the page after this cursor, printed by the previous page")
	f.StringArrayVarP(&labels, "label", "l", nil, "only jobs with the label k=v (repeatable; all must match)")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(statusNames(), cobra.ShellCompDirectiveNoFileComp))
	addOutput(cmd, &output)
	return cmd
}

// statusNames are the job statuses, for --status's help and completion.
func statusNames() []string {
	names := make([]string, len(job.Statuses))
	for i, s := range job.Statuses {
		names[i] = string(s)
	}
	return names
}

func cancelCommand(g *globals) *cobra.Command {
	return showCommand(g, &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job that has not ended; its running attempt is stopped",
		Args:  exactArgs("ID"),
	}, http.MethodPost, argPath("/jobs/", "/cancel"), func(w io.Writer, j job.Job) error {
		_, err := fmt.Fprintf(w, "job %s %s\n", j.ID, j.Status)
		return err
	})
}

func logsCommand(g *globals) *cobra.Command {
	var (
		attempt int
		follow  bool
	)
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print an attempt's output (its pod's log in a cluster)",
		Long: `Print the output of one attempt of a job, stdout and stderr interleaved: the
latest attempt unless --attempt says which. With -f the output streams until
the attempt ends.`,
		Args: exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if attempt < 0 {
				return usageError("--attempt %d: want 1 or more", attempt)
			}
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			q := url.Values{}
			if attempt > 0 {
				q.Set("attempt", strconv.Itoa(attempt))
			}
			if follow {
				q.Set("follow", "true")
			}
			resp, err := c.do(cmd.Context(), http.MethodGet, "/jobs/"+url.PathEscape(args[0])+"/logs", q, nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil && cmd.Context().Err() == nil {
				return &exitError{code: ExitUnreachable, err: fmt.Errorf("reading the log: %w", err)}
			}
			return nil
		}),
	}
	cmd.Flags().IntVar(&attempt, "attempt", 0, "the attempt to show, from 1 (default: the latest)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the output until the attempt ends")
	return cmd
}

func statsCommand(g *globals) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
		output   string
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show the job counters; with --watch, refresh them",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if interval <= 0 {
				return usageError("--interval %v: want a positive duration", interval)
			}
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !watch {
				_, err := showStats(cmd.Context(), c, out, output)
				return err
			}
			return watchStats(cmd.Context(), c, out, output, interval, isTerminal(out))
		}),
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh the counters every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch refreshes")
	addOutput(cmd, &output)
	return cmd
}

// showStats prints the counters once and returns how many lines it
// printed.
func showStats(ctx context.Context, c *client, out io.Writer, output string) (int, error) {
	var st job.Stats
	raw, err := c.callInto(ctx, http.MethodGet, "/jobs/stats", nil, nil, &st)
	if err != nil {
		return 0, err
	}
	var buf countingWriter
	err = printAs(&buf, output, raw, func(w io.Writer) error {
		for _, r := range []struct {
			name string
			n    int64
		}{
			{"succeeded", st.Succeeded}, {"failed", st.Failed}, {"canceled", st.Canceled}, {"retries", st.Retries},
			{"queued", st.Queued}, {"waiting", st.Waiting}, {"running", st.Running}, {"retrying", st.Retrying},
		} {
			row(w, r.name, r.n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	_, err = out.Write(buf.b)
	return buf.lines, err
}

// watchStats prints the counters every interval until ctx ends. On a
// terminal each block is drawn over the last one; elsewhere, such as a log
// file, blocks follow one another, a table headed by its time, JSON or
// YAML as one document per interval.
func watchStats(ctx context.Context, c *client, out io.Writer, output string, interval time.Duration, tty bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	drawn := 0
	for {
		if tty && drawn > 0 {
			// Up to the block's first line, and clear from there down.
			fmt.Fprintf(out, "\x1b[%dA\x1b[J", drawn)
		}
		// JSON and YAML blocks stay documents a program can read: a stream
		// of JSON values, or of YAML documents.
		header := 0
		switch output {
		case "table":
			fmt.Fprintf(out, "%s\n", time.Now().UTC().Format(time.RFC3339))
			header = 1
		case "yaml":
			fmt.Fprintln(out, "---")
			header = 1
		}
		n, err := showStats(ctx, c, out, output)
		if ctx.Err() != nil {
			return nil // interrupted: the watch is done
		}
		if err != nil {
			return err
		}
		drawn = n + header
		if !tty && output == "table" {
			fmt.Fprintln(out)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// countingWriter keeps what is written and counts its lines, which a
// redraw moves the cursor up by.
type countingWriter struct {
	b     []byte
	lines int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	for _, c := range p {
		if c == '\n' {
			w.lines++
		}
	}
	return len(p), nil
}
