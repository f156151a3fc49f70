// Command kjobs serves the real kjobs API handler for BENCHMARKS.md: the
// same api.New, store and Redis scripts as the local stack and the cluster,
// with POST /jobs handing events off to an in-process queue as the local
// stack's broker does. The queue is drained without running jobs, so the
// benchmark measures accepting jobs, not running thousands of processes.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/httpserver"
	localschedule "github.com/kjobs/kjobs/internal/schedule/local"
	"github.com/kjobs/kjobs/internal/store"
)

// queue is the hand-off of the local stack's broker: a buffered channel.
type queue chan cloudevents.Event

func (q queue) Send(_ context.Context, e cloudevents.Event) error {
	q <- e
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", "Redis URL")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here until SIGINT")
	maxRunning := flag.Int("max-running", 0, "an install cap to put in force (0: none); no job ends here, so every job past it waits")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		log.Fatal(err)
	}
	st := store.New(redis.NewClient(opts), store.Options{})
	if err := st.SetCaps(ctx, store.Caps{Install: *maxRunning}); err != nil {
		log.Fatal(err)
	}
	q := make(queue, 10000)
	go func() {
		for range q {
		}
	}()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := api.New(api.Config{
		Store:     st,
		Sender:    q,
		Schedules: localschedule.New(q),
		Log:       logger,
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if err := httpserver.New(h, httpserver.Timeouts{}, logger).Serve(ctx, l); err != nil {
		log.Fatal(err)
	}
}
