package stack_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/testenv"
)

// scrape reads the API's /metrics, which in the local stack serves the
// dispatcher's metrics too.
func (c client) scrape() map[string]*dto.MetricFamily {
	c.t.Helper()
	return testenv.Scrape(c.t, c.url+"/metrics")
}

var value = testenv.MetricValue

// series is one metric series and the value a test wants of it.
type series struct {
	name, labels string
	want         float64
}

// checkSeries scrapes until every series has its value, for a few seconds
// (a count follows the store's move that it counts, which may be the
// reconciler's, just after the delivery's answer), then reports those that
// do not, and returns the last scrape.
func (c client) checkSeries(want []series) map[string]*dto.MetricFamily {
	c.t.Helper()
	var families map[string]*dto.MetricFamily
	settled := func() bool {
		families = c.scrape()
		for _, s := range want {
			if value(families, s.name, s.labels) != s.want {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range want {
		if got := value(families, s.name, s.labels); got != s.want {
			c.t.Errorf("%s{%s} = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	return families
}

// TestMetrics runs a job that succeeds, one that fails every attempt and
// one that succeeds at its retry, sends the event of the first twice more
// (while it runs, and once it has ended), and checks that /metrics counts
// each job, attempt and wait exactly once: every attempt's end is recorded
// by the delivery and by the reconciler, and only the record that moved the
// job counts.
func TestMetrics(t *testing.T) {
	c := start(t)
	ok := c.submit(`{"function":"sleep","args":{"seconds":"3"}}`)
	failing := c.submit(`{"function":"fail","args":{"message":"boom"}}`)
	retried := c.submit(`{"function":"flaky","args":{"failures":"1"}}`)

	redeliver := func() {
		c.send(map[string]string{
			"ce-specversion": "1.0", "ce-id": ok, "ce-type": "dev.kjobs.job.requested", "ce-source": "/kjobs/api",
			"content-type": "application/json",
		}, `{"function":"sleep","args":{"seconds":"3"}}`)
	}
	var j job.Job
	c.eventually(5*time.Second, func() bool {
		c.do("GET", "/jobs/"+ok, "", &j)
		return j.Status == job.Running
	})
	if got := value(c.scrape(), "kjobs_jobs_running", "function=sleep"); got != 1 {
		t.Errorf("kjobs_jobs_running{function=sleep} = %v while it runs, want 1", got)
	}
	redeliver() // adopts the running attempt
	for _, id := range []string{ok, failing, retried} {
		c.wait(id, 40*time.Second)
	}
	redeliver() // answered for the job that has ended
	// The redeliveries are answered once the second attempt's wait ends;
	// the reconciler records the attempts on its own too.
	c.eventually(10*time.Second, func() bool {
		return value(c.scrape(), "kjobs_dispatcher_deliveries_total", "code=200,route=receive") == 4
	})

	families := c.checkSeries([]series{
		{"kjobs_jobs_finished_total", "function=sleep,status=succeeded", 1},
		{"kjobs_jobs_finished_total", "function=flaky,status=succeeded", 1},
		{"kjobs_jobs_finished_total", "function=fail,status=failed", 1},
		{"kjobs_jobs_finished_total", "function=flaky,status=failed", -1},
		{"kjobs_attempts_total", "function=sleep,outcome=succeeded", 1},
		{"kjobs_attempts_total", "function=fail,outcome=failed", 3},
		{"kjobs_attempts_total", "function=flaky,outcome=failed", 1},
		{"kjobs_attempts_total", "function=flaky,outcome=succeeded", 1},
		{"kjobs_attempt_duration_seconds_count", "function=sleep", 1},
		{"kjobs_attempt_duration_seconds_count", "function=fail", 3},
		{"kjobs_attempt_duration_seconds_count", "function=flaky", 2},
		{"kjobs_queue_wait_seconds_count", "function=sleep", 1},
		{"kjobs_queue_wait_seconds_count", "function=fail", 1},
		{"kjobs_queue_wait_seconds_count", "function=flaky", 1},
		{"kjobs_jobs_running", "function=sleep", 0},
		{"kjobs_jobs_waiting", "function=sleep", 0},
		// The sleep's first delivery, its two redeliveries and the flaky's
		// retry succeeded; the fail's three attempts and the flaky's first
		// were answered 500, and the fail's dead letter taken.
		{"kjobs_dispatcher_deliveries_total", "code=200,route=receive", 4},
		{"kjobs_dispatcher_deliveries_total", "code=500,route=receive", 4},
		{"kjobs_dispatcher_deliveries_total", "code=200,route=dead-letter", 1},
		{"kjobs_api_requests_total", "code=202,route=POST /jobs", 3},
	})
	if d := families["kjobs_attempt_duration_seconds"]; d != nil {
		for _, m := range d.GetMetric() {
			if m.GetLabel()[0].GetValue() == "sleep" && m.GetHistogram().GetSampleSum() < 3 {
				t.Errorf("the sleep's attempt lasted %vs, want at least 3s", m.GetHistogram().GetSampleSum())
			}
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if families[name] == nil {
			t.Errorf("/metrics has no %s: the Go and process collectors are not registered", name)
		}
	}
	t.Run("the Grafana dashboard names these metrics", func(t *testing.T) {
		for name, f := range clientErrors(t) {
			if families[name] == nil {
				families[name] = f
			}
		}
		checkDashboard(t, families)
	})
	for name := range families {
		for _, id := range []string{ok, failing, retried} {
			if strings.Contains(fmt.Sprint(families[name]), id) {
				t.Errorf("%s carries job ID %s", name, id)
			}
		}
	}
}
