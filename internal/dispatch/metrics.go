package dispatch

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// metrics are the dispatcher's counts of jobs and attempts. Each is counted
// where the store says that its move happened, never per delivery: the
// store's moves are idempotent, so a redelivery, the reconciler and a second
// replica that see the same end are told it did not move, and count nothing.
// Labels are function names, which the catalog bounds (functionLabel),
// never job IDs.
type metrics struct {
	finished  *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
	// droppedDeadLetters counts dead letters that could not be recorded.
	droppedDeadLetters prometheus.Counter
}

func newMetrics() metrics {
	return metrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kjobs_jobs_finished_total",
			Help: "Jobs that reached a terminal status (succeeded; failed after their last attempt or a dead letter; canceled), by function and status. Each job is counted once, by the replica whose move ended it, or that took its cancel.",
		}, []string{"function", "status"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kjobs_attempts_total",
			Help: "Attempts that ended, by function and outcome (succeeded or failed). Each attempt is counted once, by the replica that recorded its end.",
		}, []string{"function", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kjobs_attempt_duration_seconds",
			Help:    "How long attempts ran, from start to end, by function.",
			Buckets: []float64{.1, .5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600},
		}, []string{"function"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kjobs_queue_wait_seconds",
			Help:    "How long jobs waited from their creation to the start of their first attempt (delivery, and any wait behind a concurrency cap), by function.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 15, 30, 60, 300, 900, 3600},
		}, []string{"function"}),
		droppedDeadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kjobs_dispatcher_dead_letters_dropped_total",
			Help: "Dead letters the dispatcher could not record, after retrying; the Broker may retry or drop them.",
		}),
	}
}

func (m metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.finished, m.attempts, m.duration, m.queueWait, m.droppedDeadLetters}
}

// functionLabel is the label of function fn: its name when it is
// declared, "undeclared" otherwise, such as for the failed job of an event
// that named a function nobody declared, so that no event can make a
// series of its own.
func (d *Dispatcher) functionLabel(fn string) string {
	var unknown *catalog.UnknownError
	if _, err := d.functions.Lookup(fn); errors.As(err, &unknown) {
		return "undeclared"
	}
	return fn
}

// started counts the start of attempt a, which the store has just moved
// as m says: the first attempt ends the job's wait.
func (d *Dispatcher) started(m store.Move, a job.Attempt) {
	if a.Attempt == 1 && !a.StartedAt.IsZero() {
		d.metrics.queueWait.WithLabelValues(d.functionLabel(m.Function)).Observe(max(a.StartedAt.Sub(m.CreatedAt).Seconds(), 0))
	}
}

// ended counts the end of attempt a, which moved its job as m says.
func (d *Dispatcher) ended(m store.Move, a job.Attempt) {
	fn := d.functionLabel(m.Function)
	d.metrics.attempts.WithLabelValues(fn, string(a.Outcome)).Inc()
	if !a.StartedAt.IsZero() && a.FinishedAt != nil {
		d.metrics.duration.WithLabelValues(fn).Observe(max(a.FinishedAt.Sub(a.StartedAt).Seconds(), 0))
	}
	if m.To.Terminal() {
		d.finished(m.Function, m.To)
	}
}

// finished counts a job of function fn, which the store has just moved to
// terminal status to.
func (d *Dispatcher) finished(fn string, to job.Status) {
	d.metrics.finished.WithLabelValues(d.functionLabel(fn), string(to)).Inc()
}

// gauges reports the jobs waiting and running now, by function, read from
// Redis at each scrape: they are the install's, kept in Redis, not one
// replica's. A declared function with none reports 0, so that its series
// does not vanish when its last job ends.
type gauges struct {
	store *store.Store
	// declared returns the declared functions' names.
	declared func() []string
	// label is the label of a function's name (functionLabel).
	label   func(string) string
	timeout time.Duration
	waiting *prometheus.Desc
	running *prometheus.Desc
}

func newGauges(s *store.Store, declared func() []string, label func(string) string) *gauges {
	const same = " Read from Redis at each scrape: every dispatcher replica reports the same value, so aggregate with max(), not sum()."
	return &gauges{
		store: s, declared: declared, label: label, timeout: 5 * time.Second,
		waiting: prometheus.NewDesc("kjobs_jobs_waiting",
			"Jobs waiting now for a slot under a concurrency cap, by function."+same, []string{"function"}, nil),
		running: prometheus.NewDesc("kjobs_jobs_running",
			"Jobs whose attempt runs now, by function."+same, []string{"function"}, nil),
	}
}

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.waiting
	ch <- g.running
}

// Collect reads the counts. A count Redis does not answer is left out of
// the scrape rather than failing it, so that the other metrics, Redis's
// errors among them, still come through.
func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	for _, s := range []struct {
		status job.Status
		desc   *prometheus.Desc
	}{{job.Waiting, g.waiting}, {job.Running, g.running}} {
		byName, err := g.store.ByFunction(ctx, s.status)
		if err != nil {
			continue
		}
		counts := map[string]int64{}
		for _, fn := range g.declared() {
			counts[fn] = 0
		}
		for fn, n := range byName {
			counts[g.label(fn)] += n
		}
		for fn, n := range counts {
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(n), fn)
		}
	}
}
