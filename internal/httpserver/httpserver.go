// Package httpserver runs an http.Server until its context ends, then shuts
// it down gracefully so that requests in flight finish.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Timeouts of a server. Zero fields take the defaults of New.
type Timeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Write      time.Duration
	Idle       time.Duration
	// Shutdown is how long requests in flight may take to finish once the
	// server is told to stop.
	Shutdown time.Duration
}

// Server is an http.Server with its graceful shutdown.
type Server struct {
	srv      *http.Server
	shutdown time.Duration
	log      *slog.Logger
}

// New returns a server for h. The defaults suit an API: 5 s to read
// headers, 30 s to read a request, 60 s to write the answer.
func New(h http.Handler, t Timeouts, log *slog.Logger) *Server {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, 5*time.Second)
	def(&t.Read, 30*time.Second)
	def(&t.Write, 60*time.Second)
	def(&t.Idle, 120*time.Second)
	def(&t.Shutdown, 30*time.Second)
	return &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: t.ReadHeader,
			ReadTimeout:       t.Read,
			WriteTimeout:      t.Write,
			IdleTimeout:       t.Idle,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		shutdown: t.Shutdown,
		log:      log,
	}
}

// Serve serves on l until ctx ends, then stops taking connections and waits
// for the requests in flight, at most the shutdown timeout.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("httpserver: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing requests in flight", "addr", l.Addr().String())
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("httpserver: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("httpserver: %w", err)
	}
	return nil
}
