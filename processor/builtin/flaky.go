package builtin

import (
	"context"
	"fmt"
	"math"

	"github.com/kjobs/kjobs/processor/function"
)

var flaky = function.Func{
	Name: "flaky",
	Doc:  "Fails its first args.failures attempts (1 by default) and succeeds after, to show retries.",
	// A string of digits is accepted too: args were strings once.
	Schema: `{"type": "object", "additionalProperties": false,
		"properties": {"failures": {"type": ["integer", "string"], "minimum": 0, "pattern": "^[0-9]+$"}}}`,
	Check: func(args function.Args) error { _, err := flakyArgs(args); return err },
	Run:   runFlaky,
}

func flakyArgs(args function.Args) (int, error) {
	if err := checkNames("flaky", args, "failures"); err != nil {
		return 0, err
	}
	return wholeNumber(args, "failures", 1, 0, math.MaxInt)
}

func runFlaky(_ context.Context, env function.Env) (string, error) {
	failures, err := flakyArgs(env.Args)
	if err != nil {
		return "", err
	}
	if env.Attempt <= failures {
		return "", fmt.Errorf("attempt %d failed on purpose (failures=%d)", env.Attempt, failures)
	}
	return fmt.Sprintf("attempt %d succeeded (failures=%d)", env.Attempt, failures), nil
}
