package function

import (
	"context"
	"errors"

	"github.com/kjobs/kjobs/internal/job"
)

func init() {
	Register(Func{
		Name:  "fail",
		Doc:   `Fails at once with args.message, "failed" by default.`,
		Check: func(args job.Args) error { _, err := failArgs(args); return err },
		Run:   runFail,
	})
}

func failArgs(args job.Args) (string, error) {
	if err := checkNames("fail", args, "message"); err != nil {
		return "", err
	}
	msg, ok := args["message"]
	switch {
	case !ok:
		return "failed", nil
	case msg == "":
		// An empty message would leave the failed attempt unexplained.
		return "", &job.FieldError{Field: "args.message", Detail: `empty; want the error message to fail with, or leave it out for "failed"`}
	}
	return msg, nil
}

func runFail(_ context.Context, env Env) (string, error) {
	msg, err := failArgs(env.Args)
	if err != nil {
		return "", err
	}
	return "", errors.New(msg)
}
