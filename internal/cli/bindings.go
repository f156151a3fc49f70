package cli

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
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

// bindingList is the answer of GET /jobs/bindings.
type bindingList struct {
	Bindings []bindingView `json:"bindings"`
}

func bindingCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "binding",
		Aliases: []string{"bindings"},
		Short:   "List, show and delete event bindings (create them with POST /jobs/bindings)",
	}
	list := showCommand(g, &cobra.Command{
		Use:   "list",
		Short: "List the bindings",
		Args:  exactArgs(),
	}, http.MethodGet, func([]string) string { return "/jobs/bindings" }, func(w io.Writer, list bindingList) error {
		row(w, "NAME", "FUNCTION", "FILTER", "CREATED")
		for _, b := range list.Bindings {
			row(w, b.Name, b.Function, b.filterText(), timestamp(b.CreatedAt))
		}
		return nil
	})
	get := showCommand(g, &cobra.Command{
		Use:   "get NAME",
		Short: "Show a binding",
		Args:  exactArgs("NAME"),
	}, http.MethodGet, argPath("/jobs/bindings/", ""), func(w io.Writer, b bindingView) error {
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
	del := deleteCommand(g, &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a binding; the jobs it started stay",
		Args:  exactArgs("NAME"),
	}, "binding", argPath("/jobs/bindings/", ""))
	cmd.AddCommand(list, get, del)
	return cmd
}
