package function

import (
	"context"
	"fmt"
	"time"

	"github.com/kjobs/kjobs/internal/job"
)

// maxSleep keeps a sleep within the default attempt deadline.
const maxSleep = 3600

func init() {
	Register(Func{
		Name:  "sleep",
		Doc:   "Sleeps for args.seconds (0 to 3600, decimals allowed), then succeeds.",
		Check: func(args job.Args) error { _, err := sleepArgs(args); return err },
		Run:   runSleep,
	})
}

func sleepArgs(args job.Args) (time.Duration, error) {
	if err := checkNames("sleep", args, "seconds"); err != nil {
		return 0, err
	}
	if _, ok := args["seconds"]; !ok {
		return 0, &job.FieldError{Field: "args.seconds", Detail: fmt.Sprintf("missing; want a number from 0 to %d", maxSleep)}
	}
	s, err := number(args, "seconds", 0, 0, maxSleep)
	return seconds(s), err
}

func runSleep(ctx context.Context, env Env) (string, error) {
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
