package stack_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/stack"
)

// withFunctions gives the stack a KJOBS_FUNCTIONS_FILE of yaml.
func withFunctions(t *testing.T, yaml string) func(*stack.Config) {
	path := filepath.Join(t.TempDir(), "functions.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *stack.Config) { c.FunctionsFile = path }
}

// TestCapUnderMakeRun submits 20 jobs of a function capped at 3 and polls
// the stats every 100 ms: never more than 3 run, they start in the order
// they were submitted, all succeed and none spends a retry.
func TestCapUnderMakeRun(t *testing.T) {
	c := start(t, withFunctions(t, "sleep: {maxRunning: 3}\n"))
	const n, limit = 20, 3

	var mu sync.Mutex
	most, sawWaiting := 0, false
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			s := c.stats()
			mu.Lock()
			most = max(most, int(s.Running))
			sawWaiting = sawWaiting || s.Waiting > 0
			mu.Unlock()
		}
	}()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.submit(`{"function":"sleep","args":{"seconds":"1"}}`)
	}
	jobs := make([]job.Job, n)
	for i, id := range ids {
		jobs[i] = c.wait(id, time.Minute)
	}
	close(stop)
	<-polled

	if most > limit || !sawWaiting {
		t.Errorf("at most %d running and waiting seen %v; want at most %d, and jobs waiting", most, sawWaiting, limit)
	}
	for i, j := range jobs {
		if j.Status != job.Succeeded || len(j.Attempts) != 1 {
			t.Fatalf("job %d = %s with %d attempts, want succeeded with 1", i, j.Status, len(j.Attempts))
		}
	}
	// Jobs admitted by one release start within a few milliseconds of each
	// other, in any order; a job submitted later never starts clearly
	// before one submitted earlier.
	const together = 100 * time.Millisecond
	for i := range jobs {
		for k := i + 1; k < n; k++ {
			if jobs[k].Attempts[0].StartedAt.Add(together).Before(jobs[i].Attempts[0].StartedAt) {
				t.Errorf("job %d started at %s, before job %d submitted ahead of it (%s)", k, jobs[k].Attempts[0].StartedAt, i, jobs[i].Attempts[0].StartedAt)
			}
		}
	}
	// At any moment at most 3 attempts overlapped, from their own times.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, j := range jobs {
		a := j.Attempts[0]
		edges = append(edges, edge{a.StartedAt, 1}, edge{*a.FinishedAt, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // an end before a start at the same instant
	})
	overlap := 0
	for _, e := range edges {
		overlap += e.delta
		if overlap > limit {
			t.Fatalf("%d attempts overlapped at %s, want at most %d", overlap, e.at, limit)
		}
	}
	if s := c.stats(); s.Succeeded != n || s.Retries != 0 || s.Running != 0 || s.Waiting != 0 {
		t.Errorf("stats = %+v; want %d succeeded, no retry", s, n)
	}
}

// TestCancelUnderMakeRun cancels a running job and a job that waits
// behind it: the child is stopped, both end canceled, counted once each,
// in the stats and in the metrics.
func TestCancelUnderMakeRun(t *testing.T) {
	c := start(t, func(cfg *stack.Config) { cfg.MaxRunning = 1 })
	running := c.submit(`{"function":"sleep","args":{"seconds":"60"}}`)
	waiting := c.submit(`{"function":"sleep","args":{"seconds":"0"}}`)
	var j job.Job
	c.eventually(10*time.Second, func() bool {
		c.do("GET", "/jobs/"+running, "", &j)
		return j.Status == job.Running
	})
	c.eventually(5*time.Second, func() bool {
		m := c.scrape()
		return value(m, "kjobs_jobs_running", "function=sleep") == 1 && value(m, "kjobs_jobs_waiting", "function=sleep") == 1
	})
	for _, id := range []string{waiting, running, running} {
		if code := c.do("POST", "/jobs/"+id+"/cancel", "", &j); code != http.StatusAccepted || j.Status != job.Canceled {
			t.Fatalf("cancel %s: %d, status %s; want 202, canceled", id, code, j.Status)
		}
	}
	// The child gets SIGTERM; sleep exits at once.
	c.eventually(5*time.Second, func() bool {
		c.do("GET", "/jobs/"+running, "", &j)
		return len(j.Attempts) == 1 && j.Attempts[0].FinishedAt != nil
	})
	if a := j.Attempts[0]; a.Outcome != job.OutcomeFailed || a.Reason != "Stopped" {
		t.Errorf("stopped attempt = %+v; want failed, reason Stopped", a)
	}
	c.do("GET", "/jobs/"+waiting, "", &j)
	if j.Status != job.Canceled || len(j.Attempts) != 0 {
		t.Errorf("waiting job = %s with %d attempts; want canceled with none", j.Status, len(j.Attempts))
	}
	if s := c.stats(); s.Canceled != 2 || s.Running != 0 || s.Waiting != 0 || s.Retries != 0 {
		t.Errorf("stats = %+v; want canceled 2", s)
	}
	var p struct{ Type string }
	if code := c.do("POST", "/jobs/"+running+"/cancel", "", &p); code != http.StatusAccepted {
		t.Errorf("a third cancel: %d, want 202", code)
	}
	done := c.submit(`{"function":"echo"}`)
	c.wait(done, 10*time.Second)
	if code := c.do("POST", "/jobs/"+done+"/cancel", "", &p); code != http.StatusConflict {
		t.Errorf("cancel of a succeeded job: %d %s, want 409", code, p.Type)
	}
	// The stopped attempt ended a canceled job, which no attempt moves:
	// it is no attempt's end to count.
	c.checkSeries([]series{
		{"kjobs_jobs_finished_total", "function=sleep,status=canceled", 2},
		{"kjobs_jobs_finished_total", "function=echo,status=succeeded", 1},
		{"kjobs_attempts_total", "function=sleep,outcome=failed", -1},
		{"kjobs_jobs_running", "function=sleep", 0},
		{"kjobs_jobs_waiting", "function=sleep", 0},
	})
}

// TestRetriesBehindCap fails a job whose retries wait behind a cap held by
// a longer job: it runs exactly its 3 attempts, no more, however the
// waits cut into the Broker's rounds of retries.
func TestRetriesBehindCap(t *testing.T) {
	c := start(t, func(cfg *stack.Config) { cfg.MaxRunning = 1 })
	failing := c.submit(`{"function":"fail","args":{"message":"boom"}}`)
	c.submit(`{"function":"sleep","args":{"seconds":"4"}}`)
	j := c.wait(failing, time.Minute)
	if j.Status != job.Failed || len(j.Attempts) != 3 {
		t.Errorf("job = %s with %d attempts (%s); want failed after 3", j.Status, len(j.Attempts), j.Error)
	}
	c.eventually(20*time.Second, func() bool { return c.stats().Succeeded == 1 })
	if s := c.stats(); s.Failed != 1 || s.Retries != 2 {
		t.Errorf("stats = %+v; want failed 1, retries 2", s)
	}
}
