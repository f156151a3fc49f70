package function_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/processor/function"
)

// ExampleLookup checks a request's arguments the way the API does before it
// accepts a job, then runs the function the way the processor does.
func ExampleLookup() {
	if _, ok := function.Lookup("resize"); !ok {
		fmt.Println("resize: unknown function; known:", function.Names())
	}

	sleep, _ := function.Lookup("sleep")
	fmt.Println(sleep.Check(job.Args{"seconds": "-1"}))

	echo, _ := function.Lookup("echo")
	args := job.Args{"size": "10", "color": "blue"}
	if err := echo.Check(args); err != nil {
		fmt.Println(err)
		return
	}
	out, err := echo.Run(context.Background(), function.Env{
		JobID:   "0190c5a4-7b3e-7000-8000-000000000000",
		Attempt: 1,
		Args:    args,
		Log:     slog.New(slog.DiscardHandler),
	})
	fmt.Println(out, err)
	// Output:
	// resize: unknown function; known: [echo fail flaky sample sleep]
	// args.seconds: got "-1", want a number from 0 to 3600
	// {"color":"blue","size":"10"} <nil>
}
