package delivery

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
)

// TestHTTPSenderOutcome checks how HTTPSender tells a send that certainly
// failed from one whose outcome is unknown, against real HTTP servers.
func TestHTTPSenderOutcome(t *testing.T) {
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}
	serve := func(h http.HandlerFunc) func(t *testing.T) string {
		return func(t *testing.T) string {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			return srv.URL
		}
	}
	tests := []struct {
		name        string
		target      func(t *testing.T) string
		wantErr     bool
		wantNotSent bool
	}{
		{"accepted", serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }), false, false},
		{"connection refused", refused, true, true},
		{"broker answers 500", serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }), true, true},
		{"broker answers 404", serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }), true, true},
		{"no answer after the request was written", serve(func(_ http.ResponseWriter, r *http.Request) {
			// Reading the body lets the server notice the client leaving.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}), true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewHTTPSender(tc.target(t))
			if err != nil {
				t.Fatal(err)
			}
			e, err := event.NewRequested("0199a6a0-0000-7000-8000-000000000001", job.Request{Function: "echo"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err = s.Send(ctx, e)
			if (err != nil) != tc.wantErr || errors.Is(err, event.ErrNotSent) != tc.wantNotSent {
				t.Errorf("Send = %v; want error %v, ErrNotSent %v", err, tc.wantErr, tc.wantNotSent)
			}
		})
	}
}

// TestHTTPSenderReusesConnections: concurrent sends, as a burst of POST
// /jobs makes them, share kept-alive connections to the Broker instead of
// dialling one per event. With 32 senders at once the transport never
// needs more than 32 connections, however many rounds they send.
func TestHTTPSenderReusesConnections(t *testing.T) {
	const senders, rounds = 32, 20
	var dialled atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s, err := NewHTTPSender(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e, err := event.NewRequested("0199a6a0-0000-7000-8000-000000000001", job.Request{Function: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range rounds {
		var wg sync.WaitGroup
		for range senders {
			wg.Go(func() {
				if err := s.Send(ctx, e); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if n := dialled.Load(); n > senders {
		t.Errorf("%d sends from %d senders at once opened %d connections, want at most %d", senders*rounds, senders, n, senders)
	}
}
