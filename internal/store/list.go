package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
)

// ListOptions select a page of jobs.
type ListOptions struct {
	// Status keeps only jobs in that status; empty keeps every job.
	Status job.Status
	// Limit is the page size. Defaults to 20; at most MaxLimit.
	Limit int
	// Cursor continues after the last job of an earlier page: the Next of
	// that page.
	Cursor string
}

// MaxLimit caps a page.
const MaxLimit = 200

// Page is one page of jobs, newest first.
type Page struct {
	Jobs []job.Job `json:"jobs"`
	// Next is the cursor of the following page; empty on the last page.
	Next string `json:"next,omitempty"`
}

var memberPattern = regexp.MustCompile(`^[0-9]{13}:[a-z0-9-]{1,48}$`)

// List returns jobs newest first. The cursor is an exact position in the
// index, so pages neither repeat nor skip jobs created meanwhile.
func (s *Store) List(ctx context.Context, opts ListOptions) (Page, error) {
	if opts.Limit <= 0 {
		opts.Limit = 20
	}
	if opts.Limit > MaxLimit {
		opts.Limit = MaxLimit
	}
	key := indexKey()
	if opts.Status != "" {
		key = statusKey(opts.Status)
	}
	start := "+"
	if opts.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(opts.Cursor)
		if err != nil || !memberPattern.Match(after) {
			return Page{}, fmt.Errorf("store.List: %w", ErrBadCursor)
		}
		start = "(" + string(after)
	}
	members, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: key, Start: start, Stop: "-", ByLex: true, Rev: true, Count: int64(opts.Limit) + 1,
	}).Result()
	if err != nil {
		return Page{}, fmt.Errorf("store.List: %w", err)
	}
	var page Page
	if len(members) > opts.Limit {
		members = members[:opts.Limit]
		page.Next = base64.RawURLEncoding.EncodeToString([]byte(members[len(members)-1]))
	}
	if page.Jobs, err = s.records(ctx, members); err != nil {
		return Page{}, fmt.Errorf("store.List: %w", err)
	}
	return page, nil
}

// records reads the jobs of index members in one round trip, in their
// order. A job whose record expired since it was indexed is left out; the
// next create trims its entry.
func (s *Store) records(ctx context.Context, members []string) ([]job.Job, error) {
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			p.HGetAll(ctx, jobKey(memberID(m)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	jobs := make([]job.Job, 0, len(members))
	for _, c := range cmds {
		fields := c.(*redis.MapStringStringCmd).Val()
		if len(fields) == 0 {
			continue
		}
		j, err := decodeJob(fields)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}
