// Command seed stores n jobs through the kjobs store: queued, for the
// benchmark of GET /jobs/stats with many jobs stored, or with -finish run
// through one attempt to success, as most of a store's records are and with
// the dispatcher's calls, to measure what a job costs Redis in memory and
// in time (redis-cli info commandstats).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/store"
)

func main() {
	n := flag.Int("n", 1000, "jobs to store")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", "Redis URL")
	finish := flag.Bool("finish", false, "run each job's one attempt to success through the dispatcher's store calls")
	flag.Parse()
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		log.Fatal(err)
	}
	opts.PoolSize = 64
	s := store.New(redis.NewClient(opts), store.Options{})
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range ids {
				if err := seed(s, fmt.Sprintf("seed-%09d", i), *finish); err != nil {
					log.Fatal(err)
				}
			}
		})
	}
	for i := range *n {
		ids <- i
	}
	close(ids)
	wg.Wait()
}

// seed stores job id as POST /jobs would, with a sleep function's args,
// and with finish runs its attempt to success through the calls the
// dispatcher makes: the create of the delivered event (a no-op), taking a
// slot, the start and the success.
func seed(s *store.Store, id string, finish bool) error {
	ctx := context.Background()
	req := job.Request{Function: "sleep", Args: job.Args{"seconds": "1"}}
	if _, _, err := s.Create(ctx, id, req, ""); err != nil || !finish {
		return err
	}
	if _, _, err := s.Create(ctx, id, req, ""); err != nil {
		return err
	}
	if _, err := s.Acquire(ctx, id); err != nil {
		return err
	}
	started := time.Now().UTC()
	a := job.Attempt{Attempt: 1, Job: runner.Name(id, 1), StartedAt: started, Outcome: job.OutcomeRunning}
	if _, err := s.Start(ctx, id, a); err != nil {
		return err
	}
	ended := started.Add(time.Second)
	a.FinishedAt, a.Outcome = &ended, job.OutcomeSucceeded
	_, err := s.Finish(ctx, id, a)
	return err
}
