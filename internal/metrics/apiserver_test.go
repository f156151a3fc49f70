package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, path   string
		verb, resource string
	}{
		{"GET", "/apis/batch/v1/namespaces/kjobs/jobs?labelSelector=a%3Db", "list", "jobs"},
		{"GET", "/apis/batch/v1/namespaces/kjobs/jobs?watch=true&resourceVersion=1", "watch", "jobs"},
		{"GET", "/apis/batch/v1/namespaces/kjobs/jobs/kjobs-0190-1", "get", "jobs"},
		{"POST", "/apis/batch/v1/namespaces/kjobs/jobs", "create", "jobs"},
		{"DELETE", "/apis/batch/v1/namespaces/kjobs/jobs/kjobs-0190-1", "delete", "jobs"},
		{"DELETE", "/apis/batch/v1/namespaces/kjobs/jobs", "deletecollection", "jobs"},
		{"GET", "/api/v1/namespaces/kjobs/pods/kjobs-0190-1-abcde/log?follow=true", "get", "pods/log"},
		{"PATCH", "/apis/sources.knative.dev/v1/namespaces/kjobs/pingsources/kjobs-schedule-x", "patch", "pingsources"},
		{"PUT", "/apis/eventing.knative.dev/v1/namespaces/kjobs/triggers/t/status", "update", "triggers/status"},
		{"GET", "/api/v1/namespaces/kjobs", "get", "namespaces"},
		{"GET", "/api/v1/namespaces", "list", "namespaces"},
		{"GET", "/version", "get", "nonresource"},
		{"GET", "/apis/batch/v1", "get", "nonresource"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			verb, resource := request(r)
			if verb != tc.verb || resource != tc.resource {
				t.Errorf("request = %s %s, want %s %s", verb, resource, tc.verb, tc.resource)
			}
		})
	}
}

// TestAPIServer counts a refused request and a failed one, and neither an
// answer kjobs expects nor a success.
func TestAPIServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/apis/batch/v1/namespaces/n/jobs/gone":
			w.WriteHeader(http.StatusNotFound)
		case "/apis/batch/v1/namespaces/n/jobs/broken":
			w.WriteHeader(http.StatusInternalServerError)
		case "/api/v1/namespaces/n/pods/p/log":
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	c := Register(reg)
	client := &http.Client{Transport: c.APIServer(http.DefaultTransport)}
	for _, path := range []string{
		"/apis/batch/v1/namespaces/n/jobs/gone", "/apis/batch/v1/namespaces/n/jobs/broken",
		"/api/v1/namespaces/n/pods/p/log", "/apis/batch/v1/namespaces/n/jobs",
	} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A watch its caller stops is no failure; one the server cuts is.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/apis/batch/v1/namespaces/n/jobs?watch=true", nil)
	if _, err := client.Do(req); err == nil {
		t.Fatal("a request with a canceled context succeeded")
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if _, err := client.Get(gone.URL + "/api/v1/namespaces/n/pods?watch=1"); err == nil {
		t.Fatal("a request to a closed server succeeded")
	}
	for _, tc := range []struct {
		verb, resource string
		want           float64
	}{
		{"watch", "pods", 1},
		{"watch", "jobs", 0},
		{"get", "jobs", 1},
		{"get", "pods/log", 1},
		{"list", "jobs", 0},
	} {
		if got := testutil.ToFloat64(c.apiserver.WithLabelValues(tc.verb, tc.resource)); got != tc.want {
			t.Errorf("kjobs_apiserver_errors_total{verb=%q,resource=%q} = %v, want %v", tc.verb, tc.resource, got, tc.want)
		}
	}
}
