// Command processor is the container of every kjobs Job and the child
// process of the local runner: it runs one registered function with the
// job's arguments, as its environment describes, and exits 0 on success, 1
// on failure and 2 for a request that can never succeed. See package
// github.com/kjobs/kjobs/processor/run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kjobs/kjobs/processor/run"
)

func main() {
	// Kubernetes sends SIGTERM at a Job's deadline and on deletion; the
	// function gets to stop and say so in its termination message.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run.Main(ctx, os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}
