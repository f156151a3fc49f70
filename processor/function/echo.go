package function

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/kjobs/kjobs/internal/job"
)

func init() {
	Register(Func{
		Name: "echo",
		Doc:  "Succeeds with its arguments as compact JSON, keys sorted.",
		// Every argument is echoed, so every name is accepted.
		Check: func(job.Args) error { return nil },
		Run:   runEcho,
	})
}

func runEcho(_ context.Context, env Env) (string, error) {
	args := env.Args
	if args == nil {
		args = job.Args{} // "{}" rather than "null"
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
