package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kjobs/kjobs/internal/api"
	localschedule "github.com/kjobs/kjobs/internal/schedule/local"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// BenchmarkCreateJob measures POST /jobs through the handler, on a real
// redis-server, without the network: the cost kjobs adds per accepted job.
// hack/bench/run.sh measures it over HTTP against a bare handler.
func BenchmarkCreateJob(b *testing.B) {
	rdb := testenv.Redis(b)
	sender := &recorder{}
	h := api.New(api.Config{Store: store.New(rdb, store.Options{}), Sender: discard{}, Schedules: localschedule.New(sender)})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/jobs", strings.NewReader(`{"function":"sleep","args":{"seconds":"1"}}`))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

// BenchmarkStats measures GET /jobs/stats through the handler.
func BenchmarkStats(b *testing.B) {
	rdb := testenv.Redis(b)
	h := api.New(api.Config{Store: store.New(rdb, store.Options{}), Sender: discard{}, Schedules: localschedule.New(discard{})})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/jobs/stats", nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
