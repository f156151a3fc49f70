package install_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	servingnet "knative.dev/serving/pkg/networking"
)

// peer is a pod that may try to connect to the dispatcher's pods.
type peer struct {
	namespace string
	labels    map[string]string
}

// TestDispatcherNetworkPolicy checks, by NetworkPolicy's own rules, who the
// policy in config/ lets reach the dispatcher's pods in each install:
// Serving's activator, autoscaler and the ingress gateways, and Eventing's
// senders, with the pod labels Knative's own manifests give them, on the
// queue-proxy's ports; nothing in namespace kjobs, no other namespace, and
// no one on the dispatcher's own port.
func TestDispatcherNetworkPolicy(t *testing.T) {
	t.Parallel()
	serving := moduleDir(t, "knative.dev/serving")
	eventing := moduleDir(t, "knative.dev/eventing")
	activator := deploymentPeer(t, filepath.Join(serving, "config/core/deployments/activator.yaml"), "activator")
	autoscaler := deploymentPeer(t, filepath.Join(serving, "config/core/deployments/autoscaler.yaml"), "autoscaler")
	filter := deploymentPeer(t, filepath.Join(eventing, "config/brokers/mt-channel-broker/deployments/broker-filter.yaml"), "mt-broker-filter")
	imc := deploymentPeer(t, filepath.Join(eventing, "config/channels/in-memory-channel/deployments/dispatcher.yaml"), "imc-dispatcher")
	// Not in a module kjobs builds against: from knative-extensions'
	// eventing-kafka-broker, net-kourier and net-istio.
	kafka := peer{"knative-eventing", map[string]string{"app": "kafka-broker-dispatcher"}}
	kourier := peer{"kourier-system", map[string]string{"app": "3scale-kourier-gateway"}}
	istio := peer{"istio-system", map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}}

	http1, h2c, https := servingnet.BackendHTTPPort, servingnet.BackendHTTP2Port, servingnet.BackendHTTPSPort
	metrics := servingnet.AutoscalingQueueMetricsPort

	for _, o := range append([]string{"kustomize/base"}, overlays...) {
		t.Run(filepath.Base(o), func(t *testing.T) {
			t.Parallel()
			objs := kustomize(t, filepath.Join(repoRoot(t), o))
			np := &networkingv1.NetworkPolicy{}
			u := find(t, objs, "networking.k8s.io", "NetworkPolicy", "kjobs-dispatcher")
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, np); err != nil {
				t.Fatal(err)
			}

			// It isolates the dispatcher's pods and no others of kjobs'.
			for _, obj := range objs {
				pods, ok := podLabels(obj)
				if !ok {
					continue
				}
				isDispatcher := obj.GetName() == "kjobs-dispatcher"
				if got := selects(t, np, pods); got != isDispatcher {
					t.Errorf("the policy selects the pods of %s: %v, want %v (labels %v)", id(obj), got, isDispatcher, pods)
				}
			}
			if got := np.Spec.PolicyTypes; len(got) != 1 || got[0] != networkingv1.PolicyTypeIngress {
				t.Errorf("policyTypes = %v, want [Ingress]: the dispatcher calls Redis and the Kubernetes API", got)
			}

			api, _ := podLabels(find(t, objs, "serving.knative.dev", "Service", "kjobs-api"))
			for _, tc := range []struct {
				what string
				from peer
				port int
				want bool
			}{
				{"activator, HTTP/1", activator, http1, true},
				{"activator, h2c", activator, h2c, true},
				{"activator, HTTPS", activator, https, true},
				{"autoscaler, metrics", autoscaler, metrics, true},
				{"Kourier's gateway", kourier, http1, true},
				{"Istio's gateway", istio, http1, true},
				{"mt-broker-filter (mesh)", filter, http1, true},
				{"imc-dispatcher, dead letters (mesh)", imc, http1, true},
				{"kafka-broker-dispatcher (mesh)", kafka, http1, true},
				{"activator, the dispatcher's own port", activator, 8080, false},
				{"mt-broker-filter, the dispatcher's own port", filter, 8080, false},
				{"activator, queue-proxy's admin port", activator, servingnet.QueueAdminPort, false},
				{"autoscaler, requests", autoscaler, http1, false},
				{"another pod of knative-serving", peer{"knative-serving", map[string]string{"app": "controller"}}, http1, false},
				{"the API", peer{"kjobs", api}, http1, false},
				{"a Job's pod", peer{"kjobs", map[string]string{"app.kubernetes.io/managed-by": "kjobs"}}, http1, false},
				{"an activator's labels elsewhere", peer{"default", activator.labels}, http1, false},
				{"a gateway's labels elsewhere", peer{"default", kourier.labels}, http1, false},
			} {
				if got := allows(t, np, tc.from, tc.port); got != tc.want {
					t.Errorf("%s (namespace %s, labels %v) to port %d: allowed %v, want %v", tc.what, tc.from.namespace, tc.from.labels, tc.port, got, tc.want)
				}
			}
		})
	}
}

// moduleDir returns the folder of a module of the build list, as the go
// command has downloaded it.
func moduleDir(t testing.TB, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatalf("go list -m %s: not downloaded (run go mod download)", module)
	}
	return dir
}

// deploymentPeer returns the namespace and pod labels of the Deployment
// name in a Knative manifest.
func deploymentPeer(t testing.TB, path, name string) peer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range decode(t, string(b)) {
		if obj.GetKind() != "Deployment" || obj.GetName() != name {
			continue
		}
		pods, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "labels")
		if len(pods) == 0 {
			t.Fatalf("%s: Deployment %s has no pod labels", path, name)
		}
		return peer{obj.GetNamespace(), pods}
	}
	t.Fatalf("%s has no Deployment %s", path, name)
	return peer{}
}

// podLabels returns the labels of the pods of a workload: a Knative
// Service's revision template or a Deployment's pod template.
func podLabels(obj *unstructured.Unstructured) (map[string]string, bool) {
	switch gvk := obj.GroupVersionKind(); gvk.Group + "/" + gvk.Kind {
	case "serving.knative.dev/Service", "apps/Deployment":
		l, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "labels")
		return l, true
	}
	return nil, false
}

// selects reports whether the policy applies to pods with these labels.
func selects(t testing.TB, np *networkingv1.NetworkPolicy, pods map[string]string) bool {
	t.Helper()
	return matches(t, &np.Spec.PodSelector, pods)
}

// allows reports whether the policy's ingress rules let a pod connect to
// port on the pods it selects: some rule whose peers include the pod and
// whose ports include port. A peer with a namespaceSelector and a
// podSelector takes both to match; one with only a podSelector means the
// policy's own namespace.
func allows(t testing.TB, np *networkingv1.NetworkPolicy, from peer, port int) bool {
	t.Helper()
	namespace := map[string]string{"kubernetes.io/metadata.name": from.namespace}
	for _, rule := range np.Spec.Ingress {
		peerOK := len(rule.From) == 0
		for _, p := range rule.From {
			if p.IPBlock != nil {
				t.Fatalf("an ipBlock peer: this test does not evaluate them")
			}
			nsOK := from.namespace == np.Namespace
			if p.NamespaceSelector != nil {
				nsOK = matches(t, p.NamespaceSelector, namespace)
			}
			podOK := p.PodSelector == nil || matches(t, p.PodSelector, from.labels)
			if nsOK && podOK {
				peerOK = true
			}
		}
		portOK := len(rule.Ports) == 0
		for _, p := range rule.Ports {
			if p.Protocol != nil && *p.Protocol != "TCP" {
				continue
			}
			if p.Port == nil || (p.Port.Type == intstr.Int && int(p.Port.IntVal) == port) {
				portOK = true
			}
			if p.Port != nil && p.Port.Type != intstr.Int {
				t.Fatalf("a named port (%s): this test does not evaluate them", p.Port.StrVal)
			}
		}
		if peerOK && portOK {
			return true
		}
	}
	return false
}

func matches(t testing.TB, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(labels.Set(set))
}
