package dispatch

import (
	"context"
	"fmt"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DeadLetterPath is where the Triggers' deadLetterSink points.
const DeadLetterPath = "/dead-letter"

// Handler serves the dispatcher's routes: CloudEvents on / and on
// DeadLetterPath, and /healthz, /readyz and /metrics.
func (d *Dispatcher) Handler(ctx context.Context, reg *prometheus.Registry) (http.Handler, error) {
	p, err := cloudevents.NewHTTP()
	if err != nil {
		return nil, fmt.Errorf("dispatch.Handler: %w", err)
	}
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kjobs_dispatcher_deliveries_total",
		Help: "Event deliveries handled by the dispatcher, by route and HTTP status answered.",
	}, []string{"route", "code"})
	reg.MustRegister(deliveries)

	receive, err := cloudevents.NewHTTPReceiveHandler(ctx, p, d.Receive)
	if err != nil {
		return nil, fmt.Errorf("dispatch.Handler: %w", err)
	}
	deadLetter, err := cloudevents.NewHTTPReceiveHandler(ctx, p, d.DeadLetter)
	if err != nil {
		return nil, fmt.Errorf("dispatch.Handler: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /{$}", counted(deliveries, "receive", receive))
	mux.Handle("POST "+DeadLetterPath, counted(deliveries, "dead-letter", deadLetter))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.store.Ping(r.Context()); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux, nil
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func counted(c *prometheus.CounterVec, route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		c.WithLabelValues(route, fmt.Sprint(rec.code)).Inc()
	})
}
