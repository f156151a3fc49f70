package cli

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
)

func scheduleCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "schedule",
		Aliases: []string{"schedules"},
		Short:   "Create, list, pause, resume and delete cron schedules",
	}
	list := showCommand(g, &cobra.Command{
		Use:   "list",
		Short: "List the schedules",
		Args:  exactArgs(),
	}, http.MethodGet, func([]string) string { return "/jobs/schedule" }, func(w io.Writer, list scheduleList) error {
		row(w, "ID", "NAME", "CRON", "TIMEZONE", "FUNCTION", "PAUSED", "NEXT RUN")
		for _, sc := range list.Schedules {
			next := "-"
			if len(sc.NextRuns) > 0 {
				next = timestamp(sc.NextRuns[0])
			}
			row(w, sc.ID, sc.Name, sc.Cron, orDash(sc.Timezone), sc.Function, sc.Paused, next)
		}
		return nil
	})
	// get, pause and resume each show the schedule the API answers.
	show := func(use, short, method, suffix string) *cobra.Command {
		return showCommand(g, &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  exactArgs("ID"),
		}, method, argPath("/jobs/schedule/", suffix), scheduleTable)
	}
	del := deleteCommand(g, &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a schedule; the jobs it started stay",
		Args:  exactArgs("ID"),
	}, "schedule", argPath("/jobs/schedule/", ""))
	cmd.AddCommand(scheduleCreateCommand(g), list,
		show("get", "Show a schedule and its next runs", http.MethodGet, ""),
		show("pause", "Pause a schedule: its ticks start no job until it is resumed", http.MethodPost, "/pause"),
		show("resume", "Resume a paused schedule", http.MethodPost, "/resume"),
		del)
	return cmd
}

// scheduleRequest is the body of POST /jobs/schedule.
type scheduleRequest struct {
	Name     string   `json:"name,omitempty"`
	Cron     string   `json:"cron"`
	Timezone string   `json:"timezone,omitempty"`
	Function string   `json:"function"`
	Args     job.Args `json:"args,omitempty"`
}

func scheduleCreateCommand(g *globals) *cobra.Command {
	var (
		req    scheduleRequest
		output string
	)
	cmd := &cobra.Command{
		Use:   "create --cron EXPR [--tz ZONE] [--name NAME] FUNCTION [key=value ...]",
		Short: "Create a schedule that runs a function on a cron schedule",
		Long: `Create a schedule: a job of FUNCTION with the key=value arguments (read as
by run) at every tick of --cron, in --tz (an IANA zone; UTC by default).
--cron takes 5 fields, an optional leading seconds field, or @daily-style
descriptors.`,
		Example: `  kjobs schedule create --cron '0 7 * * MON' --tz Asia/Ho_Chi_Minh sleep seconds=1`,
		Args:    functionArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if req.Cron == "" {
				return usageError("--cron is required, such as --cron '*/5 * * * *'")
			}
			fargs, err := parseArgs(args[1:])
			if err != nil {
				return err
			}
			req.Function, req.Args = args[0], fargs
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var sc schedule.Schedule
			raw, err := c.callInto(cmd.Context(), http.MethodPost, "/jobs/schedule", nil, req, &sc)
			if err != nil {
				return err
			}
			return printAs(cmd.OutOrStdout(), output, raw, func(w io.Writer) error { return scheduleTable(w, sc) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Cron, "cron", "", "the cron expression (required)")
	f.StringVar(&req.Timezone, "tz", "", "the IANA timezone of the cron expression, such as Europe/Paris (default UTC)")
	f.StringVar(&req.Name, "name", "", "a name to show (default: the function's)")
	addOutput(cmd, &output)
	return cmd
}

// scheduleTable shows one schedule.
func scheduleTable(w io.Writer, sc schedule.Schedule) error {
	row(w, "ID:", sc.ID)
	row(w, "Name:", sc.Name)
	row(w, "Cron:", sc.Cron)
	row(w, "Timezone:", orDash(sc.Timezone))
	row(w, "Function:", sc.Function)
	row(w, "Args:", compactJSON(sc.Args))
	row(w, "Paused:", sc.Paused)
	if sc.Skipped > 0 {
		row(w, "Skipped:", fmt.Sprintf("%d ticks while paused", sc.Skipped))
	}
	row(w, "Created:", timestamp(sc.CreatedAt))
	runs := make([]string, len(sc.NextRuns))
	for i, t := range sc.NextRuns {
		runs[i] = timestamp(t)
	}
	row(w, "Next runs:", orDash(strings.Join(runs, ", ")))
	return nil
}

// scheduleList is the answer of GET /jobs/schedule.
type scheduleList struct {
	Schedules []schedule.Schedule `json:"schedules"`
}
