// Command seed stores n queued jobs through the kjobs store, for the
// benchmark of GET /jobs/stats with many jobs stored.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

func main() {
	n := flag.Int("n", 1000, "jobs to store")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", "Redis URL")
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
				if _, _, err := s.Create(context.Background(), fmt.Sprintf("seed-%09d", i), job.Request{Function: "echo"}, ""); err != nil {
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
