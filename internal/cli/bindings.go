package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// bindingView is the part of a binding (binding.Binding) the tables show.
// binding.Binding is not imported: its filters are Knative Eventing's API
// types, which would link much of Knative into the CLI.
type bindingView struct {
	Name      string            `json:"name"`
	Filter    map[string]string `json:"filter"`
	Filters   json.RawMessage   `json:"filters"`
	Function  string            `json:"function"`
	Args      json.RawMessage   `json:"args"`
	CreatedAt time.Time         `json:"createdAt"`
}

// filterText shows a binding's filters on one line.
func (b bindingView) filterText() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(b.Filter)) {
		parts = append(parts, k+"="+b.Filter[k])
	}
	if len(b.Filters) > 0 && string(b.Filters) != "null" {
		parts = append(parts, "filters: "+string(b.Filters))
	}
	return orDash(strings.Join(parts, " "))
}

func bindingCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "binding",
		Aliases: []string{"bindings"},
		Short:   "List, show and delete event bindings (create them with POST /jobs/bindings)",
	}
	cmd.AddCommand(bindingListCommand(g), bindingGetCommand(g), bindingDeleteCommand(g))
	return cmd
}

func bindingListCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the bindings",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var list struct {
				Bindings []bindingView `json:"bindings"`
			}
			raw, err := c.callInto(cmd.Context(), http.MethodGet, "/jobs/bindings", nil, nil, &list)
			if err != nil {
				return err
			}
			return printAs(cmd.OutOrStdout(), output, raw, func(w io.Writer) error {
				row(w, "NAME", "FUNCTION", "FILTER", "CREATED")
				for _, b := range list.Bindings {
					row(w, b.Name, b.Function, b.filterText(), timestamp(b.CreatedAt))
				}
				return nil
			})
		}),
	}
	addOutput(cmd, &output)
	return cmd
}

func bindingGetCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a binding",
		Args:  exactArgs("NAME"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var b bindingView
			raw, err := c.callInto(cmd.Context(), http.MethodGet, "/jobs/bindings/"+url.PathEscape(args[0]), nil, nil, &b)
			if err != nil {
				return err
			}
			return printAs(cmd.OutOrStdout(), output, raw, func(w io.Writer) error {
				row(w, "Name:", b.Name)
				row(w, "Function:", b.Function)
				args := "{}"
				if len(b.Args) > 0 {
					args = string(b.Args)
				}
				row(w, "Args:", args)
				row(w, "Filter:", b.filterText())
				row(w, "Created:", timestamp(b.CreatedAt))
				return nil
			})
		}),
	}
	addOutput(cmd, &output)
	return cmd
}

func bindingDeleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a binding; the jobs it started stay",
		Args:  exactArgs("NAME"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := newClient(*g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if _, err := c.call(cmd.Context(), http.MethodDelete, "/jobs/bindings/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "binding %s deleted\n", args[0])
			return err
		}),
	}
}
