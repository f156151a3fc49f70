package dispatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner/local"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// BenchmarkRecord measures what recording one job's attempt costs Redis:
// Record of the attempt running, then of its success, as the reconciler
// calls it for every Job it sees start and end, both counted in the
// metrics. Besides the time per job, it reports the Redis commands per job
// and the server's time spent on them, from INFO commandstats, where a
// command that is not needed shows.
func BenchmarkRecord(b *testing.B) {
	rdb := testenv.Redis(b)
	st := store.New(rdb, store.Options{})
	r := local.New(local.Config{Processor: processor, Dir: b.TempDir()})
	b.Cleanup(r.Close)
	d := New(st, r, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()

	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", i)
		if _, _, err := st.Create(ctx, ids[i], job.Request{Function: "sleep"}, ""); err != nil {
			b.Fatal(err)
		}
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i, id := range ids {
		started := time.Now()
		a := job.Attempt{Attempt: 1, Job: fmt.Sprintf("kjobs-%d-1", i), StartedAt: started, Outcome: job.OutcomeRunning}
		if err := d.Record(ctx, id, a); err != nil {
			b.Fatal(err)
		}
		finished := time.Now()
		a.FinishedAt, a.Outcome = &finished, job.OutcomeSucceeded
		if err := d.Record(ctx, id, a); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	calls, usec, byCommand := commandStats(b, rdb)
	b.ReportMetric(float64(calls)/float64(b.N), "redis-cmds/job")
	b.ReportMetric(float64(usec)/float64(b.N), "redis-µs/job")
	for cmd, n := range byCommand {
		b.ReportMetric(float64(n)/float64(b.N), cmd+"/job")
	}
}

// commandStats sums INFO commandstats' calls and microseconds, leaving out
// the CONFIG RESETSTAT and INFO around them, and returns the calls by
// command too. Redis counts the commands a script calls as well as the
// EVALSHA that runs it.
func commandStats(b *testing.B, rdb *redis.Client) (calls, usec int64, byCommand map[string]int64) {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	byCommand = map[string]int64{}
	for line := range strings.Lines(info) {
		// cmdstat_evalsha:calls=2,usec=41,usec_per_call=20.50,...
		name, stats, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "cmdstat_")), ":")
		if !ok || name == "info" || name == "config|resetstat" || strings.HasPrefix(name, "#") {
			continue
		}
		for field := range strings.SplitSeq(stats, ",") {
			key, value, _ := strings.Cut(field, "=")
			n, _ := strconv.ParseInt(value, 10, 64)
			switch key {
			case "calls":
				calls += n
				byCommand[name] += n
			case "usec":
				usec += n
			}
		}
	}
	return calls, usec, byCommand
}
