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
	Doc:  "Succeeds with its arguments as compact JSON, keys sorted.",
	// Every argument is echoed, so every object is accepted.
	Schema: `{"type": "object"}`,
	Run:    runEcho,
}

func runEcho(_ context.Context, env function.Env) (string, error) {
	args := env.Args
	if args == nil {
		args = function.Args{} // "{}" rather than "null"
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
