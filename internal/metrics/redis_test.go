package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/metrics"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestRedis counts the commands a real redis-server refuses, or that cannot
// reach it, by command, and not a missing key or a script's first run.
func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testenv.RedisServer(t)
	reg := prometheus.NewRegistry()
	c := metrics.Register(reg)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer rdb.Close()
	rdb.AddHook(c.Redis())

	if err := rdb.Get(ctx, "missing").Err(); err != redis.Nil {
		t.Fatalf("GET missing: %v, want redis.Nil", err)
	}
	// Run sends EVALSHA, which the server answers NOSCRIPT, then EVAL.
	if err := redis.NewScript(`return 1`).Run(ctx, rdb, nil).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, "word", "not a number", 0)
	if err := rdb.Incr(ctx, "word").Err(); err == nil {
		t.Fatal("INCR of a word succeeded")
	}
	p := rdb.Pipeline()
	p.Incr(ctx, "word")
	p.Get(ctx, "missing")
	p.Incr(ctx, "counter")
	_, _ = p.Exec(ctx)
	// A server that does not answer: every command fails.
	unreachable := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), MaxRetries: -1})
	defer unreachable.Close()
	unreachable.AddHook(c.Redis())
	_ = unreachable.Ping(ctx).Err()

	want := `
# HELP kjobs_redis_errors_total Redis commands that failed (a connection error, a timeout or an error reply), by command.
# TYPE kjobs_redis_errors_total counter
kjobs_redis_errors_total{op="incr"} 2
kjobs_redis_errors_total{op="ping"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kjobs_redis_errors_total"); err != nil {
		t.Error(err)
	}
}
