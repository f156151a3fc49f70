package function_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kjobs/kjobs/processor/function"
)

// ExampleRun runs the function a job names, as Main does in a container,
// with the environment a kjobs runner sets.
func ExampleRun() {
	greet := function.Func{
		Name: "greet",
		Check: func(args function.Args) error {
			if _, ok := args["name"].(string); !ok {
				return fmt.Errorf("args.name: want a string")
			}
			return nil
		},
		Run: func(_ context.Context, env function.Env) (string, error) {
			return fmt.Sprintf("hello, %s (attempt %d)", env.Args["name"], env.Attempt), nil
		},
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	termLog := filepath.Join(dir, "termination-log")
	for _, args := range []string{`{"name":"kjobs"}`, `{"name":1}`} {
		env := map[string]string{
			function.EnvFunction:       "greet",
			function.EnvArgs:           args,
			function.EnvJobID:          "0190c5a4-7b3e-7000-8000-000000000000",
			function.EnvAttempt:        "1",
			function.EnvTerminationLog: termLog,
		}
		code := function.Run(context.Background(), func(k string) string { return env[k] }, io.Discard, greet)
		msg, _ := os.ReadFile(termLog)
		fmt.Println(code, string(msg))
	}
	// Output:
	// 0 hello, kjobs (attempt 1)
	// 2 invalid arguments for greet: args.name: want a string
}
