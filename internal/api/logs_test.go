package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kjobs/kjobs/internal/api"
	localbinding "github.com/kjobs/kjobs/internal/binding/local"
	"github.com/kjobs/kjobs/internal/httpserver"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/runner/local"
	localschedule "github.com/kjobs/kjobs/internal/schedule/local"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestLogs serves attempts' logs from a local runner whose processor is a
// shell script, behind a server whose write timeout is shorter than the
// attempt, as the API's real server's is shorter than a long job.
func TestLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testenv.Redis(t), store.Options{})
	processor := filepath.Join(t.TempDir(), "processor.sh")
	if err := os.WriteFile(processor, []byte("#!/bin/sh\necho one; sleep 2; echo two >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := local.New(local.Config{Processor: processor, Dir: t.TempDir()})
	t.Cleanup(r.Close)
	withLogs, noLogs := serveLogs(t, st, r), serveLogs(t, st, nil)
	unreadable := serveLogs(t, st, failingLogs{errors.New(`Get "https://10.0.0.7:10250/containerLogs/kjobs/p/processor": no route to host`)})

	// ran has attempt 1 running; fresh has no attempt yet; forgotten has an
	// attempt that this runner never ran, as after a restart.
	ran, fresh, forgotten := newJob(t, st), newJob(t, st), newJob(t, st)
	a, err := r.Start(ctx, runner.Spec{JobID: ran, Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	for id, a := range map[string]job.Attempt{ran: a, forgotten: {Attempt: 1, Job: runner.Name(forgotten, 1), StartedAt: time.Now(), Outcome: job.OutcomeRunning}} {
		if _, err := st.Start(ctx, id, a); err != nil {
			t.Fatal(err)
		}
	}

	// Followed, the log lasts as long as the attempt, past the server's
	// write timeout.
	start := time.Now()
	code, typ, body := get(t, withLogs+"/jobs/"+ran+"/logs?follow=true")
	if code != 200 || typ != "text/plain; charset=utf-8" || body != "one\ntwo\n" {
		t.Errorf("GET ?follow=true = %d %s %q, want the whole log", code, typ, body)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("GET ?follow=true took %v, want it to last until the attempt's end", took)
	}

	tests := []struct {
		name, url string
		code      int
		// want is the log, or the problem's type.
		want  string
		field string
	}{
		{"ended attempt", withLogs + "/jobs/" + ran + "/logs", 200, "one\ntwo\n", ""},
		{"attempt by number", withLogs + "/jobs/" + ran + "/logs?attempt=1&follow=false", 200, "one\ntwo\n", ""},
		{"no such attempt", withLogs + "/jobs/" + ran + "/logs?attempt=2", 404, problem.NotFound.Type(), "attempt"},
		{"no attempt yet", withLogs + "/jobs/" + fresh + "/logs", 404, problem.NotFound.Type(), ""},
		{"attempt the runner does not know", withLogs + "/jobs/" + forgotten + "/logs", 410, problem.LogGone.Type(), ""},
		{"no logs kept", noLogs + "/jobs/" + ran + "/logs", 410, problem.LogGone.Type(), ""},
		{"the runner cannot read it", unreadable + "/jobs/" + ran + "/logs", 502, problem.LogUnavailable.Type(), ""},
		{"unknown job", withLogs + "/jobs/0199a6a0-0000-7000-8000-000000000000/logs", 404, problem.NotFound.Type(), ""},
		{"malformed job id", withLogs + "/jobs/NOT_AN_ID/logs", 404, problem.NotFound.Type(), ""},
		{"attempt not a number", withLogs + "/jobs/" + ran + "/logs?attempt=x", 400, problem.InvalidParameter.Type(), "attempt"},
		{"attempt -1", withLogs + "/jobs/" + ran + "/logs?attempt=-1", 400, problem.InvalidParameter.Type(), "attempt"},
		{"follow not a boolean", withLogs + "/jobs/" + ran + "/logs?follow=1", 400, problem.InvalidParameter.Type(), "follow"},
		{"unknown parameter", withLogs + "/jobs/" + ran + "/logs?since=1h", 400, problem.InvalidParameter.Type(), "since"},
		{"unknown route under a job", withLogs + "/jobs/" + ran + "/output", 404, problem.NotFound.Type(), ""},
		{"a job's route with another method", withLogs + "/jobs/" + ran + "/cancel", 405, problem.MethodNotAllowed.Type(), ""},
		// The paths the log route shares with the schedules' and bindings'
		// stay theirs.
		{"schedule named logs", withLogs + "/jobs/schedule/logs", 404, problem.NotFound.Type(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, typ, body := get(t, tt.url)
			if code != tt.code {
				t.Fatalf("GET = %d %s, want %d", code, body, tt.code)
			}
			if code == 200 {
				if body != tt.want {
					t.Errorf("GET = %q, want %q", body, tt.want)
				}
				return
			}
			if strings.Contains(body, "10.0.0.7") {
				t.Errorf("GET = %s, which names a node's address", body)
			}
			var d problem.Details
			if err := json.Unmarshal([]byte(body), &d); err != nil || typ != problem.ContentType || d.Type != tt.want || d.Field != tt.field || d.Detail == "" {
				t.Errorf("GET = %s %s, want a problem of type %s about %q", typ, body, tt.want, tt.field)
			}
		})
	}
}

// failingLogs fails to open any log, as the kube reader does when the
// apiserver cannot reach the pod's kubelet.
type failingLogs struct{ err error }

func (f failingLogs) Open(context.Context, string, int, bool) (io.ReadCloser, error) {
	return nil, f.err
}

// TestLogsBinding checks that a binding named "logs" is still served at
// the path the log route shares with it.
func TestLogsBinding(t *testing.T) {
	e := setup(t, false)
	if resp, body := e.do(t, request{"POST", "/jobs/bindings", `{"name":"logs","function":"echo","filter":{"type":"com.example.log"}}`, nil}); resp.StatusCode != 201 {
		t.Fatalf("POST /jobs/bindings = %d %s", resp.StatusCode, body)
	}
	resp, body := e.do(t, request{"GET", "/jobs/bindings/logs", "", nil})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"logs"`) {
		t.Errorf("GET /jobs/bindings/logs = %d %s, want the binding", resp.StatusCode, body)
	}
}

// serveLogs serves the API with logs on a real server whose write timeout
// is half a second, and returns its URL.
func serveLogs(t *testing.T, st *store.Store, logs runner.Logs) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httpserver.New(validating(t, false, api.New(api.Config{
		Store: st, Sender: discard{}, Schedules: localschedule.New(discard{}), Bindings: localbinding.New(), Logs: logs, Log: log,
	})),
		httpserver.Timeouts{Write: 500 * time.Millisecond}, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + l.Addr().String()
}

// newJob creates a job in st and returns its ID.
func newJob(t *testing.T, st *store.Store) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	if _, _, err := st.Create(context.Background(), id, job.Request{Function: "echo"}, ""); err != nil {
		t.Fatal(err)
	}
	return id
}

// get answers GET url with its status, Content-Type and body.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}
