package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kjobs/kjobs/internal/httpserver"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kjobs_api_requests_total",
			Help: "HTTP requests answered by the API, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kjobs_api_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// instrument counts and times h under its route pattern, never the raw
// path, so that job IDs do not become label values. The route's metrics are
// looked up once, here, rather than on every request.
func (m *metrics) instrument(pattern string, h http.HandlerFunc) http.Handler {
	requests := m.requests.MustCurryWith(prometheus.Labels{"route": pattern})
	duration := m.duration.WithLabelValues(pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := httpserver.NewStatusRecorder(w)
		h(rec, r)
		requests.WithLabelValues(strconv.Itoa(rec.Code)).Inc()
		duration.Observe(time.Since(start).Seconds())
	})
}
