package stack_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
)

// get answers GET path with its status, Content-Type and body.
func (c client) get(path string) (int, string, string) {
	c.t.Helper()
	resp, err := http.Get(c.url + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// TestLogs reads attempts' logs through the API of the local stack, where
// they are what the processor wrote to stdout and stderr.
func TestLogs(t *testing.T) {
	t.Parallel()
	c := start(t)
	id := c.submit(`{"function":"flaky","args":{"failures":"1"}}`)
	if j := c.wait(id, 30*time.Second); j.Status != job.Succeeded || len(j.Attempts) != 2 {
		t.Fatalf("job = %+v, want succeeded on its second attempt", j)
	}
	// What the processor logs of each attempt's end.
	failed := `"error":"attempt 1 failed on purpose (failures=1)"`
	succeeded := `"result":"attempt 2 succeeded (failures=1)"`
	tests := []struct {
		name, path string
		code       int
		// want is in the log, or is the problem's type.
		want, notWant string
	}{
		{"latest attempt", "/jobs/" + id + "/logs", 200, succeeded, failed},
		{"attempt 1", "/jobs/" + id + "/logs?attempt=1", 200, failed, succeeded},
		{"attempt 2, followed once ended", "/jobs/" + id + "/logs?attempt=2&follow=true", 200, succeeded, failed},
		{"not followed", "/jobs/" + id + "/logs?follow=false", 200, succeeded, failed},
		{"no such attempt", "/jobs/" + id + "/logs?attempt=99", 404, problem.NotFound.Type(), ""},
		{"attempt not a number", "/jobs/" + id + "/logs?attempt=x", 400, problem.InvalidParameter.Type(), ""},
		{"attempt 0", "/jobs/" + id + "/logs?attempt=0", 400, problem.InvalidParameter.Type(), ""},
		{"follow not a boolean", "/jobs/" + id + "/logs?follow=yes", 400, problem.InvalidParameter.Type(), ""},
		{"unknown parameter", "/jobs/" + id + "/logs?tail=10", 400, problem.InvalidParameter.Type(), ""},
		{"unknown job", "/jobs/0190a8c4-0000-7000-8000-000000000000/logs", 404, problem.NotFound.Type(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, typ, body := c.get(tt.path)
			if code != tt.code {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, code, body, tt.code)
			}
			if code != 200 {
				var d problem.Details
				if err := json.Unmarshal([]byte(body), &d); err != nil || typ != problem.ContentType || d.Type != tt.want {
					t.Errorf("GET %s = %s %s, want a problem of type %s", tt.path, typ, body, tt.want)
				}
				return
			}
			if typ != "text/plain; charset=utf-8" || !strings.Contains(body, tt.want) || strings.Contains(body, tt.notWant) {
				t.Errorf("GET %s = %s %q, want text with %s and without %s", tt.path, typ, body, tt.want, tt.notWant)
			}
		})
	}
}

// TestFollowLogs follows the log of a running job: its lines come while it
// runs, and the answer ends when the job does.
func TestFollowLogs(t *testing.T) {
	t.Parallel()
	c := start(t)
	id := c.submit(`{"function":"sleep","args":{"seconds":"2"}}`)
	if code, _, body := c.get("/jobs/" + id + "/logs?follow=true"); code != 404 && code != 200 {
		t.Fatalf("GET of a job's log before its first attempt = %d %s, want 404, or 200 once it started", code, body)
	}
	var j job.Job
	c.eventually(10*time.Second, func() bool {
		c.do("GET", "/jobs/"+id, "", &j)
		return len(j.Attempts) > 0
	})
	resp, err := http.Get(c.url + "/jobs/" + id + "/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET ?follow=true = %d", resp.StatusCode)
	}
	log := bufio.NewReader(resp.Body)
	first, err := log.ReadString('\n')
	if err != nil || !strings.Contains(first, `"msg":"starting function"`) {
		t.Fatalf("first followed line = %q, %v; want the processor's start", first, err)
	}
	if c.do("GET", "/jobs/"+id, "", &j); j.Status.Terminal() {
		t.Errorf("first line came once the job had %s, want while it ran", j.Status)
	}
	rest, err := io.ReadAll(log)
	if err != nil || !strings.Contains(string(rest), `"result":"slept 2s"`) {
		t.Errorf("rest of the followed log = %q, %v; want the processor's success", rest, err)
	}
	// The attempt has ended; the job is recorded so a moment later.
	c.wait(id, 5*time.Second)
}
