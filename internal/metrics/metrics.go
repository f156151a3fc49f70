// Package metrics holds the Prometheus metrics that every kjobs process
// exports whatever it serves: the Go runtime's and the process's, and the
// errors of its clients of Redis and of the Kubernetes API server. Each
// process registers them once, on the registry its /metrics serves; the
// local stack, which runs the API and the dispatcher in one process, does
// so once for both.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Clients counts the errors of a process's clients.
type Clients struct {
	redis     *prometheus.CounterVec
	apiserver *prometheus.CounterVec
}

// Register registers the Go and process collectors and the client error
// counters on reg, and returns the counters for the clients to report to.
func Register(reg prometheus.Registerer) *Clients {
	c := &Clients{
		redis: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kjobs_redis_errors_total",
			Help: "Redis commands that failed (a connection error, a timeout or an error reply), by command.",
		}, []string{"op"}),
		apiserver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kjobs_apiserver_errors_total",
			Help: "Kubernetes API server requests that failed (no answer, 429, 5xx, or a 4xx other than 404 and 409, which kjobs expects), by verb and resource.",
		}, []string{"verb", "resource"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		c.redis, c.apiserver,
	)
	return c
}
