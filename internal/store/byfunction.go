package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/job"
)

// byFunctionScript counts the jobs of one status by function: it reads the
// function of every member of the status's ZSET. It is O(jobs in that
// status), which is why only the bounded statuses (running: as many as the
// cluster runs; waiting: held behind a cap) are read this way, and only at
// a metrics scrape.
//
// KEYS[1] the status ZSET. The job records' keys are built from the prefix;
// they share the hash tag of KEYS[1].
// Returns a flat list of function, count.
var byFunctionScript = redis.NewScript(fmt.Sprintf(`
local P = %q
local n = {}
for _, m in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
  local fn = redis.call("HGET", P .. "job:" .. string.sub(m, 15), "function")
  if fn then n[fn] = (n[fn] or 0) + 1 end
end
local out = {}
for fn, c in pairs(n) do
  out[#out + 1] = fn
  out[#out + 1] = c
end
return out
`, prefix))

// ByFunction returns how many jobs are in status st now, by function; a
// function with none is absent.
func (s *Store) ByFunction(ctx context.Context, st job.Status) (map[string]int64, error) {
	res, err := byFunctionScript.Run(ctx, s.rdb, []string{statusKey(st)}).Slice()
	if err != nil {
		return nil, fmt.Errorf("store.ByFunction %s: %w", st, err)
	}
	counts := make(map[string]int64, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		fn, _ := res[i].(string)
		n, _ := res[i+1].(int64)
		counts[fn] = n
	}
	return counts, nil
}
