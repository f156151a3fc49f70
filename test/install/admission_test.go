package install_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestAdmissionPolicy installs the base's admission policy, bound to a
// namespace of the test's own, with the base's RBAC there, and acts as the
// API's ServiceAccount (impersonated): RBAC lets it create and delete any
// Trigger, and the policy refuses every one not labelled as a binding.
func TestAdmissionPolicy(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, nil)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	objs := kustomize(t, overlay(t, filepath.Join(repoRoot(t), "kustomize/base"), "namespace: "+ns+"\n"))
	rbac := ofKind(objs, "", "ServiceAccount")
	rbac = append(rbac, ofKind(objs, "rbac.authorization.k8s.io", "Role")...)
	rbac = append(rbac, ofKind(objs, "rbac.authorization.k8s.io", "RoleBinding")...)
	if out, err := testenv.Kubectl(t, "apply", "--server-side", "-f", encode(t, rbac)); err != nil {
		t.Fatalf("applying the RBAC objects: %v\n%s", err, out)
	}
	waitAllowed(t, cs, ns, access{"kjobs-api", "create", "eventing.knative.dev", "triggers", "", false})

	// The policy is cluster-wide: a copy of the test's own, under a name of
	// its own, bound to the test's namespace only, leaves the other tests'
	// namespaces alone.
	var policy admissionregistrationv1.ValidatingAdmissionPolicy
	fromUnstructured(t, find(t, objs, "admissionregistration.k8s.io", "ValidatingAdmissionPolicy", "kjobs-api-bindings-only").Object, &policy)
	var policyBinding admissionregistrationv1.ValidatingAdmissionPolicyBinding
	fromUnstructured(t, find(t, objs, "admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", "kjobs-api-bindings-only").Object, &policyBinding)
	policy.ObjectMeta = metav1.ObjectMeta{Name: ns}
	policyBinding.ObjectMeta = metav1.ObjectMeta{Name: ns}
	policyBinding.Spec.PolicyName = ns
	policyBinding.Spec.MatchResources = &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
	}}
	policies := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	bindings := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	if _, err := policies.Create(ctx, &policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = policies.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if _, err := bindings.Create(ctx, &policyBinding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bindings.Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	admin, err := eventingclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: user(ns, "kjobs-api"), Groups: groups(ns)}
	api, err := eventingclient.NewForConfig(as)
	if err != nil {
		t.Fatal(err)
	}
	asAPI, asAdmin := api.EventingV1().Triggers(ns), admin.EventingV1().Triggers(ns)

	// The policy takes effect once the apiserver has compiled it, a moment
	// after it is created: until then the API's create of an unlabelled
	// Trigger goes through, and is undone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := asAPI.Create(ctx, testTrigger("unlabelled", nil), metav1.CreateOptions{})
		if err != nil {
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "only create, change or delete the Triggers of bindings") {
				t.Fatalf("creating an unlabelled Trigger as the API: %v, want the policy's refusal", err)
			}
			t.Logf("refused: %v", err)
			break
		}
		if err := asAdmin.Delete(ctx, "unlabelled", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the API still creates unlabelled Triggers after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A binding's Trigger: created and deleted.
	if _, err := asAPI.Create(ctx, testTrigger("kjobs-binding-a", map[string]string{binding.LabelKey: "a"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a binding's Trigger as the API: %v", err)
	}
	if err := asAPI.Delete(ctx, "kjobs-binding-a", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting a binding's Trigger as the API: %v", err)
	}
	// config/'s Triggers, or anyone's: not deleted, though RBAC allows it.
	if _, err := asAdmin.Create(ctx, testTrigger("kjobs-requested", map[string]string{"app.kubernetes.io/name": "kjobs"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := asAPI.Delete(ctx, "kjobs-requested", metav1.DeleteOptions{}); err == nil || !strings.Contains(err.Error(), "Triggers of bindings") {
		t.Errorf("deleting an unlabelled Trigger as the API: %v, want the policy's refusal", err)
	}
	if _, err := asAdmin.Get(ctx, "kjobs-requested", metav1.GetOptions{}); err != nil {
		t.Errorf("the unlabelled Trigger: %v", err)
	}
	// Anyone else is not matched: the admin deletes it.
	if err := asAdmin.Delete(ctx, "kjobs-requested", metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting an unlabelled Trigger as admin: %v", err)
	}
}

// testTrigger is a Trigger as the API server's schema takes it (no
// webhook runs here).
func testTrigger(name string, labels map[string]string) *eventingv1.Trigger {
	return &eventingv1.Trigger{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: eventingv1.TriggerSpec{
			Broker:     "kjobs",
			Subscriber: duckv1.Destination{URI: apis.HTTP("kjobs-dispatcher.example")},
		},
	}
}

func fromUnstructured(t testing.TB, obj map[string]any, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, into); err != nil {
		t.Fatal(err)
	}
}
