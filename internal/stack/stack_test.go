package stack_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/stack"
	"github.com/kjobs/kjobs/internal/stack/stacktest"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

var processor string

func TestMain(m *testing.M) {
	testenv.Main(m, map[*string]string{&processor: "github.com/kjobs/kjobs/processor"})
}

// client talks to a running local stack over HTTP.
type client struct {
	t   *testing.T
	url string
	// broker is the in-process Broker's ingress.
	broker string
}

// start runs the local stack, on a real redis-server, until the test ends.
// Each option changes the stack's configuration first.
func start(t *testing.T, options ...func(*stack.Config)) client {
	t.Helper()
	s := stacktest.Start(t, processor, options...)
	return client{t: t, url: s.API, broker: s.Broker}
}

func (c client) do(method, path, body string, out any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (c client) submit(body string) string {
	c.t.Helper()
	var j job.Job
	if code := c.do("POST", "/jobs", body, &j); code != http.StatusAccepted {
		c.t.Fatalf("POST /jobs %s: %d", body, code)
	}
	return j.ID
}

// wait polls the job over the API until it is terminal.
func (c client) wait(id string, within time.Duration) job.Job {
	c.t.Helper()
	var j job.Job
	c.eventually(within, func() bool {
		c.do("GET", "/jobs/"+id, "", &j)
		return j.Status.Terminal()
	})
	return j
}

func (c client) eventually(within time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("not so within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jobsOf lists, from the latest 200 jobs, those that schedule id started.
func (c client) jobsOf(id string) []job.Job {
	c.t.Helper()
	var page store.Page
	c.do("GET", "/jobs?limit=200", "", &page)
	var out []job.Job
	for _, j := range page.Jobs {
		if j.Schedule == id {
			out = append(out, j)
		}
	}
	return out
}

func (c client) stats() job.Stats {
	c.t.Helper()
	var s job.Stats
	if code := c.do("GET", "/jobs/stats", "", &s); code != 200 {
		c.t.Fatalf("GET /jobs/stats: %d", code)
	}
	return s
}

// TestPipeline drives the local stack over HTTP as a user would: a job
// that succeeds, one that fails every retry, one that fails once, and a
// schedule. It runs them together and checks the stats at the end.
func TestPipeline(t *testing.T) {
	c := start(t)
	ok := c.submit(`{"function":"sleep","args":{"seconds":"1"}}`)
	failing := c.submit(`{"function":"fail","args":{"message":"boom"}}`)
	flaky := c.submit(`{"function":"flaky","args":{"failures":"1"}}`)

	var sc schedule.Schedule
	if code := c.do("POST", "/jobs/schedule", `{"cron":"*/2 * * * * *","function":"sleep","args":{"seconds":"0"},"name":"every 2s"}`, &sc); code != http.StatusCreated {
		t.Fatalf("POST /jobs/schedule: %d", code)
	}

	t.Run("success", func(t *testing.T) {
		j := c.wait(ok, 20*time.Second)
		if j.Status != job.Succeeded || len(j.Attempts) != 1 || j.Attempts[0].Outcome != job.OutcomeSucceeded {
			t.Errorf("job %+v, want succeeded at the first attempt", j)
		}
		if a := j.Attempts[0]; a.FinishedAt == nil || a.FinishedAt.Sub(a.StartedAt) < time.Second {
			t.Errorf("attempt %+v did not sleep a second", a)
		}
	})

	t.Run("failure is retried with backoff, then dead-lettered", func(t *testing.T) {
		j := c.wait(failing, 40*time.Second)
		if j.Status != job.Failed || len(j.Attempts) != 3 {
			t.Fatalf("job %s with %d attempts, want failed after 3", j.Status, len(j.Attempts))
		}
		for _, a := range j.Attempts {
			if a.Outcome != job.OutcomeFailed || a.Message != "boom" || a.FinishedAt == nil {
				t.Errorf("attempt %+v, want failed with boom", a)
			}
		}
		// Knative's exponential backoff from PT2S: 2 s before the first
		// retry, 4 s before the second.
		for i, want := range []time.Duration{2 * time.Second, 4 * time.Second} {
			gap := j.Attempts[i+1].StartedAt.Sub(*j.Attempts[i].FinishedAt)
			if gap < want-100*time.Millisecond || gap > want+time.Second {
				t.Errorf("gap before attempt %d = %v, want about %v", i+2, gap, want)
			}
		}
		if !strings.Contains(j.Error, "500") || !strings.Contains(j.Error, "boom") {
			t.Errorf("job error %q should carry the last answer, HTTP 500 with boom", j.Error)
		}
	})

	t.Run("flaky succeeds at the second attempt", func(t *testing.T) {
		j := c.wait(flaky, 20*time.Second)
		if j.Status != job.Succeeded || len(j.Attempts) != 2 || j.Attempts[0].Outcome != job.OutcomeFailed {
			t.Errorf("job %+v, want succeeded after one failed attempt", j)
		}
	})

	t.Run("schedule fires until deleted", func(t *testing.T) {
		scheduled := func() []job.Job { return c.jobsOf(sc.ID) }
		c.eventually(15*time.Second, func() bool {
			n := 0
			for _, j := range scheduled() {
				if j.Status == job.Succeeded {
					n++
				}
			}
			return n >= 2
		})
		if code := c.do("DELETE", "/jobs/schedule/"+sc.ID, "", nil); code != http.StatusNoContent {
			t.Fatalf("DELETE: %d", code)
		}
		before := len(scheduled())
		time.Sleep(3 * time.Second)
		if after := len(scheduled()); after != before {
			t.Errorf("the deleted schedule made %d more jobs", after-before)
		}
		for _, j := range scheduled() {
			c.wait(j.ID, 10*time.Second)
		}
	})

	// Every job has finished: the stats must count each exactly once.
	var page store.Page
	c.do("GET", "/jobs?limit=200&status=succeeded", "", &page)
	want := job.Stats{Succeeded: int64(len(page.Jobs)), Failed: 1, Retries: 3}
	if want.Succeeded < 4 {
		t.Errorf("%d succeeded jobs listed, want the sleep, the flaky and at least 2 scheduled", want.Succeeded)
	}
	if got := c.stats(); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

// TestTimeout checks a job's own timeout end to end: each attempt is
// stopped after it with reason DeadlineExceeded, the Broker's retries run
// as for any failure, and the job's labels find it.
func TestTimeout(t *testing.T) {
	c := start(t)
	id := c.submit(`{"function":"sleep","args":{"seconds":"10"},"timeout":"2s","labels":{"suite":"limits"}}`)
	j := c.wait(id, 40*time.Second)
	if j.Status != job.Failed || len(j.Attempts) != 3 {
		t.Fatalf("job %s with %d attempts, want failed after 3", j.Status, len(j.Attempts))
	}
	for _, a := range j.Attempts {
		if a.Reason != "DeadlineExceeded" || a.FinishedAt == nil {
			t.Fatalf("attempt %+v, want failed with reason DeadlineExceeded", a)
		}
		// SIGTERM at the timeout; the processor exits at once.
		if ran := a.FinishedAt.Sub(a.StartedAt); ran < 2*time.Second-100*time.Millisecond || ran > 3*time.Second {
			t.Errorf("attempt %d ran %v, want about the 2s timeout", a.Attempt, ran)
		}
	}
	if time.Duration(j.Timeout) != 2*time.Second || j.Labels["suite"] != "limits" {
		t.Errorf("job timeout %v, labels %v; want 2s and suite=limits", j.Timeout, j.Labels)
	}
	var page store.Page
	c.do("GET", "/jobs?label=suite=limits&status=failed", "", &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != id {
		t.Errorf("GET /jobs?label=suite=limits&status=failed listed %+v, want the job", page.Jobs)
	}
}
