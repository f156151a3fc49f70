// Package api serves the kjobs HTTP API: jobs are accepted, recorded in
// Redis and handed to the Broker as events; schedules are kept by a
// schedule.Store and bindings by a binding.Store; every error is an RFC
// 9457 problem.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/problem"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/store"
)

// MaxBody caps a request body; a larger one is answered 413. It leaves
// room for args of job.MaxArgsBytes, so that too large args get the
// message that says so.
const MaxBody = 128 << 10

// Config is what the API needs.
type Config struct {
	// Store keeps jobs. Required.
	Store *store.Store
	// Sender hands job events to the Broker. Required.
	Sender event.Sender
	// SendTimeout bounds one send to the Broker, which runs on even if the
	// client goes away. Defaults to 10 s.
	SendTimeout time.Duration
	// Schedules keeps schedules. Required.
	Schedules schedule.Store
	// Bindings keeps bindings: Triggers in a cluster, or the local
	// Broker's. Required.
	Bindings binding.Store
	// Functions are the declared functions, which every request's function
	// and args are checked against. Defaults to the built-in functions
	// alone.
	Functions *catalog.Catalog
	// JobDeadline is the install's bound on one attempt, the dispatcher's
	// KJOBS_JOB_DEADLINE: a job's timeout may be shorter, never longer, so
	// that a request is refused here rather than quietly cut to the
	// deadline. Defaults to 10m, the dispatcher's default.
	JobDeadline time.Duration
	// Logs reads attempts' output for GET /jobs/{id}/logs: the local
	// runner, or pods' logs in a cluster. Nil answers that route 410, as an
	// install that keeps no logs.
	Logs runner.Logs
	// Auth checks bearer tokens; nil serves every route without one, which
	// only the local stack on loopback does.
	Auth *Tokens
	// Registry gets the API's metrics and is served on /metrics. Defaults
	// to a new registry.
	Registry *prometheus.Registry
	// Log defaults to slog.Default().
	Log *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// NewID mints job and schedule IDs. Defaults to UUIDv7, which sort by
	// creation time.
	NewID func() string
}

// Server is the API's HTTP handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
	// routes are the patterns registered on mux, for Routes.
	routes []string
}

// New returns the API handler.
func New(cfg Config) *Server {
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.JobDeadline <= 0 {
		cfg.JobDeadline = 10 * time.Minute
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.Functions == nil {
		cfg.Functions = catalog.New(false)
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	m := newMetrics(cfg.Registry)

	public := func(pattern string, h http.HandlerFunc) {
		s.mux.Handle(pattern, m.instrument(pattern, h))
		s.routes = append(s.routes, pattern)
	}
	private := func(pattern string, h http.HandlerFunc) { public(pattern, s.authenticated(h)) }

	public("GET /healthz", s.healthz)
	public("GET /readyz", s.readyz)
	public("GET /openapi.json", serveOpenAPI)
	// /metrics stays on the API's one port, behind the tokens. A Knative
	// Service's containers may declare a single port between them
	// (knative.dev/serving v0.50.0 pkg/apis/serving/k8s_validation.go,
	// validateContainersPorts: "more than one container port is set"), and
	// the metrics ports Knative scrapes, 9090 and 9091 (pkg/networking/
	// constants.go), are the queue-proxy's own and reserved to it
	// (reservedPorts in k8s_validation.go): Knative
	// scrapes only the queue-proxy, never the user's container. The one
	// port is the public one, behind the ingress, so its metrics keep the
	// same auth as the rest; Prometheus scrapes each pod's port directly
	// with a bearer token (README, "Metrics"). They hold no job data:
	// routes are patterns, functions are the declared ones.
	private("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP)
	private("POST /jobs", s.createJob)
	private("GET /jobs", s.listJobs)
	private("GET /jobs/stats", s.stats)
	private("GET /jobs/stats/history", s.history)
	private("GET /jobs/{id}", s.getJob)
	private("POST /jobs/{id}/cancel", s.cancelJob)
	// GET /jobs/{id}/logs. ServeMux refuses that pattern beside GET
	// /jobs/schedule/{id} and GET /jobs/bindings/{name}, as all three match
	// /jobs/schedule/logs; under a wildcard, those two are the more specific
	// and keep their paths (a binding may be named "logs", and no job is
	// named "schedule" or "bindings": job IDs are UUIDs or "ev" and a hash).
	logs := m.instrument(logsRoute, s.authenticated(s.jobLogs))
	s.mux.HandleFunc(jobSubRoute, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("sub") != "logs" {
			s.noRoute(w, r)
			return
		}
		logs.ServeHTTP(w, r)
	})
	s.routes = append(s.routes, logsRoute)
	private("POST /jobs/schedule", s.createSchedule)
	private("GET /jobs/schedule", s.listSchedules)
	private("GET /jobs/schedule/{id}", s.getSchedule)
	private("DELETE /jobs/schedule/{id}", s.deleteSchedule)
	private("POST /jobs/schedule/{id}/pause", s.setPaused(true))
	private("POST /jobs/schedule/{id}/resume", s.setPaused(false))
	private("POST /jobs/bindings", s.createBinding)
	private("GET /jobs/bindings", s.listBindings)
	private("GET /jobs/bindings/{name}", s.getBinding)
	private("DELETE /jobs/bindings/{name}", s.deleteBinding)
	s.mux.HandleFunc("/", s.noRoute)
	return s
}

// The log route, and the pattern it is served under (see New).
const (
	logsRoute   = "GET /jobs/{id}/logs"
	jobSubRoute = "GET /jobs/{id}/{sub}"
)

// Routes returns the patterns of the API's routes, such as "GET /jobs/{id}",
// in the order they were registered; openapi.json describes each one.
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

// probeMethods are tried to tell a path served with another method (405)
// from an unknown path (404).
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodDelete}

// ServeHTTP routes r.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// noRoute answers what no route takes with a problem rather than ServeMux's
// plain text: 405 with Allow for a path served with other methods, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		_, pattern := s.mux.Handler(probe)
		if pattern == jobSubRoute && path.Base(r.URL.Path) != "logs" {
			continue // the pattern of the log route serves only that
		}
		if pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		problem.Write(w, r, problem.NotFound, "no route "+r.URL.Path)
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	problem.Write(w, r, problem.MethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.Join(allow, " or "))
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.cfg.Log.Warn("not ready: redis does not answer", "error", err)
		problem.Write(w, r, problem.Unavailable, "redis does not answer")
		return
	}
	s.healthz(w, r)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// internalError logs err and answers 503 when a backing service is away,
// which a client may retry, or 500 otherwise. The answer never carries the
// error text, which may name internal addresses.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, op string, err error) {
	if r.Context().Err() != nil {
		// The client went away; there is no one to answer.
		s.cfg.Log.Debug(op+": client gone", "error", err)
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isConnError(err) {
		s.cfg.Log.Warn(op+": backing service unavailable", "error", err)
		problem.Write(w, r, problem.Unavailable, "a backing service did not answer; retry later")
		return
	}
	s.cfg.Log.Error(op, "error", err)
	problem.Write(w, r, problem.Internal, "the error is logged")
}
