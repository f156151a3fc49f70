package builtin

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/kjobs/kjobs/processor/function"
)

var sample = function.Func{
	Name: "sample",
	Doc: "Processes a batch like the classic demo processor: args.steps items (1 to 1000, default 10), " +
		"args.stepSeconds each (0 to 60, default 0.5), each failing with args.failureChance (0 to 1, default 0).",
	// Each number may be a string too, as args were once; the patterns
	// hold such a string to the same range.
	Schema: `{"type": "object", "additionalProperties": false, "properties": {
		"steps": {"type": ["integer", "string"], "minimum": 1, "maximum": 1000, "pattern": "^([1-9][0-9]{0,2}|1000)$"},
		"stepSeconds": {"type": ["number", "string"], "minimum": 0, "maximum": 60, "pattern": "^([0-5]?[0-9](\\.[0-9]+)?|60(\\.0+)?)$"},
		"failureChance": {"type": ["number", "string"], "minimum": 0, "maximum": 1, "pattern": "^(0(\\.[0-9]+)?|1(\\.0+)?)$"}}}`,
	Check: func(args function.Args) error { _, err := sampleArgs(args); return err },
	Run:   runSample,
}

type sampleParams struct {
	steps         int
	stepSeconds   float64
	failureChance float64
}

func sampleArgs(args function.Args) (sampleParams, error) {
	var p sampleParams
	if err := checkNames("sample", args, "steps", "stepSeconds", "failureChance"); err != nil {
		return p, err
	}
	var err error
	if p.steps, err = wholeNumber(args, "steps", 10, 1, 1000); err != nil {
		return p, err
	}
	if p.stepSeconds, err = number(args, "stepSeconds", 0.5, 0, 60); err != nil {
		return p, err
	}
	p.failureChance, err = number(args, "failureChance", 0, 0, 1)
	return p, err
}

func runSample(ctx context.Context, env function.Env) (string, error) {
	p, err := sampleArgs(env.Args)
	if err != nil {
		return "", err
	}
	for step := 1; step <= p.steps; step++ {
		if err := pause(ctx, seconds(p.stepSeconds)); err != nil {
			return "", fmt.Errorf("interrupted at step %d of %d: %w", step, p.steps, err)
		}
		// rand.Float64 is in [0, 1): a chance of 0 never fails, 1 always does.
		if rand.Float64() < p.failureChance {
			return "", fmt.Errorf("step %d of %d failed (failureChance=%g)", step, p.steps, p.failureChance)
		}
		env.Log.Info("processed item", "step", step, "steps", p.steps)
	}
	return fmt.Sprintf("processed %d items", p.steps), nil
}
