package builtin

import (
	"context"
	"errors"
	"fmt"

	"github.com/kjobs/kjobs/processor/function"
)

var fail = function.Func{
	Name: "fail",
	Doc:  `Fails at once with args.message, "failed" by default.`,
	// An empty message would leave the failed attempt unexplained.
	Schema: `{"type": "object", "additionalProperties": false,
		"properties": {"message": {"type": "string", "minLength": 1, "description": "the error message to fail with"}}}`,
	Check: func(args function.Args) error { _, err := failArgs(args); return err },
	Run:   runFail,
}

func failArgs(args function.Args) (string, error) {
	if err := checkNames("fail", args, "message"); err != nil {
		return "", err
	}
	v, ok := args["message"]
	if !ok {
		return "failed", nil
	}
	msg, _ := v.(string)
	if msg == "" {
		return "", fmt.Errorf(`args.message: got %s; want the error message to fail with, or leave it out for "failed"`, show(v))
	}
	return msg, nil
}

func runFail(_ context.Context, env function.Env) (string, error) {
	msg, err := failArgs(env.Args)
	if err != nil {
		return "", err
	}
	return "", errors.New(msg)
}
