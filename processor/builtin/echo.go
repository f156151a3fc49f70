package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/kjobs/kjobs/processor/function"
)

var echo = function.Func{
	Name: "echo",
	Doc:  "Succeeds with its arguments as compact JSON, keys sorted; for a job an event started, with the event too: {\"args\": ..., \"event\": ...}.",
	// Every argument is echoed, so every object is accepted.
	Schema: `{"type": "object"}`,
	Run:    runEcho,
}

func runEcho(_ context.Context, env function.Env) (string, error) {
	var args any = env.Args
	if env.Args == nil {
		args = function.Args{} // "{}" rather than "null"
	}
	if env.Event != nil {
		// What a bound job's function was given, for a look with GET
		// /jobs/<id>: the event in CloudEvents JSON.
		args = struct {
			Args  any `json:"args"`
			Event any `json:"event"`
		}{args, env.Event}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Keep <, > and & readable: the result is a message, not HTML.
	enc.SetEscapeHTML(false)
	// encoding/json writes map keys sorted.
	if err := enc.Encode(args); err != nil {
		return "", fmt.Errorf("encoding the arguments: %w", err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
