package install_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/kjobs/kjobs/internal/testenv"
)

// TestServerDryRun applies each overlay with `kubectl apply -k
// --dry-run=server` to the test control plane, whose apiserver has
// Knative's CRDs and PodSecurity admission, and fails on any error or
// warning. Each overlay goes into a namespace of the test's own, labelled as
// the overlay labels its namespace, with the ko:// images pinned to
// placeholders as `make release` would pin them.
//
// PodSecurity does not look inside Knative Services, so each pod template
// is also created as a Pod (dry run) in that namespace, where "restricted"
// is enforced.
//
// The optional EventPolicy component goes through the same dry run over
// the dev overlay, which checks it against the EventPolicy CRD's schema.
// (Knative's webhook, which refuses it while authentication-oidc is off,
// does not run here: TestEventPolicyComponent runs its validation.)
func TestServerDryRun(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	root := repoRoot(t)
	dirs := map[string]func(t testing.TB) string{
		"eventpolicy": eventPolicyOverlay,
	}
	for _, o := range overlays {
		dirs[filepath.Base(o)] = func(testing.TB) string { return filepath.Join(root, o) }
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := dir(t)
			ns := kjobsNamespace(t, cfg, dir)
			applied := overlay(t, dir, "namespace: "+ns+"\n"+placeholderImages())
			objs := kustomize(t, applied)
			out := dryRun(t, "-k", applied)
			// kubectl names each object it applied: all of them went
			// through the apiserver.
			for _, obj := range objs {
				kind := strings.ToLower(obj.GetKind())
				if g := obj.GroupVersionKind().Group; g != "" {
					kind += "." + g
				}
				if !strings.Contains(out, kind+"/"+obj.GetName()+" ") {
					t.Errorf("kubectl did not apply %s/%s", kind, obj.GetName())
				}
			}
			admitPods(t, cfg, ns, objs)
		})
	}
}

// kjobsNamespace creates a namespace of the test's own with the labels the
// kustomization in dir gives namespace kjobs, PodSecurity's among them.
func kjobsNamespace(t testing.TB, cfg *rest.Config, dir string) string {
	t.Helper()
	labels := find(t, kustomize(t, dir), "", "Namespace", "kjobs").GetLabels()
	return testenv.Namespace(t, cfg, labels)
}

// dryRun runs `kubectl apply --dry-run=server` on source (-k DIR or -f
// FILE), fails on an error or a warning, and returns kubectl's output. Server-side apply leaves the
// test's namespace, which kubectl did not create, without the warning about
// a missing last-applied annotation; admission and validation are the same
// as for a client-side apply.
func dryRun(t testing.TB, source ...string) string {
	t.Helper()
	// --force-conflicts: the admission policy is cluster-scoped, so an
	// install of the same cluster by `make cluster` (hack/controlplane's
	// test) owns its fields under another field manager. A dry run changes
	// nothing either way; what it checks is that the apiserver admits
	// every object.
	args := append([]string{"apply", "--server-side", "--force-conflicts", "--dry-run=server"}, source...)
	out, err := testenv.Kubectl(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if strings.Contains(out, "Warning:") {
		t.Errorf("kubectl %s warned:\n%s", strings.Join(args, " "), out)
		return out
	}
	t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	return out
}

// admitPods creates a Pod from every pod template in objs, in dry-run mode,
// as Knative and the Deployment controller would create them, and fails
// when the apiserver refuses one or warns. The ServiceAccounts the pods run
// as are created for real first: admission refuses a pod whose account does
// not exist.
func admitPods(t testing.TB, cfg *rest.Config, ns string, objs []*unstructured.Unstructured) {
	t.Helper()
	out, err := testenv.Kubectl(t, "apply", "--server-side", "-f", encode(t, ofKind(objs, "", "ServiceAccount")))
	if err != nil {
		t.Fatalf("creating the ServiceAccounts: %v\n%s", err, out)
	}

	warnings := &warningRecorder{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = warnings
	client, err := dynamic.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	pods := client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace(ns)

	var templates int
	for _, obj := range objs {
		var pod *unstructured.Unstructured
		switch gvk := obj.GroupVersionKind(); gvk.Group + "/" + gvk.Kind {
		case "serving.knative.dev/Service":
			pod = knativePod(t, obj)
		case "apps/Deployment":
			pod = templatePod(t, obj)
		default:
			continue
		}
		templates++
		pod.SetNamespace(ns)
		_, err := pods.Create(context.Background(), pod, metav1.CreateOptions{
			DryRun:          []string{metav1.DryRunAll},
			FieldValidation: metav1.FieldValidationStrict,
		})
		if err != nil {
			t.Errorf("the pods of %s are refused: %v", id(obj), err)
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("creating the pods of %s warned: %s", id(obj), strings.Join(w, "; "))
		}
	}
	if templates == 0 {
		t.Fatal("no pod templates in the rendered manifests")
	}
}

// templatePod returns a Pod with the pod template of a workload such as a
// Deployment.
func templatePod(t testing.TB, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	tmpl, ok, err := unstructured.NestedMap(obj.Object, "spec", "template")
	if !ok || err != nil {
		t.Fatalf("%s has no pod template (%v)", id(obj), err)
	}
	labels, _, _ := unstructured.NestedStringMap(tmpl, "metadata", "labels")
	pod := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"spec":       tmpl["spec"],
	}}
	pod.SetGenerateName(obj.GetName() + "-")
	pod.SetLabels(labels)
	return pod
}

// knativePod returns the Pod Knative would run for a Knative Service's
// template, less the queue-proxy sidecar Knative adds: the template without
// Knative's own fields, and probes without a port pointed at the
// container's port, as Knative does.
func knativePod(t testing.TB, svc *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	pod := templatePod(t, svc)
	spec := pod.Object["spec"].(map[string]any)
	for _, field := range []string{"containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds"} {
		delete(spec, field)
	}
	for _, c := range spec["containers"].([]any) {
		c := c.(map[string]any)
		port := int64(8080) // Knative's default
		if ports, ok := c["ports"].([]any); ok && len(ports) > 0 {
			port = ports[0].(map[string]any)["containerPort"].(int64)
		}
		for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
			for _, handler := range []string{"httpGet", "tcpSocket", "grpc"} {
				h, ok, _ := unstructured.NestedMap(c, probe, handler)
				if ok && h["port"] == nil {
					h["port"] = port
					if err := unstructured.SetNestedMap(c, h, probe, handler); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	return pod
}

// warningRecorder keeps the warnings the apiserver sends in responses.
type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (r *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, fmt.Sprintf("%d %s", code, text))
}

// take returns the warnings recorded since the last call.
func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.warnings
	r.warnings = nil
	return w
}
