package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"
)

// DataPlaneEnv names dataplane.json, which the control plane writes beside
// its kubeconfig: where Knative Eventing's data plane that runs as host
// processes listens (hack/controlplane).
const DataPlaneEnv = "KJOBS_DATAPLANE"

// The data plane's components, as Eventing.Stop and Eventing.Start take
// them. Each is one host process of the control plane.
const (
	// BrokerIngress is the MT channel-based Broker's ingress, which
	// senders POST events to.
	BrokerIngress = "broker-ingress"
	// BrokerFilter is the Broker's filter, which delivers events to the
	// Triggers' subscribers, with their retries and dead letters.
	BrokerFilter = "broker-filter"
	// ChannelDispatcher is the InMemoryChannel dispatcher between the
	// ingress and the filter. It always listens on :8080.
	ChannelDispatcher = "imc-dispatcher"
	// PingSourceAdapter sends the PingSources' events (mtping).
	PingSourceAdapter = "mtping"
	// EventingControllers are Knative Eventing's reconcilers (Brokers,
	// Triggers, channels, subscriptions, sources), in one process.
	EventingControllers = "knative-controllers"
)

// Eventing is Knative Eventing's data plane of the test control plane: an
// MT channel-based Broker on InMemoryChannels, Triggers and PingSources, run
// by Knative's own binaries. Its URLs are on 127.0.0.1.
type Eventing struct {
	// Ingress is the Broker ingress's base URL; see BrokerURL.
	Ingress string `json:"ingress"`
	// Filter is the Broker filter's base URL.
	Filter string `json:"filter"`
	// Dispatcher is the InMemoryChannel dispatcher's URL.
	Dispatcher string `json:"dispatcher"`
	// Proxy is the forward proxy that maps the cluster DNS names the data
	// plane uses (broker-ingress.knative-eventing.svc.cluster.local, ...)
	// to loopback ports; see Route.
	Proxy string `json:"proxy"`
	// Control is the control server's base URL.
	Control string `json:"control"`
	// Components are the names Stop and Start take.
	Components []string `json:"components"`
}

// DataPlane returns the data plane of the control plane `make test`
// starts. It fails the test when there is none.
func DataPlane(t testing.TB) *Eventing {
	t.Helper()
	path := os.Getenv(DataPlaneEnv)
	if path == "" {
		t.Fatalf("testenv: %s is not set: run the tests with `make test`, which starts a control plane with Knative Eventing's data plane, or start one with `go run ./hack/controlplane` and export %s=<the folder of the kubeconfig it prints>/dataplane.json", DataPlaneEnv, DataPlaneEnv)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testenv: reading %s: %v (is the control plane that wrote it still running?)", DataPlaneEnv, err)
	}
	var e Eventing
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("testenv: parsing %s (%s): %v", DataPlaneEnv, path, err)
	}
	if e.Ingress == "" || e.Control == "" {
		t.Fatalf("testenv: %s (%s) lacks the ingress's or the control server's URL: %s", DataPlaneEnv, path, raw)
	}
	return &e
}

// BrokerURL returns the loopback address events are POSTed to for a Broker.
// It is the Broker's status.address.url with the ingress's cluster DNS name
// replaced by its loopback address.
func (e *Eventing) BrokerURL(namespace, broker string) string {
	return e.Ingress + "/" + url.PathEscape(namespace) + "/" + url.PathEscape(broker)
}

// Stop kills a component of the data plane with SIGKILL and returns once it
// has exited. If the test has not started it again by its end, a cleanup
// does, so that the tests that come after find the data plane whole. Tests
// that stop components must not run in parallel with others that use the
// data plane: leave out t.Parallel().
func (e *Eventing) Stop(t testing.TB, component string) {
	t.Helper()
	e.stop(t, component, "KILL")
}

// Terminate is Stop with SIGTERM: the component shuts down gracefully (it
// is killed if that takes more than 10 s).
func (e *Eventing) Terminate(t testing.TB, component string) {
	t.Helper()
	e.stop(t, component, "TERM")
}

func (e *Eventing) stop(t testing.TB, component, signal string) {
	t.Helper()
	t.Cleanup(func() {
		status, body, err := e.post("/components/" + url.PathEscape(component) + "/start")
		if err != nil || (status != http.StatusOK && status != http.StatusConflict) {
			t.Errorf("testenv: starting %s again after the test: %s %v", component, body, err)
		}
	})
	e.call(t, "/components/"+url.PathEscape(component)+"/stop?signal="+signal)
}

// Start starts a component of the data plane that Stop stopped, on the same
// ports, and returns once it serves.
func (e *Eventing) Start(t testing.TB, component string) {
	t.Helper()
	e.call(t, "/components/"+url.PathEscape(component)+"/start")
}

// Route makes the proxy send the data plane's requests for host (a cluster
// DNS name such as kjobs-dispatcher.<namespace>.svc.cluster.local) to
// 127.0.0.1:port, until the test ends.
func (e *Eventing) Route(t testing.TB, host string, port int) {
	t.Helper()
	body, _ := json.Marshal(map[string]int{"port": port})
	status, answer, err := e.do(http.MethodPut, "/routes/"+url.PathEscape(host), body)
	if err != nil || status != http.StatusOK {
		t.Fatalf("testenv: routing %s to port %d: %s %v", host, port, answer, err)
	}
	t.Cleanup(func() {
		if status, answer, err := e.do(http.MethodDelete, "/routes/"+url.PathEscape(host), nil); err != nil || status != http.StatusOK {
			t.Errorf("testenv: removing the route of %s: %s %v", host, answer, err)
		}
	})
}

func (e *Eventing) call(t testing.TB, path string) {
	t.Helper()
	begin := time.Now()
	status, body, err := e.post(path)
	if err != nil {
		t.Fatalf("testenv: POST %s: %v", path, err)
	}
	if status != http.StatusOK {
		t.Fatalf("testenv: POST %s: %d %s", path, status, body)
	}
	t.Logf("testenv: POST %s: %s (%.1fs)", path, bytes.TrimSpace(body), time.Since(begin).Seconds())
}

func (e *Eventing) post(path string) (int, []byte, error) {
	return e.do(http.MethodPost, path, nil)
}

// controlClient talks to the control server directly, never through a
// proxy of the environment; a start waits up to a minute for readiness.
var controlClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}}

func (e *Eventing) do(method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, e.Control+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := controlClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("the control plane's control server: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}
