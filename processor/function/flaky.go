package function

import (
	"context"
	"fmt"
	"math"

	"github.com/kjobs/kjobs/internal/job"
)

func init() {
	Register(Func{
		Name:  "flaky",
		Doc:   "Fails its first args.failures attempts (1 by default) and succeeds after, to show retries.",
		Check: func(args job.Args) error { _, err := flakyArgs(args); return err },
		Run:   runFlaky,
	})
}

func flakyArgs(args job.Args) (int, error) {
	if err := checkNames("flaky", args, "failures"); err != nil {
		return 0, err
	}
	return wholeNumber(args, "failures", 1, 0, math.MaxInt)
}

func runFlaky(_ context.Context, env Env) (string, error) {
	failures, err := flakyArgs(env.Args)
	if err != nil {
		return "", err
	}
	if env.Attempt <= failures {
		return "", fmt.Errorf("attempt %d failed on purpose (failures=%d)", env.Attempt, failures)
	}
	return fmt.Sprintf("attempt %d succeeded (failures=%d)", env.Attempt, failures), nil
}
