package dispatch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kjobs/kjobs/internal/httpserver"
)

// DeadLetterPath is where the Triggers' deadLetterSink points.
const DeadLetterPath = "/dead-letter"

// Handler serves the dispatcher's routes: CloudEvents on / and on
// DeadLetterPath, and /healthz, /readyz and /metrics.
func (d *Dispatcher) Handler(reg *prometheus.Registry) http.Handler {
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kjobs_dispatcher_deliveries_total",
		Help: "Event deliveries handled by the dispatcher, by route and HTTP status answered.",
	}, []string{"route", "code"})
	reg.MustRegister(deliveries)
	receive := serveEvent(d.Receive)
	deadLetter := serveEvent(d.DeadLetter)
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
	return mux
}

func counted(c *prometheus.CounterVec, route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httpserver.NewStatusRecorder(w)
		h.ServeHTTP(rec, r)
		c.WithLabelValues(route, strconv.Itoa(rec.Code)).Inc()
	})
}

// serveEvent reads one CloudEvent per request and answers with the HTTP
// status and message of fn's result. It does not use sdk-go's
// NewHTTPReceiveHandler: that hands requests to its receivers through one
// shared channel, so concurrent requests on two routes can be answered by
// the wrong route (cloudevents/sdk-go#1224).
func serveEvent(fn func(context.Context, cloudevents.Event) protocol.Result) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, "not a CloudEvent: "+err.Error(), http.StatusBadRequest)
			return
		}
		res := fn(r.Context(), *e)
		status, msg := http.StatusOK, ""
		var hr *cehttp.Result
		switch {
		case protocol.ResultAs(res, &hr):
			if hr.StatusCode > 100 && hr.StatusCode < 600 {
				status = hr.StatusCode
			}
			msg = fmt.Errorf(hr.Format, hr.Args...).Error()
		case !protocol.IsACK(res):
			status, msg = http.StatusInternalServerError, res.Error()
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg)
	})
}
