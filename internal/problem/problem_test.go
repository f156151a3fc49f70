package problem_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/problem"
)

func TestWriteField(t *testing.T) {
	rec := httptest.NewRecorder()
	problem.WriteField(rec, httptest.NewRequest("POST", "/jobs", nil), problem.InvalidCron, "cron", "expected 5 to 6 fields")
	if got := rec.Header().Get("Content-Type"); got != problem.ContentType {
		t.Errorf("Content-Type = %q, want %q", got, problem.ContentType)
	}
	if rec.Code != 400 {
		t.Errorf("status = %d, want 400", rec.Code)
	}
	var got problem.Details
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := problem.Details{Type: "https://kjobs.dev/problems/invalid-cron", Title: "The cron schedule is invalid",
		Status: 400, Detail: "expected 5 to 6 fields", Instance: "/jobs", Field: "cron"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problem (-want +got):\n%s", diff)
	}
}
