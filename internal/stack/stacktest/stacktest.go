// Package stacktest runs the local stack of `make run` for the tests of
// the packages that drive it over HTTP: the stack's own, the CLI's and the
// dashboard's.
package stacktest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/stack"
	"github.com/kjobs/kjobs/internal/testenv"
)

// Stack is a local stack that runs until its test ends.
type Stack struct {
	// API is the URL of the API and the dashboard.
	API string
	// Broker is the URL of the in-process Broker's ingress.
	Broker string
}

// Start runs the local stack until the test ends, on a redis-server of the
// test's own, with processor as the local runner's binary, and returns once
// its API is ready. Each option changes the stack's configuration first.
func Start(t testing.TB, processor string, options ...func(*stack.Config)) Stack {
	t.Helper()
	api, broker := listen(t), listen(t)
	cfg := stack.Config{
		Host: "127.0.0.1", RedisURL: "redis://" + testenv.RedisAddr(t), Retention: time.Hour,
		Runner: stack.RunnerLocal, Processor: processor, JobDeadline: time.Minute, SweepAfter: time.Minute,
	}
	for _, o := range options {
		o(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stack.Run(ctx, cfg, stack.Listeners{API: api, Broker: broker}, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stack.Run: %v", err)
		}
	})
	s := Stack{API: "http://" + api.Addr().String(), Broker: "http://" + broker.Addr().String()}
	const within = 10 * time.Second
	for deadline := time.Now().Add(within); !ready(s.API); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stacktest: the stack at %s is not ready after %v", s.API, within)
		}
	}
	return s
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ready reports whether the API at url answers /readyz with 200.
func ready(url string) bool {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
