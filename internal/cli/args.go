package cli

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/kjobs/kjobs/internal/job"
)

// parseArgs reads a function's arguments given as key=value: a value that
// is valid JSON (a number, true, an object, a quoted string) is that JSON
// value, any other is the string as written. Numbers stay json.Number, so
// that a large integer reaches the function unchanged.
func parseArgs(pairs []string) (job.Args, error) {
	args := job.Args{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageError("argument %q: want key=value, such as seconds=3 or name=report", p)
		}
		if _, dup := args[k]; dup {
			return nil, usageError("argument %q: %s is given twice", p, k)
		}
		args[k] = parseValue(v)
	}
	return args, nil
}

func parseValue(v string) any {
	if !json.Valid([]byte(v)) {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(v)))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return v
	}
	return out
}

// parseLabels reads --label k=v flags. The API checks keys and values.
func parseLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, usageError("--label %q: want key=value, such as team=data", f)
		}
		labels[k] = v
	}
	return labels, nil
}
