package builtin

import (
	"context"
	"fmt"
	"time"

	"github.com/kjobs/kjobs/processor/function"
)

// maxSleep keeps a sleep within the default attempt deadline.
const maxSleep = 3600

var sleep = function.Func{
	Name: "sleep",
	Doc:  "Sleeps for args.seconds (0 to 3600, decimals allowed), then succeeds.",
	// seconds may be a string too, as args were once; the pattern holds
	// such a string to the same range.
	Schema: `{"type": "object", "additionalProperties": false, "required": ["seconds"], "properties": {
		"seconds": {"type": ["number", "string"], "minimum": 0, "maximum": 3600,
			"pattern": "^(([0-9]{1,3}|[0-2][0-9]{3}|3[0-5][0-9]{2})(\\.[0-9]+)?|3600(\\.0+)?)$"}}}`,
	Check: func(args function.Args) error { _, err := sleepArgs(args); return err },
	Run:   runSleep,
}

func sleepArgs(args function.Args) (time.Duration, error) {
	if err := checkNames("sleep", args, "seconds"); err != nil {
		return 0, err
	}
	if _, ok := args["seconds"]; !ok {
		return 0, fmt.Errorf("args.seconds: missing; want a number from 0 to %d", maxSleep)
	}
	s, err := number(args, "seconds", 0, 0, maxSleep)
	return seconds(s), err
}

func runSleep(ctx context.Context, env function.Env) (string, error) {
	d, err := sleepArgs(env.Args)
	if err != nil {
		return "", err
	}
	start := time.Now()
	if err := pause(ctx, d); err != nil {
		return "", fmt.Errorf("interrupted after %s of %s: %w", time.Since(start).Round(time.Millisecond), d, err)
	}
	return fmt.Sprintf("slept %s", d), nil
}
