//go:build linux

package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The -kjobs mode (make cluster): once the control plane and Knative
// Eventing's data plane run, kjobs is installed on it from
// kustomize/overlays/dev, and what Knative Serving would run (it does not
// run here) runs as host processes: the API and the dispatcher, built from
// the working tree, with the environment their Knative Services give them,
// and the identity of their ServiceAccounts. Redis is a redis-server on
// loopback instead of the overlay's Deployment. What Knative's webhooks and
// Serving would do is done by hand:
//
//   - ko:// images become kjobsImage: kwok runs no image;
//   - the Broker gets the spec.config and spec.delivery Eventing's webhook
//     defaults from config-br-defaults; the Triggers the broker label and
//     the namespaces of their refs, and are created once the Broker is
//     Ready (a Trigger created with its Broker can stay NoAddress), nudged
//     until they are Ready;
//   - each Knative Service gets the status Serving would give it (Ready, its
//     cluster-local URL as url and address), and the proxy sends that URL's
//     host to the host process, so that the Broker's filter, which resolves
//     the Triggers' subscriber and dead-letter refs to those addresses,
//     delivers to the host dispatcher;
//   - K_SINK, which a SinkBinding would inject, is the Broker's
//     status.address.url on the ingress's loopback port.
//
// kjobs-functions gets an entry for "fail" whose pods kwok's chaos stage
// fails with exit code 1, and kwok-sleep.yaml makes "sleep" pods run for
// their seconds argument; every other pod succeeds at once.

//go:embed kwok-sleep.yaml
var kwokSleepStage []byte

const (
	kjobsNamespace  = "kjobs"
	kjobsOverlay    = "kustomize/overlays/dev"
	kjobsBroker     = "kjobs"
	apiService      = "kjobs-api"
	dispatcherKsvc  = "kjobs-dispatcher"
	kjobsManager    = "kjobs-cluster" // the field manager of what this mode applies and patches
	brokerLabel     = "eventing.knative.dev/broker"
	brokerClassAnno = "eventing.knative.dev/broker.class"
	// chaosLabel selects kwok's pod-container-running-failed stage, which
	// fails a pod with the exit code, reason and message of its
	// annotations (the label plus /exit-code, ...). kwok writes reason and
	// message into YAML unquoted: neither may contain ": ".
	chaosLabel   = "pod-container-running-failed.stage.kwok.x-k8s.io"
	chaosMessage = "fail under make cluster (kwok's chaos stage failed this pod; no processor runs here)"
	// tokenDuration is how long the ServiceAccount tokens of the host
	// processes last: longer than anyone keeps make cluster running.
	tokenDuration = "8760h"
)

// brokerDefaults is what Knative Eventing's webhook sets on a Broker
// without spec.config and spec.delivery, from config-br-defaults as
// Eventing's config/core/configmaps/default-broker.yaml ships it (the one
// the control plane applies): BrokerSpec.SetDefaults in knative.dev/eventing
// v0.50.0 pkg/apis/eventing/v1/broker_defaults.go.
var brokerDefaults = map[string]any{
	"config": map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"name": "config-br-default-channel", "namespace": systemNamespace,
	},
	"delivery": map[string]any{"retry": 10, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"},
}

// kjobsImage is what a ko:// image reference becomes.
func kjobsImage(ref string) string {
	return "kjobs.invalid/" + filepath.Base(strings.TrimPrefix(ref, "ko://")) + ":not-built"
}

type object = map[string]any

// kjobs is the -kjobs mode's state.
type kjobs struct {
	c       *cluster
	root    string // the repository's
	port    int    // the API's
	bin     string // where the API's and the dispatcher's binaries are built
	built   chan error
	redis   string // redis-server's path
	dp      dataPlane
	sinkURL string // the Broker's address on loopback

	objs     []object // the overlay's objects, as applied
	triggers []object // applied once the Broker is Ready
	secrets  map[string]map[string][]byte
}

// prepareKjobs checks what the -kjobs mode needs before the control plane
// starts, adds kjobs' kwok stage (which a kwok that runs already does not
// load), and starts building the API and the dispatcher from the
// repository at root.
func (c *cluster) prepareKjobs(root string, port int) (*kjobs, error) {
	if _, err := os.Stat(filepath.Join(root, kjobsOverlay)); err != nil {
		return nil, fmt.Errorf("-kjobs installs %s: run it from the repository root (%v)", kjobsOverlay, err)
	}
	redis := os.Getenv("KJOBS_REDIS_SERVER") // as hack/test.sh exports it
	var err error
	if redis == "" {
		redis, err = exec.LookPath("redis-server")
	}
	if err != nil {
		return nil, fmt.Errorf("-kjobs runs redis-server, which is not installed (make cluster installs it): %v", err)
	}
	if port == dispatcherPort || port == dispatcherHTTPSPort {
		return nil, fmt.Errorf("the API cannot have port %d: Knative's in-memory channel dispatcher always listens on %d and %d", port, dispatcherPort, dispatcherHTTPSPort)
	}
	// The API's main listens on every interface.
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("the API's port %d is taken (%v): choose another with make cluster PORT=<port>", port, err)
	}
	l.Close()
	stage := c.path("kwok-sleep.yaml")
	if err := os.WriteFile(stage, kwokSleepStage, 0o644); err != nil {
		return nil, err
	}
	c.stages = append(c.stages, stage)
	k := &kjobs{c: c, root: root, port: port, bin: c.path("bin"), built: make(chan error, 1), redis: redis,
		secrets: map[string]map[string][]byte{}}
	go func() {
		begin := time.Now()
		cmd := exec.CommandContext(c.ctx, "go", "build", "-o", k.bin+"/", "./services/api", "./functions/dispatcher")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go build ./services/api ./functions/dispatcher: %v\n%s", err, out)
		} else {
			fmt.Fprintf(os.Stderr, "controlplane: kjobs' API and dispatcher built in %.1fs\n", time.Since(begin).Seconds())
		}
		k.built <- err
	}()
	return k, nil
}

// start installs kjobs and starts its processes; it returns the API's URL
// once the Broker, the Triggers and both processes are Ready.
func (k *kjobs) start(parent context.Context) (string, error) {
	c := k.c
	// Not counting the wait for the build of the API and the dispatcher:
	// from an empty Go build cache it takes minutes.
	timeout := errors.New("kjobs did not start in time")
	ctx, cancel := context.WithTimeoutCause(parent, startTimeout, timeout)
	defer cancel()
	begin := time.Now()
	step := func(what string) {
		fmt.Fprintf(os.Stderr, "controlplane: kjobs: %s after %.1fs\n", what, time.Since(begin).Seconds())
	}
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(c.kubeconfig), "dataplane.json"))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(raw, &k.dp); err != nil {
		return "", fmt.Errorf("dataplane.json: %v", err)
	}

	// One that uninstall left behind.
	if _, err := c.kubectl(ctx, nil, "wait", "--for=delete", "--timeout=2m", "namespace/"+kjobsNamespace); err != nil {
		return "", err
	}
	redisURL, err := k.startRedis(ctx)
	if err != nil {
		return "", err
	}
	step("redis-server ready")
	if err := k.render(ctx, redisURL); err != nil {
		return "", err
	}
	if _, err := c.kubectl(ctx, list(k.objs), "apply", "--server-side", "--field-manager="+kjobsManager, "-f", "-"); err != nil {
		return "", err
	}
	step("kustomize/overlays/dev applied")

	var apiEnv, dispatcherEnv []string
	err = parallel(
		reported(step, "Broker kjobs Ready", func() error { return k.waitBroker(ctx) }),
		func() error {
			var err error
			if apiEnv, err = k.serviceEnv(ctx, apiService); err != nil {
				return err
			}
			dispatcherEnv, err = k.serviceEnv(ctx, dispatcherKsvc)
			return err
		},
	)
	if err != nil {
		return "", err
	}
	select {
	case err := <-k.built:
		if err != nil {
			return "", err
		}
	default:
		step("waiting for the build of the API and the dispatcher (a first build takes minutes)")
		select {
		case err := <-k.built:
			if err != nil {
				return "", err
			}
		case <-parent.Done():
			return "", context.Cause(parent)
		}
	}
	ctx, cancel = context.WithTimeoutCause(parent, startTimeout, timeout)
	defer cancel()

	// What a SinkBinding would inject, now that the Broker has an address.
	if apiEnv, err = k.withSink(apiService, apiEnv); err != nil {
		return "", err
	}
	if dispatcherEnv, err = k.withSink(dispatcherKsvc, dispatcherEnv); err != nil {
		return "", err
	}
	err = parallel(
		func() error { return k.serveKsvc(ctx, dispatcherKsvc, "dispatcher", dispatcherEnv, 0, step) },
		func() error { return k.serveKsvc(ctx, apiService, "api", apiEnv, k.port, step) },
	)
	if err != nil {
		return "", err
	}

	if _, err := c.kubectl(ctx, list(k.triggers), "apply", "--server-side", "--field-manager="+kjobsManager, "-f", "-"); err != nil {
		return "", err
	}
	var waits []func() error
	for _, tr := range k.triggers {
		name := str(tr, "metadata", "name")
		waits = append(waits, reported(step, "Trigger "+name+" Ready", func() error { return k.waitTrigger(ctx, name) }))
	}
	if err := parallel(waits...); err != nil {
		return "", err
	}
	if err := k.waitChannel(ctx); err != nil {
		return "", err
	}
	step("the Broker's channel delivers to both Triggers")
	api := fmt.Sprintf("http://127.0.0.1:%d", k.port)
	if err := k.checkAPI(ctx, api); err != nil {
		return "", err
	}
	return api, nil
}

// startRedis starts redis-server on a free loopback port, memory only, as
// the dev overlay's Redis is.
func (k *kjobs) startRedis(ctx context.Context) (string, error) {
	var addr string
	err := k.c.serve(ctx, 30*time.Second, func() (*component, func() error) {
		port := freePort()
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		comp := k.c.launch("redis", k.redis, nil, []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", k.c.dir}, false)
		return comp, func() error { return redisPing(addr) }
	})
	return "redis://" + addr, err
}

func redisPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != "+PONG\r\n" {
		return fmt.Errorf("redis answered %q to PING", buf)
	}
	return nil
}

// render builds the overlay with kubectl's kustomize and changes it as the
// absent webhooks, Serving and images would (see the top of this file).
func (k *kjobs) render(ctx context.Context, redisURL string) error {
	c := k.c
	yaml, err := c.kubectl(ctx, nil, "kustomize", filepath.Join(k.root, kjobsOverlay))
	if err != nil {
		return err
	}
	raw, err := c.kubectl(ctx, yaml, "create", "--dry-run=client", "--validate=false", "-o=json", "-f", "-")
	if err != nil {
		return err
	}
	var objs []object
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		var o object
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("parsing %s: %v", kjobsOverlay, err)
		}
		objs = append(objs, replaceKo(o).(object))
	}

	// The Secrets the Services' REDIS_URL comes from now name the host's
	// Redis; the overlay's Deployment and Service of Redis are left out.
	redisSecrets := map[string]bool{}
	for _, o := range objs {
		if kindOf(o) == "serving.knative.dev/Service" {
			for _, e := range objects(o, "spec", "template", "spec", "containers", "0", "env") {
				if e["name"] == "REDIS_URL" {
					if ref, ok := dig(e, "valueFrom", "secretKeyRef").(object); ok {
						redisSecrets[fmt.Sprint(ref["name"])+"/"+fmt.Sprint(ref["key"])] = true
					}
				}
			}
		}
	}
	var kept []object
	for _, o := range objs {
		name := str(o, "metadata", "name")
		switch kindOf(o) {
		case "apps/Deployment", "/Service":
			if name == "kjobs-redis" {
				continue
			}
		case "/Secret":
			for ref := range redisSecrets {
				if secret, key, _ := strings.Cut(ref, "/"); secret == name {
					data, _ := o["data"].(object)
					if data == nil {
						data = object{}
						o["data"] = data
					}
					data[key] = base64.StdEncoding.EncodeToString([]byte(redisURL))
				}
			}
		case "/ConfigMap":
			if name == "kjobs-functions" {
				if err := addChaos(o); err != nil {
					return err
				}
			}
		case "eventing.knative.dev/Broker":
			defaultBroker(o)
		case "eventing.knative.dev/Trigger":
			defaultTrigger(o)
			k.triggers = append(k.triggers, o)
			continue
		}
		kept = append(kept, o)
	}
	// The Namespace first, so that one apply creates everything.
	for i, o := range kept {
		if kindOf(o) == "/Namespace" {
			kept[0], kept[i] = kept[i], kept[0]
		}
	}
	k.objs = kept
	return nil
}

// addChaos gives kjobs-functions an entry for "fail" (unless it has one):
// its _default entry plus kwok's chaos label and annotations, so that kwok
// fails its pods with exit code 1, at once.
func addChaos(cm object) error {
	data, _ := cm["data"].(object)
	if data == nil {
		data = object{}
		cm["data"] = data
	}
	if _, ok := data["fail"]; ok {
		return nil
	}
	def, _ := data["_default"].(string)
	if strings.Contains(def, "podLabels") || strings.Contains(def, "podAnnotations") {
		return errors.New("kjobs-functions' _default has podLabels or podAnnotations: the -kjobs mode cannot add kwok's chaos label to them")
	}
	data["fail"] = strings.TrimRight(def, "\n") + fmt.Sprintf(`
podLabels:
  %[1]s: "true"
podAnnotations:
  %[1]s/exit-code: "1"
  %[1]s/reason: Error
  %[1]s/message: %[2]q
  %[1]s/delay: 0s
  %[1]s/jitter-delay: 0s
`, chaosLabel, chaosMessage)
	return nil
}

// defaultBroker sets what Eventing's webhook defaults on a Broker.
func defaultBroker(b object) {
	meta := b["metadata"].(object)
	annotations, _ := meta["annotations"].(object)
	if annotations == nil {
		annotations = object{}
		meta["annotations"] = annotations
	}
	if annotations[brokerClassAnno] == nil {
		annotations[brokerClassAnno] = "MTChannelBasedBroker"
	}
	spec, _ := b["spec"].(object)
	if spec == nil {
		spec = object{}
		b["spec"] = spec
	}
	for key, value := range brokerDefaults {
		if spec[key] == nil {
			spec[key] = value
		}
	}
}

// defaultTrigger sets what Eventing's webhook defaults on a Trigger
// (TriggerSpec.SetDefaults and setLabels in knative.dev/eventing v0.50.0
// pkg/apis/eventing/v1/trigger_defaults.go): the broker label, an empty
// filter, and the Trigger's namespace in its subscriber's and dead-letter
// sink's refs.
func defaultTrigger(tr object) {
	meta := tr["metadata"].(object)
	labels, _ := meta["labels"].(object)
	if labels == nil {
		labels = object{}
		meta["labels"] = labels
	}
	labels[brokerLabel] = str(tr, "spec", "broker")
	spec := tr["spec"].(object)
	if spec["filter"] == nil {
		spec["filter"] = object{}
	}
	for _, ref := range []any{dig(spec, "subscriber", "ref"), dig(spec, "delivery", "deadLetterSink", "ref")} {
		if ref, ok := ref.(object); ok && ref["namespace"] == nil {
			ref["namespace"] = meta["namespace"]
		}
	}
}

// waitBroker waits until the Broker is Ready and keeps its address on
// loopback.
func (k *kjobs) waitBroker(ctx context.Context) error {
	c := k.c
	if _, err := c.kubectl(ctx, nil, "wait", "--for=condition=Ready", "--timeout=2m", "-n", kjobsNamespace, "broker/"+kjobsBroker); err != nil {
		return err
	}
	out, err := c.kubectl(ctx, nil, "get", "-n", kjobsNamespace, "broker/"+kjobsBroker, "-o=jsonpath={.status.address.url}")
	if err != nil {
		return err
	}
	addr, err := url.Parse(string(out))
	if err != nil || addr.Host != ingressHost {
		return fmt.Errorf("Broker %s's address is %q, not on %s", kjobsBroker, out, ingressHost)
	}
	ingress, err := url.Parse(k.dp.Ingress)
	if err != nil {
		return err
	}
	addr.Host = ingress.Host
	k.sinkURL = addr.String()
	return nil
}

// waitTrigger waits until a Trigger is Ready, nudging it (an annotation
// change makes Eventing reconcile it again) while it is not.
func (k *kjobs) waitTrigger(ctx context.Context, name string) error {
	for nudge := 1; ; nudge++ {
		_, err := k.c.kubectl(ctx, nil, "wait", "--for=condition=Ready", "--timeout=10s", "-n", kjobsNamespace, "trigger/"+name)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			out, _ := k.c.kubectl(context.Background(), nil, "get", "-n", kjobsNamespace, "trigger/"+name, "-o=jsonpath={.status.conditions}")
			return fmt.Errorf("Trigger %s is not Ready: %s: %w", name, out, context.Cause(ctx))
		}
		if _, err := k.c.kubectl(ctx, nil, "annotate", "--overwrite", "-n", kjobsNamespace, "trigger/"+name,
			"kjobs.dev/nudge="+strconv.Itoa(nudge)); err != nil {
			return err
		}
	}
}

// waitChannel waits until the in-memory channel dispatcher has taken up
// the Subscription of every Trigger. A Trigger turns Ready a little before
// (~0.1 s, seen here): an event the Broker accepts in between goes to no
// Trigger, and is lost. The dispatcher marks a channel's subscriber ready
// once its fan-out has it (knative.dev/eventing v0.50.0
// pkg/reconciler/inmemorychannel/dispatcher/inmemorychannel.go,
// ReconcileKind).
func (k *kjobs) waitChannel(ctx context.Context) error {
	channel := kjobsBroker + "-kne-trigger"
	if out, err := k.c.kubectl(ctx, nil, "get", "-n", kjobsNamespace, "broker/"+kjobsBroker,
		`-o=jsonpath={.status.annotations.knative\.dev/channelName}`); err == nil && len(out) > 0 {
		channel = string(out)
	}
	var last []byte
	for {
		out, err := k.c.kubectl(ctx, nil, "get", "-n", kjobsNamespace, "inmemorychannel/"+channel, "-o=json")
		if err == nil {
			last = out
			var imc struct {
				Spec struct {
					Subscribers []struct {
						UID        string `json:"uid"`
						Generation int64  `json:"generation"`
					} `json:"subscribers"`
				} `json:"spec"`
				Status struct {
					Subscribers []struct {
						UID                string `json:"uid"`
						ObservedGeneration int64  `json:"observedGeneration"`
						Ready              string `json:"ready"`
					} `json:"subscribers"`
				} `json:"status"`
			}
			if err := json.Unmarshal(out, &imc); err != nil {
				return fmt.Errorf("InMemoryChannel %s: %v", channel, err)
			}
			ready := len(imc.Spec.Subscribers) >= len(k.triggers)
			for _, sub := range imc.Spec.Subscribers {
				found := false
				for _, st := range imc.Status.Subscribers {
					found = found || (st.UID == sub.UID && st.Ready == "True" && st.ObservedGeneration >= sub.Generation)
				}
				ready = ready && found
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the in-memory channel dispatcher has not taken up the Triggers' subscriptions: InMemoryChannel %s: %s: %w", channel, last, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serviceEnv returns the environment a Knative Service's container gets
// (its env, with values from Secrets and ConfigMaps read from the cluster,
// and what Serving adds), its Secret volumes written into a folder of ours
// (paths in the env that point into a mount are changed to it), and the
// kubeconfig of its ServiceAccount.
func (k *kjobs) serviceEnv(ctx context.Context, name string) ([]string, error) {
	ksvc := k.find("serving.knative.dev/Service", name)
	if ksvc == nil {
		return nil, fmt.Errorf("%s has no Knative Service %s", kjobsOverlay, name)
	}
	spec, _ := dig(ksvc, "spec", "template", "spec").(object)
	containers := objects(spec, "containers")
	if len(containers) != 1 {
		return nil, fmt.Errorf("Knative Service %s: %d containers, want 1", name, len(containers))
	}
	container := containers[0]

	volumes := map[string]string{} // Secret volumes: volume → Secret
	for _, v := range objects(spec, "volumes") {
		if secret := str(v, "secret", "secretName"); secret != "" {
			volumes[fmt.Sprint(v["name"])] = secret
		}
	}
	mounts := map[string]string{} // mount path → our folder
	for _, m := range objects(container, "volumeMounts") {
		secret, ok := volumes[fmt.Sprint(m["name"])]
		if !ok {
			return nil, fmt.Errorf("Knative Service %s mounts volume %v, which is no Secret", name, m["name"])
		}
		data, err := k.secret(ctx, secret)
		if err != nil {
			return nil, err
		}
		dir := k.c.path("volumes", name, fmt.Sprint(m["name"]))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		for key, value := range data {
			if err := os.WriteFile(filepath.Join(dir, key), value, 0o600); err != nil {
				return nil, err
			}
		}
		mounts[fmt.Sprint(m["mountPath"])] = dir
	}

	var env []string
	set := map[string]bool{}
	for _, e := range objects(container, "env") {
		key := fmt.Sprint(e["name"])
		value, _ := e["value"].(string)
		if from, ok := e["valueFrom"].(object); ok {
			switch {
			case from["secretKeyRef"] != nil:
				ref := from["secretKeyRef"].(object)
				data, err := k.secret(ctx, fmt.Sprint(ref["name"]))
				if err != nil {
					return nil, err
				}
				v, ok := data[fmt.Sprint(ref["key"])]
				if !ok {
					return nil, fmt.Errorf("Knative Service %s: %s: Secret %v has no key %v", name, key, ref["name"], ref["key"])
				}
				value = string(v)
			default:
				return nil, fmt.Errorf("Knative Service %s: %s: only values and secretKeyRefs are supported, not %v", name, key, from)
			}
		}
		for path, dir := range mounts {
			if value == path || strings.HasPrefix(value, path+"/") {
				value = dir + strings.TrimPrefix(value, path)
			}
		}
		env = append(env, key+"="+value)
		set[key] = true
	}

	kubeconfig, err := k.serviceAccountKubeconfig(ctx, name, str(spec, "serviceAccountName"))
	if err != nil {
		return nil, err
	}
	// What a pod of the Service would have: the variables Serving adds and
	// a Kubernetes client's view of its namespace and identity.
	extra := []string{
		"K_SERVICE=" + name, "K_CONFIGURATION=" + name, "K_REVISION=" + name + "-00001",
		"KUBECONFIG=" + kubeconfig,
	}
	if !set["KJOBS_NAMESPACE"] {
		extra = append(extra, "KJOBS_NAMESPACE="+kjobsNamespace)
	}
	return append(env, extra...), nil
}

// withSink adds K_SINK, as a SinkBinding whose subject is the Service
// would inject it. The dispatcher needs it too (its sweep re-sends lost
// events to the Broker), but config/ has no SinkBinding for it: it gets
// the Broker's address all the same, with a warning.
func (k *kjobs) withSink(name string, env []string) ([]string, error) {
	for _, sb := range k.objs {
		if kindOf(sb) != "sources.knative.dev/SinkBinding" || str(sb, "spec", "subject", "name") != name ||
			str(sb, "spec", "subject", "kind") != "Service" {
			continue
		}
		if str(sb, "spec", "sink", "ref", "kind") != "Broker" || str(sb, "spec", "sink", "ref", "name") != kjobsBroker {
			return nil, fmt.Errorf("SinkBinding %s: its sink is not Broker %s", str(sb, "metadata", "name"), kjobsBroker)
		}
		return append(env, "K_SINK="+k.sinkURL), nil
	}
	if name == dispatcherKsvc {
		fmt.Fprintf(os.Stderr, "controlplane: kjobs: warning: no SinkBinding in %s gives %s K_SINK, which it requires; "+
			"it gets Broker %s's address here, but would not in a cluster\n", kjobsOverlay, name, kjobsBroker)
		return append(env, "K_SINK="+k.sinkURL), nil
	}
	return env, nil
}

// serveKsvc starts a Knative Service's host process (binary bin) on port
// (0: a free one), waits until it is ready, routes the Service's cluster
// DNS name to it and sets the Service's status as Serving would.
func (k *kjobs) serveKsvc(ctx context.Context, name, bin string, env []string, port int, step func(string)) error {
	c := k.c
	fixed := port != 0
	err := c.serve(ctx, time.Minute, func() (*component, func() error) {
		if !fixed {
			port = freePort()
		}
		comp := c.launch(name, filepath.Join(k.bin, bin), append(env, "PORT="+strconv.Itoa(port), "KJOBS_HOST=127.0.0.1"), nil, false)
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
		return comp, func() error {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz answered %s", resp.Status)
			}
			return nil
		}
	})
	if err != nil {
		return err
	}
	step(fmt.Sprintf("%s serving on 127.0.0.1:%d", name, port))
	host := name + "." + kjobsNamespace + ".svc.cluster.local"
	if err := k.route(host, port); err != nil {
		return err
	}
	return k.setServiceStatus(ctx, name, "http://"+host)
}

// uninstall removes what start installed on a control plane that runs on
// (attach): the processes must have been stopped.
func (k *kjobs) uninstall(ctx context.Context) error {
	var errs []error
	for _, name := range []string{apiService, dispatcherKsvc} {
		host := name + "." + kjobsNamespace + ".svc.cluster.local"
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, k.dp.Control+"/routes/"+url.PathEscape(host), nil)
		if err != nil {
			return err
		}
		if resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}).Do(req); err != nil {
			errs = append(errs, err)
		} else {
			resp.Body.Close()
		}
	}
	// Not waiting: the namespace controller takes ~10 s; start waits for a
	// namespace kjobs that is still being deleted.
	if _, err := k.c.kubectl(ctx, nil, "delete", "namespace", kjobsNamespace, "--ignore-not-found", "--wait=false"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// route asks the control server to send the data plane's requests for host
// to 127.0.0.1:port.
func (k *kjobs) route(host string, port int) error {
	req, err := http.NewRequest(http.MethodPut, k.dp.Control+"/routes/"+url.PathEscape(host),
		strings.NewReader(fmt.Sprintf(`{"port":%d}`, port)))
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return fmt.Errorf("routing %s: %v", host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("routing %s: %s %s", host, resp.Status, body)
	}
	return nil
}

// setServiceStatus sets a Knative Service's status as Serving does once
// its first revision is Ready: Ready conditions, one revision with all the
// traffic, and its URL and address (a cluster-local URL for both: Serving's
// default domain is svc.cluster.local).
func (k *kjobs) setServiceStatus(ctx context.Context, name, url string) error {
	gen, err := k.c.kubectl(ctx, nil, "get", "-n", kjobsNamespace, "ksvc/"+name, "-o=jsonpath={.metadata.generation}")
	if err != nil {
		return err
	}
	generation, err := strconv.Atoi(string(gen))
	if err != nil {
		return fmt.Errorf("Knative Service %s's generation %q: %v", name, gen, err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	revision := name + "-00001"
	var conditions []object
	for _, t := range []string{"ConfigurationsReady", "Ready", "RoutesReady"} {
		conditions = append(conditions, object{"type": t, "status": "True", "lastTransitionTime": now})
	}
	patch, err := json.Marshal(object{"status": object{
		"observedGeneration":        generation,
		"conditions":                conditions,
		"latestCreatedRevisionName": revision,
		"latestReadyRevisionName":   revision,
		"traffic":                   []object{{"revisionName": revision, "latestRevision": true, "percent": 100}},
		"url":                       url,
		"address":                   object{"url": url},
	}})
	if err != nil {
		return err
	}
	_, err = k.c.kubectl(ctx, nil, "patch", "-n", kjobsNamespace, "ksvc/"+name, "--subresource=status",
		"--type=merge", "--field-manager="+kjobsManager, "-p", string(patch))
	return err
}

// serviceAccountKubeconfig writes a kubeconfig with a token of the
// ServiceAccount, so that the host process has the permissions its pods
// would have, with namespace kjobs, and returns its path.
func (k *kjobs) serviceAccountKubeconfig(ctx context.Context, service, account string) (string, error) {
	if account == "" {
		account = "default"
	}
	token, err := k.c.kubectl(ctx, nil, "create", "token", "-n", kjobsNamespace, account, "--duration="+tokenDuration)
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(k.c.kubeconfig)
	if err != nil {
		return "", err
	}
	var admin struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
	}
	if err := json.Unmarshal(raw, &admin); err != nil || len(admin.Clusters) != 1 {
		return "", fmt.Errorf("reading the admin kubeconfig %s: %v", k.c.kubeconfig, err)
	}
	user := "system:serviceaccount:" + kjobsNamespace + ":" + account
	config, err := json.MarshalIndent(object{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []object{{"name": "kjobs", "cluster": object{
			"server":                     admin.Clusters[0].Cluster.Server,
			"certificate-authority-data": admin.Clusters[0].Cluster.CA,
		}}},
		"users":           []object{{"name": user, "user": object{"token": strings.TrimSpace(string(token))}}},
		"contexts":        []object{{"name": "kjobs", "context": object{"cluster": "kjobs", "user": user, "namespace": kjobsNamespace}}},
		"current-context": "kjobs",
	}, "", "  ")
	if err != nil {
		return "", err
	}
	path := k.c.path("kubeconfig-" + service)
	return path, os.WriteFile(path, config, 0o600)
}

// secret returns a Secret's data, read from the cluster once.
func (k *kjobs) secret(ctx context.Context, name string) (map[string][]byte, error) {
	if data, ok := k.secrets[name]; ok {
		return data, nil
	}
	raw, err := k.c.kubectl(ctx, nil, "get", "-n", kjobsNamespace, "secret/"+name, "-o=jsonpath={.data}")
	if err != nil {
		return nil, err
	}
	var encoded map[string]string
	if err := json.Unmarshal(raw, &encoded); err != nil {
		return nil, fmt.Errorf("Secret %s: %v", name, err)
	}
	data := map[string][]byte{}
	for key, value := range encoded {
		if data[key], err = base64.StdEncoding.DecodeString(value); err != nil {
			return nil, fmt.Errorf("Secret %s, key %s: %v", name, key, err)
		}
	}
	k.secrets[name] = data
	return data, nil
}

// token returns the first token the API accepts, and the Secret it is in.
func (k *kjobs) token() (string, string) {
	spec, _ := dig(k.find("serving.knative.dev/Service", apiService), "spec", "template", "spec").(object)
	for _, v := range objects(spec, "volumes") {
		if secret := str(v, "secret", "secretName"); secret != "" {
			if tokens, ok := k.secrets[secret]["tokens"]; ok {
				first, _, _ := strings.Cut(strings.TrimSpace(string(tokens)), "\n")
				return strings.TrimSpace(first), secret
			}
		}
	}
	return "", ""
}

// checkAPI makes one authenticated request, as a user will.
func (k *kjobs) checkAPI(ctx context.Context, api string) error {
	token, secret := k.token()
	if token == "" {
		return errors.New("found no API token in the kjobs-api Service's Secret volumes")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/jobs/stats", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/jobs/stats with the token of Secret %s: %s %s", api, secret, resp.Status, body)
	}
	return nil
}

// find returns the object of kind (group/Kind) and name, or nil.
func (k *kjobs) find(kind, name string) object {
	for _, o := range k.objs {
		if kindOf(o) == kind && str(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

// replaceKo replaces every ko:// string in v with kjobsImage's.
func replaceKo(v any) any {
	switch v := v.(type) {
	case object:
		for key, value := range v {
			v[key] = replaceKo(value)
		}
	case []any:
		for i, value := range v {
			v[i] = replaceKo(value)
		}
	case string:
		if strings.HasPrefix(v, "ko://") {
			return kjobsImage(v)
		}
	}
	return v
}

// kindOf returns an object's group/Kind ("/Secret" for the core group).
func kindOf(o object) string {
	group, _, ok := strings.Cut(fmt.Sprint(o["apiVersion"]), "/")
	if !ok {
		group = ""
	}
	return group + "/" + fmt.Sprint(o["kind"])
}

// dig returns the value at path in nested objects and lists (a list index
// is a number), or nil.
func dig(v any, path ...string) any {
	for _, p := range path {
		switch t := v.(type) {
		case object:
			v = t[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

// str returns the string at path, or "".
func str(v any, path ...string) string {
	s, _ := dig(v, path...).(string)
	return s
}

// objects returns the objects of the list at path.
func objects(v any, path ...string) []object {
	var out []object
	items, _ := dig(v, path...).([]any)
	for _, item := range items {
		if o, ok := item.(object); ok {
			out = append(out, o)
		}
	}
	return out
}

// list encodes objects as a v1 List for kubectl.
func list(objs []object) []byte {
	items := make([]any, len(objs))
	for i, o := range objs {
		items[i] = o
	}
	raw, err := json.Marshal(object{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		panic(err) // objects decoded from JSON always encode
	}
	return raw
}
