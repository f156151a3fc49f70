package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
)

// sweepPage bounds how many index entries one Stale call reads per status.
const sweepPage = 500

// Stale returns up to limit jobs whose event may have been lost: queued
// with no attempt and created before now-age, or retrying or running and
// unchanged since before now-age. (A running job is stale only if its
// attempt has nothing running it, which the caller checks in the cluster.) A Broker whose channel is not durable loses the
// events it holds when it restarts, and a dispatcher that was down when the
// Broker retried or dead-lettered leaves a job retrying that no delivery
// will ever move again; re-sending such a job's event with the same ID
// ends it, since every step keyed by the ID is idempotent.
func (s *Store) Stale(ctx context.Context, age time.Duration, limit int) ([]job.Job, error) {
	before := s.now().Add(-age)
	// Queued jobs sort by creation time, so the old ones come first and the
	// range stops at the bound.
	queued, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: statusKey(job.Queued), ByLex: true, Start: "-", Stop: "(" + member(before, ""), Count: sweepPage,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("store.Stale: %w", err)
	}
	// Retrying and running jobs sort by creation too, not by when they last
	// moved: read a page of each and look at each one's updatedAt.
	members := queued
	for _, st := range []job.Status{job.Retrying, job.Running} {
		page, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: statusKey(st), ByLex: true, Start: "-", Stop: "(" + member(before, ""), Count: sweepPage,
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("store.Stale: %w", err)
		}
		members = append(members, page...)
	}
	admitted, err := s.admittedBefore(ctx, before)
	if err != nil {
		return nil, fmt.Errorf("store.Stale: %w", err)
	}
	members = append(members, admitted...)
	jobs, err := s.records(ctx, members)
	if err != nil {
		return nil, fmt.Errorf("store.Stale: %w", err)
	}
	var stale []job.Job
	for _, j := range jobs {
		if len(stale) == limit {
			break
		}
		switch {
		case j.Status == job.Queued && len(j.Attempts) == 0:
		case j.Status == job.Waiting: // admitted, by admittedBefore
		case j.Status != job.Queued && j.UpdatedAt.Before(before):
		default:
			continue
		}
		stale = append(stale, j)
	}
	return stale, nil
}

// admittedBefore returns the index members of waiting jobs that were
// admitted to a slot before before and have not started since: their
// hand-off was lost with a dispatcher that took it and died. A waiting job
// without a slot is not stale, however long it waits.
func (s *Store) admittedBefore(ctx context.Context, before time.Time) ([]string, error) {
	waiting, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: statusKey(job.Waiting), ByLex: true, Start: "-", Stop: "+", Count: sweepPage,
	}).Result()
	if err != nil || len(waiting) == 0 {
		return nil, err
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range waiting {
			p.HMGet(ctx, jobKey(memberID(m)), "slot", "updatedAt")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var admitted []string
	for i, c := range cmds {
		v := c.(*redis.SliceCmd).Val()
		slot, _ := v[0].(string)
		updated, _ := v[1].(string)
		at, _ := strconv.ParseInt(updated, 10, 64)
		if slot == "1" && at < before.UnixMilli() {
			admitted = append(admitted, waiting[i])
		}
	}
	return admitted, nil
}

// Claim reports whether this caller may re-send job id's event: true for
// the first caller within d, false for every other.
func (s *Store) Claim(ctx context.Context, id string, d time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, sweepKey(id), strconv.FormatInt(s.now().UnixMilli(), 10), d).Result()
	if err != nil {
		return false, fmt.Errorf("store.Claim: %w", err)
	}
	return ok, nil
}
