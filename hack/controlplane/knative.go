//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// systemNamespace is where Knative Eventing's own objects live.
const systemNamespace = "knative-eventing"

// The cluster DNS names of the Broker's ingress and filter, which the
// Broker's and Triggers' statuses carry and the proxy maps to loopback.
const (
	ingressHost = "broker-ingress." + systemNamespace + ".svc.cluster.local"
	filterHost  = "broker-filter." + systemNamespace + ".svc.cluster.local"
)

// dispatcherPort and dispatcherHTTPSPort are where Knative's in-memory
// channel dispatcher listens, on every interface, whatever it is told:
// they are constants in knative.dev/eventing v0.50.0
// pkg/reconciler/inmemorychannel/dispatcher/controller.go.
const (
	dispatcherPort      = 8080
	dispatcherHTTPSPort = 8443
)

// Names of the data plane's components, as the control server takes them.
// Each is one host process, logged to <name>.log.
const (
	ingressName     = "broker-ingress"      // the MT channel-based Broker's ingress
	filterName      = "broker-filter"       // its filter, which delivers to Triggers' subscribers
	dispatcherName  = "imc-dispatcher"      // the InMemoryChannel dispatcher
	mtpingName      = "mtping"              // the PingSource adapter
	controllersName = "knative-controllers" // Eventing's reconcilers, in one process
)

// eventingConfig are the files and folders of Knative Eventing's config/
// that the data plane needs, applied in this order: the namespace, the
// ConfigMaps its components read, their ServiceAccounts and RBAC, and the
// Deployments and Services whose readiness the reconcilers check (kwok
// runs their pods). Not the webhooks nor the webhook's or controllers'
// Deployments.
var eventingConfig = []string{
	"core/100-namespace.yaml",
	"core/configmaps",
	"core/200-*-serviceaccount.yaml",
	"core/roles",
	"core/deployments/pingsource-mt-adapter.yaml",
	"brokers/mt-channel-broker/roles",
	"brokers/mt-channel-broker/deployments/broker-ingress.yaml",
	"brokers/mt-channel-broker/deployments/broker-filter.yaml",
	"channels/in-memory-channel/configmaps/event-dispatcher.yaml",
	"channels/in-memory-channel/200-imc-*-serviceaccount.yaml",
	"channels/in-memory-channel/roles",
	"channels/in-memory-channel/deployments/dispatcher.yaml",
	"channels/in-memory-channel/deployments/dispatcher-service.yaml",
}

// imcCRD is the InMemoryChannel CRD, which is not among config/core/resources.
const imcCRD = "config/channels/in-memory-channel/resources/in-memory-channel.yaml"

// applyKnativeCRDs applies the CRDs of Knative Eventing (with the
// InMemoryChannel's) and Serving from their modules' own config folders, and
// waits until they are Established. No Knative webhook runs here, so CRDs
// that convert between versions through one are changed to convert by
// changing apiVersion only.
func (c *cluster) applyKnativeCRDs(ctx context.Context, eventing, serving string) error {
	// kubectl parses the YAML (Go's standard library has no parser) and
	// prints the CRDs as a stream of JSON objects; the server validates
	// them when they are applied.
	raw, err := c.kubectl(ctx, nil, "create", "--dry-run=client", "--validate=false", "-o=json",
		"-f", filepath.Join(eventing, "config/core/resources"),
		"-f", filepath.Join(eventing, imcCRD),
		"-f", filepath.Join(serving, "config/core/300-resources"))
	if err != nil {
		return err
	}
	var crds []map[string]any
	var names []string
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // re-encode numbers as they were, not as float64
	for {
		var crd map[string]any
		if err := dec.Decode(&crd); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("parsing the Knative CRDs: %v", err)
		}
		if spec, ok := crd["spec"].(map[string]any); ok {
			if conv, ok := spec["conversion"].(map[string]any); ok && conv["strategy"] == "Webhook" {
				spec["conversion"] = map[string]any{"strategy": "None"}
			}
		}
		crds = append(crds, crd)
		if meta, ok := crd["metadata"].(map[string]any); ok {
			names = append(names, fmt.Sprint(meta["name"]))
		}
	}
	if len(crds) == 0 {
		return errors.New("no Knative CRDs found")
	}
	patched, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": crds})
	if err != nil {
		return err
	}
	if _, err := c.kubectl(ctx, patched, "apply", "--server-side", "--field-manager=kjobs-controlplane", "-f", "-"); err != nil {
		return err
	}
	return c.waitEstablished(ctx, names)
}

// waitEstablished polls the apiserver until the named CRDs are Established.
// (kubectl wait takes ~0.1 s per CRD, one after the other.)
func (c *cluster) waitEstablished(ctx context.Context, names []string) error {
	pending := names
	for {
		body, err := get(c.api, c.server+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions", c.token)
		if err == nil {
			var list struct {
				Items []struct {
					Metadata struct{ Name string }
					Status   struct {
						Conditions []struct{ Type, Status string }
					}
				}
			}
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				return fmt.Errorf("listing CRDs: %v", err)
			}
			established := map[string]bool{}
			for _, crd := range list.Items {
				for _, cond := range crd.Status.Conditions {
					if cond.Type == "Established" && cond.Status == "True" {
						established[crd.Metadata.Name] = true
					}
				}
			}
			pending = slices.DeleteFunc(slices.Clone(names), func(name string) bool { return established[name] })
			if len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRDs not Established: %s: %w", strings.Join(pending, ", "), context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// applyEventingConfig applies eventingConfig from Knative Eventing's module
// folder.
func (c *cluster) applyEventingConfig(ctx context.Context, eventing string) error {
	args := []string{"apply", "--server-side", "--field-manager=kjobs-controlplane"}
	for _, p := range eventingConfig {
		paths, err := filepath.Glob(filepath.Join(eventing, "config", p))
		if err != nil || len(paths) == 0 {
			return fmt.Errorf("Knative Eventing's config/%s is missing from %s", p, eventing)
		}
		for _, path := range paths {
			args = append(args, "-f", path)
		}
	}
	_, err := c.kubectl(ctx, nil, args...)
	return err
}

// checkDispatcherPorts fails when the in-memory channel dispatcher's fixed
// ports are taken.
func checkDispatcherPorts() error {
	for _, port := range []int{dispatcherPort, dispatcherHTTPSPort} {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			return fmt.Errorf("port %d is taken (%v): Knative's in-memory channel dispatcher always listens on :%d and :%d "+
				"(constants in knative.dev/eventing v0.50.0 pkg/reconciler/inmemorychannel/dispatcher/controller.go), "+
				"so the control plane cannot run while something else holds them; see what does with `ss -ltnp 'sport = :%d'` "+
				"(another control plane, or a `make run`, whose PORT defaults to 8080)",
				port, err, dispatcherPort, dispatcherHTTPSPort, port)
		}
		l.Close()
	}
	return nil
}

// dataPlane is what dataplane.json, beside the kubeconfig, tells tests
// (internal/testenv reads it).
type dataPlane struct {
	// Ingress is the Broker ingress's base URL on loopback; a Broker's
	// address is Ingress/<namespace>/<broker>.
	Ingress string `json:"ingress"`
	// Filter is the Broker filter's base URL on loopback.
	Filter string `json:"filter"`
	// Dispatcher is the in-memory channel dispatcher's URL on loopback.
	Dispatcher string `json:"dispatcher"`
	// Proxy is the forward proxy the data plane's processes use.
	Proxy string `json:"proxy"`
	// Control is the control server's base URL (control.go).
	Control string `json:"control"`
	// Components are the names the control server takes.
	Components []string `json:"components"`
}

// startDataPlane starts the proxy, the control server and Knative
// Eventing's processes, waits until they serve and Knative's Deployments
// are Available, and writes dataplane.json.
func (c *cluster) startDataPlane(ctx context.Context, step func(string)) error {
	var err error
	if c.proxy, err = startProxy(filepath.Join(c.logs, "proxy.log"), dispatcherPort); err != nil {
		return fmt.Errorf("starting the proxy: %v", err)
	}
	ingressPort, ingressHTTPS := freePort(), freePort()
	filterPort, filterHTTPS := freePort(), freePort()
	c.proxy.route(ingressHost, ingressPort)
	c.proxy.route(filterHost, filterPort)

	// What every process of the data plane gets, from their Deployments'
	// env in config/, with a profiling port of its own (the pprof server
	// of knative.dev/pkg listens on :8008 by default).
	common := func(name string) []string {
		return []string{
			"SYSTEM_NAMESPACE=" + systemNamespace,
			"CONFIG_LOGGING_NAME=config-logging",
			"CONFIG_OBSERVABILITY_NAME=config-observability",
			"METRICS_DOMAIN=knative.dev/eventing",
			"POD_NAME=" + name,
			"CLUSTER_DOMAIN=cluster.local",
			"PROFILING_PORT=" + strconv.Itoa(freePort()),
			"KUBECONFIG=" + c.kubeconfig,
			"HTTP_PROXY=" + c.proxy.url,
			"http_proxy=" + c.proxy.url,
			"NO_PROXY=127.0.0.1,localhost",
			"no_proxy=127.0.0.1,localhost",
		}
	}
	kubeconfig := "--kubeconfig=" + c.kubeconfig
	bin := func(name string) string { return filepath.Join(c.tools, name) }
	services := []*service{
		{
			name: controllersName, bin: bin("knative-controllers"),
			args: []string{kubeconfig, "--disable-ha"},
			env: func() []string {
				env := common(controllersName)
				// Images of what these reconcilers would deploy: their
				// constructors require them, nothing here runs them.
				for _, name := range []string{
					"APISERVER_RA_IMAGE", "AUTH_PROXY_IMAGE", "EVENT_TRANSFORM_JSONATA_IMAGE", "DISPATCHER_IMAGE",
					"INTEGRATION_SOURCE_TIMER_IMAGE", "INTEGRATION_SOURCE_AWS_S3_IMAGE",
					"INTEGRATION_SOURCE_AWS_SQS_IMAGE", "INTEGRATION_SOURCE_AWS_DDB_STREAMS_IMAGE",
					"INTEGRATION_SINK_LOG_IMAGE", "INTEGRATION_SINK_AWS_S3_IMAGE",
					"INTEGRATION_SINK_AWS_SQS_IMAGE", "INTEGRATION_SINK_AWS_SNS_IMAGE",
				} {
					env = append(env, name+"=kjobs.invalid/not-run")
				}
				return env
			},
			ready: logSays("Starting controllers"),
		},
		{
			name: ingressName, bin: bin("ingress"),
			args: []string{kubeconfig},
			env: func() []string {
				return append(common(ingressName), "NAMESPACE="+systemNamespace, "CONTAINER_NAME=ingress", "METRICS_DOMAIN=knative.dev/internal/eventing",
					"INGRESS_PORT="+strconv.Itoa(ingressPort), "INGRESS_PORT_HTTPS="+strconv.Itoa(ingressHTTPS))
			},
			ready: probe(func() int { return ingressPort }),
			repick: func() {
				ingressPort, ingressHTTPS = freePort(), freePort()
				c.proxy.route(ingressHost, ingressPort)
			},
		},
		{
			name: filterName, bin: bin("filter"),
			args: []string{kubeconfig},
			env: func() []string {
				return append(common(filterName), "NAMESPACE="+systemNamespace, "CONTAINER_NAME=filter", "METRICS_DOMAIN=knative.dev/internal/eventing",
					"FILTER_PORT="+strconv.Itoa(filterPort), "FILTER_PORT_HTTPS="+strconv.Itoa(filterHTTPS))
			},
			ready: probe(func() int { return filterPort }),
			repick: func() {
				filterPort, filterHTTPS = freePort(), freePort()
				c.proxy.route(filterHost, filterPort)
			},
		},
		{
			name: dispatcherName, bin: bin("channel_dispatcher"),
			args: []string{kubeconfig, "--disable-ha"},
			env: func() []string {
				// NAMESPACE empty, whatever ours is: given one, the
				// dispatcher serves only that namespace's channels.
				return append(common(dispatcherName), "NAMESPACE=", "CONTAINER_NAME=dispatcher",
					"METRICS_DOMAIN=knative.dev/inmemorychannel-dispatcher",
					"MAX_IDLE_CONNS=1000", "MAX_IDLE_CONNS_PER_HOST=1000")
			},
			ready: probe(func() int { return dispatcherPort }),
		},
		{
			name: mtpingName, bin: bin("knative-mtping"),
			args: []string{kubeconfig, "--disable-ha"},
			env: func() []string {
				return append(common(mtpingName), "NAMESPACE="+systemNamespace, "K_SINK_TIMEOUT=-1", "K_OBSERVABILITY_CONFIG={}",
					"K_LOGGING_CONFIG=", "K_LEADER_ELECTION_CONFIG=", "K_NO_SHUTDOWN_AFTER=")
			},
			ready: logSays("Starting controller"),
		},
	}
	c.services = map[string]*service{}
	var starts []func() error
	for _, s := range services {
		c.services[s.name] = s
		starts = append(starts, reported(step, s.name+" ready", func() error { return c.startService(ctx, s) }))
	}
	// The reconcilers mark Brokers Ready only once these are Available.
	starts = append(starts, reported(step, "Knative Eventing's Deployments available", func() error {
		_, err := c.kubectl(ctx, nil, "wait", "--for=condition=Available", "--timeout=2m",
			"-n", systemNamespace, "deployment", "--all")
		return err
	}))
	if err := parallel(starts...); err != nil {
		return err
	}

	control, err := c.startControl()
	if err != nil {
		return err
	}
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = s.name
	}
	loopback := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	info, err := json.MarshalIndent(dataPlane{
		Ingress:    loopback(ingressPort),
		Filter:     loopback(filterPort),
		Dispatcher: loopback(dispatcherPort),
		Proxy:      c.proxy.url,
		Control:    control,
		Components: names,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.path("dataplane.json"), append(info, '\n'), 0o644)
}

// logSays is a ready check that passes once a run's log contains what.
func logSays(what string) func(*component) error {
	return func(comp *component) error {
		if !bytes.Contains(comp.output(), []byte(what)) {
			return fmt.Errorf("its log does not say %q yet", what)
		}
		return nil
	}
}

// probe is a ready check that passes once the component answers a
// kubelet's probe on the port: knative.dev/pkg's handlers answer a request
// whose User-Agent starts with kube-probe/ with their readiness.
func probe(port func() int) func(*component) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	return func(*component) error {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", port()), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/1.36")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		// As a kubelet's: 2xx and 3xx pass (the dispatcher answers 204).
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("probe answered %s", resp.Status)
		}
		return nil
	}
}
