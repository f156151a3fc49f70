package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/metrics"
	"github.com/kjobs/kjobs/internal/testenv"
)

// dashboard is the Grafana dashboard's JSON, to the panels' expressions.
type dashboard struct {
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// clientErrors returns the families of the client error counters after a
// failed Redis command and a failed API server request: a stack under the
// local runner, on a healthy Redis, has neither.
func clientErrors(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := metrics.Register(reg)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), MaxRetries: -1})
	defer rdb.Close()
	rdb.AddHook(c.Redis())
	_ = rdb.Ping(context.Background()).Err()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer srv.Close()
	resp, err := (&http.Client{Transport: c.APIServer(http.DefaultTransport)}).Get(srv.URL + "/apis/batch/v1/namespaces/kjobs/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range families {
		out[f.GetName()] = f
	}
	return out
}

// checkDashboard checks that every expression of hack/grafana/kjobs.json
// names only metrics that families has (a histogram's by its _bucket, _sum
// or _count series), and that every kjobs_ metric is on a panel.
func checkDashboard(t *testing.T, families map[string]*dto.MetricFamily) {
	t.Helper()
	data, err := os.ReadFile("../../hack/grafana/kjobs.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("hack/grafana/kjobs.json: %v", err)
	}
	exists := func(name string) bool {
		if families[name] != nil {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f := families[strings.TrimSuffix(name, suffix)]; strings.HasSuffix(name, suffix) && f != nil &&
				(f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY && suffix != "_bucket") {
				return true
			}
		}
		return false
	}
	used := map[string]bool{}
	var check func([]panel)
	check = func(panels []panel) {
		for _, p := range panels {
			check(p.Panels)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, target := range p.Targets {
				names, err := metricNames(target.Expr)
				if err != nil {
					t.Errorf("panel %q: %v", p.Title, err)
					continue
				}
				if len(names) == 0 {
					t.Errorf("panel %q: %q names no metric", p.Title, target.Expr)
				}
				for _, name := range names {
					if !exists(name) {
						t.Errorf("panel %q: %q names %s, which no kjobs process exports", p.Title, target.Expr, name)
					}
					used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
				}
			}
		}
	}
	check(d.Panels)
	var unused []string
	for name := range families {
		if strings.HasPrefix(name, "kjobs_") && !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Errorf("no panel shows %v", unused)
	}
}
