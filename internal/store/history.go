package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
)

// HistoryMinutes is how many minutes History returns: the last hour.
const HistoryMinutes = 60

// minuteKeep is how long a minute's counts are kept: twice what History
// reads, so that a clock a little ahead on one replica loses nothing.
const minuteKeep = 2 * time.Hour

// History returns how many jobs succeeded and failed in each of the last
// HistoryMinutes minutes, oldest first, the current minute last; a minute
// without an ended job counts zeros. It reads one small hash per minute in
// one round trip.
func (s *Store) History(ctx context.Context) ([]job.Minute, error) {
	last := s.now().Unix() / 60
	first := last - HistoryMinutes + 1
	cmds := make([]*redis.SliceCmd, HistoryMinutes)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.HMGet(ctx, minuteKey(first+int64(i)), string(job.Succeeded), string(job.Failed))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store.History: %w", err)
	}
	minutes := make([]job.Minute, HistoryMinutes)
	for i, cmd := range cmds {
		v := cmd.Val()
		n := func(j int) int64 {
			str, _ := v[j].(string)
			x, _ := strconv.ParseInt(str, 10, 64)
			return x
		}
		minutes[i] = job.Minute{At: time.Unix((first+int64(i))*60, 0).UTC(), Succeeded: n(0), Failed: n(1)}
	}
	return minutes, nil
}
