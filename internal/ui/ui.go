// Package ui serves the dashboard at /ui/: server-rendered pages of the
// stats, the jobs, the schedules and the bindings. It is a client of the
// API: every page calls the API's handler in process with the user's token,
// so that the API's checks apply to it as to any client and its logic lives
// in one place. Its templates and stylesheet are embedded: it needs no
// network but the API's.
package ui

import (
	"crypto/rand"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/kjobs/kjobs/internal/api"
)

//go:embed templates static
var assets embed.FS

// Config is what the dashboard needs.
type Config struct {
	// API is the API's handler, which every page calls in process.
	// Required.
	API http.Handler
	// Auth checks the tokens people log in with, the API's own. Nil serves
	// the pages without a login, as the API then serves its routes without
	// a token: only the local stack on loopback runs so.
	Auth *api.Tokens
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// Server is the dashboard's HTTP handler, for the paths under /ui/.
type Server struct {
	cfg   Config
	mux   *http.ServeMux
	pages pages
	// localKey signs the CSRF tokens when there is no login, and so no
	// session to derive them from: the local stack is one process.
	localKey []byte
}

// Mount returns the handler of both the API and the dashboard: the paths
// /ui and /ui/... go to the dashboard, every other path to apiHandler.
func Mount(apiHandler http.Handler, cfg Config) http.Handler {
	cfg.API = apiHandler
	dashboard := New(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/") {
			dashboard.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
}

// New returns the dashboard's handler.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), pages: parsePages(), localKey: make([]byte, 32)}
	_, _ = rand.Read(s.localKey) // crypto/rand.Read never fails

	static, _ := fs.Sub(assets, "static") // a directory embedded above
	s.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /ui/login", s.loginForm)
	s.mux.HandleFunc("POST /ui/login", s.login)
	s.mux.HandleFunc("POST /ui/logout", s.action(s.logout))
	s.mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusSeeOther))
	s.mux.HandleFunc("GET /ui/{$}", s.page(s.overview))
	s.mux.HandleFunc("GET /ui/jobs", s.page(s.jobs))
	s.mux.HandleFunc("GET /ui/jobs/{id}", s.page(s.job))
	s.mux.HandleFunc("POST /ui/jobs/{id}/cancel", s.action(s.cancel))
	s.mux.HandleFunc("GET /ui/schedules", s.page(s.schedules))
	s.mux.HandleFunc("POST /ui/schedules/{id}/{verb}", s.action(s.scheduleAction))
	s.mux.HandleFunc("GET /ui/bindings", s.page(s.bindings))
	s.mux.HandleFunc("/ui/", s.page(s.notFound))
	return s
}

// ServeHTTP serves r with the security headers every answer carries: no
// script or style but the dashboard's own files, no framing (clickjacking),
// no sniffing, no Referer to other sites, and no page kept in a cache.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	s.mux.ServeHTTP(w, r)
}
