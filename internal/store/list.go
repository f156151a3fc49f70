package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
)

// ListOptions select a page of jobs.
type ListOptions struct {
	// Status keeps only jobs in that status; empty keeps every job.
	Status job.Status
	// Labels keeps only jobs with every one of these labels.
	Labels map[string]string
	// Binding keeps only jobs that this binding's events started.
	Binding string
	// Limit is the page size. Defaults to 20; at most MaxLimit.
	Limit int
	// Cursor continues after the last job of an earlier page: the Next of
	// that page.
	Cursor string
}

// MaxLimit caps a page.
const MaxLimit = 200

// maxScan bounds how many index entries one filtered List reads; see List.
const maxScan = 1000

// Page is one page of jobs, newest first.
type Page struct {
	Jobs []job.Job `json:"jobs"`
	// Next is the cursor of the following page; empty on the last page.
	Next string `json:"next,omitempty"`
}

var memberPattern = regexp.MustCompile(`^[0-9]{13}:[a-z0-9-]{1,48}$`)

// List returns jobs newest first. The cursor is an exact position in the
// index, so pages neither repeat nor skip jobs created meanwhile.
//
// With a binding, List walks the ZSET of the binding's jobs; with labels
// and no binding, the ZSET of one label, the first in key order. Other
// labels, and a status with labels or a binding, filter the records it reads:
// Redis keeps no index of each combination. Such a List reads at most
// maxScan entries, so a request stays bounded whatever the filters; a page
// may then hold fewer than Limit jobs, or none, and still have a Next that
// goes on from the last entry read.
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
	filter := false
	if len(opts.Labels) > 0 {
		k := slices.Min(slices.Collect(maps.Keys(opts.Labels)))
		key = labelKey(k, opts.Labels[k])
		filter = len(opts.Labels) > 1 || opts.Status != ""
	}
	if opts.Binding != "" {
		key = bindingKey(opts.Binding)
		filter = len(opts.Labels) > 0 || opts.Status != ""
	}
	start := "+"
	if opts.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(opts.Cursor)
		if err != nil || !memberPattern.Match(after) {
			return Page{}, fmt.Errorf("store.List: %w", ErrBadCursor)
		}
		start = "(" + string(after)
	}
	list := s.page
	if filter {
		list = s.filteredPage
	}
	page, err := list(ctx, key, start, opts)
	if err != nil {
		return Page{}, fmt.Errorf("store.List: %w", err)
	}
	return page, nil
}

// page reads the Limit jobs of key from start, and whether more follow.
func (s *Store) page(ctx context.Context, key, start string, opts ListOptions) (Page, error) {
	members, err := s.members(ctx, key, start, opts.Limit+1)
	if err != nil {
		return Page{}, err
	}
	var page Page
	if len(members) > opts.Limit {
		members = members[:opts.Limit]
		page.Next = cursor(members[len(members)-1])
	}
	if page.Jobs, err = s.records(ctx, members); err != nil {
		return Page{}, err
	}
	return page, nil
}

// filteredPage reads key from start in batches, keeping the jobs that match
// opts, until it has Limit of them and knows whether more follow, reaches
// the end of key, or has read maxScan entries.
func (s *Store) filteredPage(ctx context.Context, key, start string, opts ListOptions) (Page, error) {
	page := Page{Jobs: []job.Job{}}
	for scanned := 0; ; {
		members, err := s.members(ctx, key, start, opts.Limit+1)
		if err != nil {
			return Page{}, err
		}
		jobs, err := s.records(ctx, members)
		if err != nil {
			return Page{}, err
		}
		for _, j := range jobs {
			if !matches(j, opts) {
				continue
			}
			if len(page.Jobs) == opts.Limit {
				last := page.Jobs[len(page.Jobs)-1]
				page.Next = cursor(member(last.CreatedAt, last.ID))
				return page, nil
			}
			page.Jobs = append(page.Jobs, j)
		}
		if len(members) <= opts.Limit {
			return page, nil // the end of key
		}
		last := members[len(members)-1]
		if scanned += len(members); scanned >= maxScan {
			page.Next = cursor(last)
			return page, nil
		}
		start = "(" + last
	}
}

// matches reports whether j has opts' status and binding, if any, and all
// its labels.
func matches(j job.Job, opts ListOptions) bool {
	if opts.Status != "" && j.Status != opts.Status || opts.Binding != "" && j.Binding != opts.Binding {
		return false
	}
	for k, v := range opts.Labels {
		if got, ok := j.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// members reads up to n members of the index ZSET key, newest first, from
// start.
func (s *Store) members(ctx context.Context, key, start string, n int) ([]string, error) {
	return s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: key, Start: start, Stop: "-", ByLex: true, Rev: true, Count: int64(n),
	}).Result()
}

// cursor is the Next of a page whose last entry is member m. A job's member
// is member(CreatedAt, ID): the record keeps createdAt in the milliseconds
// the member was made from.
func cursor(m string) string { return base64.RawURLEncoding.EncodeToString([]byte(m)) }

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
