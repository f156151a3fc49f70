package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/httpserver"
)

// DeadLetterPath is where the Triggers' deadLetterSink points.
const DeadLetterPath = "/dead-letter"

// MaxEventSize caps the body of a delivery. A job request is at most the
// API's 64 KiB body; a Broker's dead letter carries the same data.
const MaxEventSize = 256 << 10

// readyGrace is how long Redis may fail to answer before /readyz says so: a
// blip shorter than that, which the deliveries retry through, must not take
// every replica out of the Service at once.
const readyGrace = 10 * time.Second

// Handler serves the dispatcher's routes: CloudEvents on / and on
// DeadLetterPath, and /healthz, /readyz and /metrics. It registers the
// dispatcher's metrics on reg, which /metrics serves; the caller registers
// the process's own (metrics.Register) once.
func (d *Dispatcher) Handler(reg *prometheus.Registry) http.Handler {
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kjobs_dispatcher_deliveries_total",
		Help: "Event deliveries handled by the dispatcher, by route and HTTP status answered.",
	}, []string{"route", "code"})
	reg.MustRegister(d.metrics.collectors()...)
	reg.MustRegister(deliveries, newGauges(d.store, func() []string { return d.functions.Names() }, d.functionLabel))
	own := func(fn func(context.Context, cloudevents.Event) protocol.Result) http.Handler {
		return serveEvent(true, func(r *http.Request, e cloudevents.Event) protocol.Result { return fn(r.Context(), e) })
	}
	bound := func(fn func(context.Context, string, cloudevents.Event) protocol.Result) http.Handler {
		return serveEvent(false, func(r *http.Request, e cloudevents.Event) protocol.Result {
			return fn(r.Context(), r.PathValue("name"), e)
		})
	}
	ready := &readiness{ping: d.store.Ping, since: time.Now()}
	mux := http.NewServeMux()
	mux.Handle("POST /{$}", counted(deliveries, "receive", own(d.Receive)))
	mux.Handle("POST "+DeadLetterPath, counted(deliveries, "dead-letter", own(d.DeadLetter)))
	// A binding's Trigger delivers to binding.SubscriberPath and dead-letters
	// to binding.DeadLetterPath.
	mux.Handle("POST /bindings/{name}", counted(deliveries, "binding", bound(d.ReceiveBound)))
	mux.Handle("POST /bindings/{name}/dead-letter", counted(deliveries, "binding-dead-letter", bound(d.DeadLetterBound)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", ready.serve)
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

// readiness answers /readyz: ready while Redis answers, and for readyGrace
// after it last did.
type readiness struct {
	ping func(context.Context) error

	mu    sync.Mutex
	since time.Time // Redis's last answer, or the start
}

func (rd *readiness) serve(w http.ResponseWriter, r *http.Request) {
	err := rd.ping(r.Context())
	rd.mu.Lock()
	if err == nil {
		rd.since = time.Now()
	}
	down := time.Since(rd.since)
	rd.mu.Unlock()
	if err != nil && down > readyGrace {
		http.Error(w, fmt.Sprintf("redis has not answered for %s: %v", down.Round(time.Second), err), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// serveEvent reads one CloudEvent per request, of at most MaxEventSize and,
// when own is set, of one of kjobs' own types, and answers with the HTTP
// status and message of fn's result. Anything else is answered 4xx, which the Broker does not
// retry. It does not use sdk-go's
// NewHTTPReceiveHandler: that hands requests to its receivers through one
// shared channel, so concurrent requests on two routes can be answered by
// the wrong route (cloudevents/sdk-go#1224).
func serveEvent(own bool, fn func(*http.Request, cloudevents.Event) protocol.Result) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxEventSize)
		e, err := cehttp.NewEventFromHTTPRequest(r)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			http.Error(w, fmt.Sprintf("event larger than %d bytes", MaxEventSize), http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "not a CloudEvent: "+err.Error(), http.StatusBadRequest)
			return
		case own && !event.Known(e.Type()):
			http.Error(w, fmt.Sprintf("event type %q is not one of kjobs' own", e.Type()), http.StatusBadRequest)
			return
		}
		res := fn(r, *e)
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
		// A 2xx answer must have no body: the Broker's filter reads a body
		// as a reply event and turns one that is not into a 502, which it
		// retries (knative.dev/eventing v0.50.0
		// pkg/broker/filter/filter_handler.go, Handler.writeResponse).
		if status >= 300 {
			_, _ = io.WriteString(w, msg)
		}
	})
}
