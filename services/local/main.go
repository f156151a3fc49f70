// Command local runs the whole kjobs pipeline in one process, with no
// cluster: the API, in-process delivery with the Triggers' retry policy,
// the dispatcher and a runner of the processor binary. `make run` starts it.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/kjobs/kjobs/internal/stack"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var cfg stack.Config
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(2)
	}
	if err := stack.Run(ctx, cfg, stack.Listeners{}, log); err != nil {
		log.Error("kjobs stopped", "error", err)
		os.Exit(1)
	}
}
