package dataplane

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/kjobs/kjobs/internal/testenv"
)

// TestSubscriberByClusterName: a Trigger's subscriber addressed by a
// cluster DNS name, as a Knative Service's is, receives events once the
// proxy routes that name to the host process (Eventing.Route); the route
// keeps the Host header, and a name without a route gets a 502.
func TestSubscriberByClusterName(t *testing.T) {
	t.Parallel()
	cfg, ns, eventing := setup(t)
	testenv.Broker(t, cfg, ns, "default", nil)
	subscriber := newSink(t, http.StatusOK, 0)
	u, err := url.Parse(subscriber.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	host := "kjobs-dispatcher." + ns + ".svc.cluster.local"
	eventing.Route(t, host, port)

	testenv.Trigger(t, cfg, ns, "default", "by-name", "http://"+host+"/events", nil)
	e := newEvent("dev.kjobs.test.by-name")
	if status, _ := send(t, eventing.BrokerURL(ns, "default"), e); !is2xx(status) {
		t.Fatalf("the ingress answered %d, want 2xx", status)
	}
	d := subscriber.next(t, "the subscriber behind "+host)
	checkEvent(t, d, e)
	if d.host != host || d.path != "/events" {
		t.Errorf("the subscriber got Host %q and path %q, want %q and /events", d.host, d.path, host)
	}

	proxy, err := url.Parse(eventing.Proxy)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	resp, err := client.Get("http://nothing." + ns + ".svc.cluster.local/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("a host without a route: %d %s, want 502", resp.StatusCode, body)
	}
}
