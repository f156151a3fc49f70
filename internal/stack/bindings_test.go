package stack_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// send posts a CloudEvent to the in-process Broker's ingress, as curl or a
// source would: in binary mode when headers carry its attributes, in
// structured mode when body is the whole event.
func (c client) send(headers map[string]string, body string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.broker, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		c.t.Fatalf("the ingress answered %d, want 202", resp.StatusCode)
	}
}

// s3Headers are the binary-mode headers of an object-created event shaped
// like the AWS S3 source's, with an id that is no DNS label.
func s3Headers(id string) map[string]string {
	return map[string]string{
		"Ce-Specversion": "1.0", "Ce-Type": "com.amazonaws.s3.object-created", "Ce-Source": "arn:aws:s3:::photos",
		"Ce-Id": id, "Content-Type": "application/json",
	}
}

// waitEvent waits for the job of an event, which exists only once the
// ingress has delivered the event, to end.
func (c client) waitEvent(id string, within time.Duration) job.Job {
	c.t.Helper()
	var j job.Job
	c.eventually(within, func() bool {
		var raw json.RawMessage
		if c.do("GET", "/jobs/"+id, "", &raw) != http.StatusOK {
			return false
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			c.t.Fatal(err)
		}
		return j.Status.Terminal()
	})
	return j
}

func (c client) bound(name string) []job.Job {
	c.t.Helper()
	var page store.Page
	if code := c.do("GET", "/jobs?binding="+name, "", &page); code != http.StatusOK {
		c.t.Fatalf("GET /jobs?binding=%s: %d", name, code)
	}
	return page.Jobs
}

// TestBindings drives the README's "Run a function on any event" under
// make run's stack: an event of any source sent to the Broker's ingress
// runs its binding's function once however often it is sent, in either
// mode; an event no binding selects runs nothing; and a deleted binding
// selects nothing more.
func TestBindings(t *testing.T) {
	c := start(t)
	for _, b := range []string{
		`{"name":"uploads","filter":{"type":"com.amazonaws.s3.object-created"},"function":"echo"}`,
		`{"name":"pushes","filters":[{"prefix":{"source":"https://github.com/"}}],"function":"echo"}`,
	} {
		if code := c.do("POST", "/jobs/bindings", b, nil); code != http.StatusCreated {
			t.Fatalf("POST /jobs/bindings %s: %d", b, code)
		}
	}
	const id = "3f1c/2026-12-01T10:00:00Z#17"
	for range 5 {
		c.send(s3Headers(id), `{"key":"cat.png"}`)
	}
	c.send(map[string]string{"Content-Type": "application/cloudevents+json"},
		`{"specversion":"1.0","type":"com.amazonaws.s3.object-created","source":"arn:aws:s3:::photos","id":"`+id+`","data":{"key":"cat.png"}}`)

	want := event.JobID("uploads", "arn:aws:s3:::photos", id)
	j := c.waitEvent(want, 20*time.Second)
	if j.Status != job.Succeeded || len(j.Attempts) != 1 {
		t.Errorf("job %s: %s after %d attempts, want succeeded after 1", j.ID, j.Status, len(j.Attempts))
	}
	ref := job.EventRef{Source: "arn:aws:s3:::photos", ID: id, Type: "com.amazonaws.s3.object-created"}
	if j.Binding != "uploads" || j.Event == nil || *j.Event != ref {
		t.Errorf("job names binding %q and event %+v, want uploads and %+v", j.Binding, j.Event, ref)
	}
	// echo answers with what its function was given: the whole event.
	if len(j.Attempts) > 0 {
		msg := j.Attempts[0].Message
		for _, want := range []string{`"id":"` + id + `"`, `"source":"arn:aws:s3:::photos"`, `"data":{"key":"cat.png"}`} {
			if !strings.Contains(msg, want) {
				t.Errorf("echo's message %s does not hold %s", msg, want)
			}
		}
	}

	// An event too large for the environment reaches the function in a
	// file.
	big := `{"key":"` + strings.Repeat("x", 40<<10) + `"}`
	c.send(s3Headers("big"), big)
	j = c.waitEvent(event.JobID("uploads", "arn:aws:s3:::photos", "big"), 20*time.Second)
	if j.Status != job.Succeeded || !strings.HasPrefix(j.Attempts[0].Message, `{"args":{},"event":{"specversion":"1.0","id":"big"`) {
		t.Errorf("the job of a large event: %s, %.200s", j.Status, j.Attempts[0].Message)
	}

	// Not selected: another type for uploads, another source for pushes.
	c.send(map[string]string{"Ce-Specversion": "1.0", "Ce-Type": "com.example.other", "Ce-Source": "/elsewhere", "Ce-Id": "1"}, "")
	if code := c.do("DELETE", "/jobs/bindings/uploads", "", nil); code != http.StatusNoContent {
		t.Fatalf("DELETE /jobs/bindings/uploads: %d", code)
	}
	c.send(s3Headers("after the delete"), `{"key":"dog.png"}`)
	// The ingress routes an event as it takes it, so once this later event
	// has run, the ones before it that were routed anywhere have been too.
	c.send(map[string]string{"Ce-Specversion": "1.0", "Ce-Type": "com.github.push", "Ce-Source": "https://github.com/kjobs/kjobs", "Ce-Id": "sentinel"}, "")
	c.waitEvent(event.JobID("pushes", "https://github.com/kjobs/kjobs", "sentinel"), 20*time.Second)

	if got := c.bound("uploads"); len(got) != 2 || got[1].ID != want {
		t.Errorf("GET /jobs?binding=uploads lists %d jobs, want %s and the large event's", len(got), want)
	}
	if got := c.bound("pushes"); len(got) != 1 {
		t.Errorf("GET /jobs?binding=pushes lists %d jobs, want 1", len(got))
	}
	if st := c.stats(); st.Succeeded != 3 || st.Failed != 0 || st.Queued+st.Running+st.Retrying != 0 {
		t.Errorf("stats %+v, want 3 succeeded and nothing else", st)
	}
}

// TestIngressRefuses checks what the ingress answers to what is not a
// CloudEvent it can take.
func TestIngressRefuses(t *testing.T) {
	c := start(t)
	for _, tc := range []struct {
		name, method string
		headers      map[string]string
		body         string
		want         int
	}{
		{"not a CloudEvent", "POST", map[string]string{"Content-Type": "application/json"}, `{"key":"cat.png"}`, http.StatusBadRequest},
		{"no id", "POST", map[string]string{"Ce-Specversion": "1.0", "Ce-Type": "t", "Ce-Source": "/s"}, "", http.StatusBadRequest},
		{"larger than a delivery may be", "POST", s3Headers("big"), `"` + strings.Repeat("x", 256<<10) + `"`, http.StatusRequestEntityTooLarge},
		{"not a POST", "GET", nil, "", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, c.broker, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("answered %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
