package api_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

// TestHistory ends a job succeeded and one failed and reads them back in
// the current minute of GET /jobs/stats/history, behind the token.
func TestHistory(t *testing.T) {
	e := setup(t, true)
	st := store.New(e.rdb, store.Options{})
	ctx := context.Background()
	auth := map[string]string{"Authorization": "Bearer " + token}
	for _, outcome := range []job.Outcome{job.OutcomeSucceeded, job.OutcomeFailed} {
		resp, body := e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, auth})
		var j job.Job
		if err := json.Unmarshal(body, &j); err != nil || resp.StatusCode != 202 {
			t.Fatalf("POST /jobs: %d %s", resp.StatusCode, body)
		}
		if _, err := st.Start(ctx, j.ID, job.Attempt{Attempt: 1, Outcome: job.OutcomeRunning}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Finish(ctx, j.ID, job.Attempt{Attempt: 1, Outcome: outcome}); err != nil {
			t.Fatal(err)
		}
		if outcome == job.OutcomeFailed {
			if _, err := st.DeadLetter(ctx, j.ID, "no retry left"); err != nil {
				t.Fatal(err)
			}
		}
	}

	if resp, body := e.do(t, request{"GET", "/jobs/stats/history", "", nil}); resp.StatusCode != 401 {
		t.Errorf("without a token: %d %s, want 401", resp.StatusCode, body)
	}
	before := time.Now().UTC().Truncate(time.Minute)
	resp, body := e.do(t, request{"GET", "/jobs/stats/history", "", auth})
	after := time.Now().UTC().Truncate(time.Minute)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /jobs/stats/history: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var h api.History
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Minutes) != 60 {
		t.Fatalf("%d minutes, want 60: %s", len(h.Minutes), body)
	}
	var sum job.Minute
	for i, m := range h.Minutes {
		if i > 0 && m.At.Sub(h.Minutes[i-1].At) != time.Minute {
			t.Errorf("minute %d at %v follows %v: want one minute apart, oldest first", i, m.At, h.Minutes[i-1].At)
		}
		sum.Succeeded += m.Succeeded
		sum.Failed += m.Failed
	}
	if last := h.Minutes[59].At; last.Before(before) || last.After(after) || last.Location() != time.UTC {
		t.Errorf("last minute %v, want the current minute in UTC (%v)", last, before)
	}
	if sum.Succeeded != 1 || sum.Failed != 1 {
		t.Errorf("the hour counts %d succeeded and %d failed, want 1 and 1", sum.Succeeded, sum.Failed)
	}
}
