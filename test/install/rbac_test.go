package install_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kjobs/kjobs/internal/testenv"
)

// TestRBAC creates the base's ServiceAccounts, Roles and RoleBindings in a
// namespace of the test's own and asks the apiserver's RBAC authorizer,
// through SubjectAccessReviews, what each account may do.
func TestRBAC(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, nil)
	other := testenv.Namespace(t, cfg, nil)

	objs := kustomize(t, overlay(t, filepath.Join(repoRoot(t), "kustomize/base"), "namespace: "+ns+"\n"))
	rbac := ofKind(objs, "", "ServiceAccount")
	rbac = append(rbac, ofKind(objs, "rbac.authorization.k8s.io", "Role")...)
	rbac = append(rbac, ofKind(objs, "rbac.authorization.k8s.io", "RoleBinding")...)
	if out, err := testenv.Kubectl(t, "apply", "--server-side", "-f", encode(t, rbac)); err != nil {
		t.Fatalf("applying the RBAC objects: %v\n%s", err, out)
	}

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The authorizer sees new bindings through its informers, a moment
	// after they are created; wait for a grant of each before asking the
	// rest.
	waitAllowed(t, cs, ns, access{"kjobs-dispatcher", "create", "batch", "jobs", "", false})
	waitAllowed(t, cs, ns, access{"kjobs-api", "create", "sources.knative.dev", "pingsources", "", false})

	const (
		allow = true
		deny  = false
	)
	for _, tc := range []struct {
		access
		want bool
	}{
		// The dispatcher runs Jobs and watches them and their pods.
		{access{"kjobs-dispatcher", "create", "batch", "jobs", "", false}, allow},
		{access{"kjobs-dispatcher", "watch", "batch", "jobs", "", false}, allow},
		{access{"kjobs-dispatcher", "delete", "batch", "jobs", "", false}, allow},
		// The reconciler marks a recorded Job and shortens its TTL.
		{access{"kjobs-dispatcher", "patch", "batch", "jobs", "", false}, allow},
		{access{"kjobs-dispatcher", "get", "", "pods", "", false}, allow},
		{access{"kjobs-dispatcher", "list", "", "pods", "", false}, allow},
		{access{"kjobs-dispatcher", "watch", "", "pods", "", false}, allow},
		// It reads its functions ConfigMap, and a list or watch of it
		// when the request names it (fieldSelector metadata.name=...).
		{access{"kjobs-dispatcher", "get", "", "configmaps", "kjobs-functions", false}, allow},
		{access{"kjobs-dispatcher", "watch", "", "configmaps", "kjobs-functions", false}, allow},
		{access{"kjobs-dispatcher", "list", "", "configmaps", "", false}, deny},
		{access{"kjobs-dispatcher", "get", "", "configmaps", "kube-root-ca.crt", false}, deny},
		{access{"kjobs-dispatcher", "update", "", "configmaps", "kjobs-functions", false}, deny},
		// It hands a large event to its Job in a Secret it creates, and
		// reads none.
		{access{"kjobs-dispatcher", "create", "", "secrets", "", false}, allow},
		{access{"kjobs-dispatcher", "get", "", "secrets", "", false}, deny},
		{access{"kjobs-dispatcher", "list", "", "secrets", "", false}, deny},
		{access{"kjobs-dispatcher", "update", "", "secrets", "", false}, deny},
		{access{"kjobs-dispatcher", "get", "", "secrets", "kjobs-redis", false}, deny},
		{access{"kjobs-dispatcher", "update", "batch", "jobs", "", false}, deny},
		{access{"kjobs-dispatcher", "create", "", "pods", "", false}, deny},
		{access{"kjobs-dispatcher", "create", "batch", "jobs", "", true}, deny},
		{access{"kjobs-dispatcher", "create", "sources.knative.dev", "pingsources", "", false}, deny},
		// It reads the bindings' Triggers, and changes none.
		{access{"kjobs-dispatcher", "get", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-dispatcher", "list", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-dispatcher", "watch", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-dispatcher", "create", "eventing.knative.dev", "triggers", "", false}, deny},
		{access{"kjobs-dispatcher", "delete", "eventing.knative.dev", "triggers", "", false}, deny},
		{access{"kjobs-dispatcher", "list", "eventing.knative.dev", "triggers", "", true}, deny},

		// The API manages PingSources in its namespace, reads the functions
		// ConfigMap by name, and nothing else.
		{access{"kjobs-api", "create", "sources.knative.dev", "pingsources", "", false}, allow},
		{access{"kjobs-api", "get", "sources.knative.dev", "pingsources", "", false}, allow},
		{access{"kjobs-api", "list", "sources.knative.dev", "pingsources", "", false}, allow},
		{access{"kjobs-api", "watch", "sources.knative.dev", "pingsources", "", false}, allow},
		{access{"kjobs-api", "delete", "sources.knative.dev", "pingsources", "", false}, allow},
		{access{"kjobs-api", "update", "sources.knative.dev", "pingsources", "", false}, allow},
		{access{"kjobs-api", "patch", "sources.knative.dev", "pingsources", "", false}, deny},
		{access{"kjobs-api", "create", "sources.knative.dev", "pingsources", "", true}, deny},
		{access{"kjobs-api", "create", "batch", "jobs", "", false}, deny},
		{access{"kjobs-api", "get", "", "secrets", "", false}, deny},
		{access{"kjobs-api", "get", "", "secrets", "kjobs-api-tokens", false}, deny},
		// It manages the bindings' Triggers in its namespace, which it
		// creates and deletes whole (which Triggers: TestAdmissionPolicy).
		{access{"kjobs-api", "create", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-api", "get", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-api", "list", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-api", "watch", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-api", "delete", "eventing.knative.dev", "triggers", "", false}, allow},
		{access{"kjobs-api", "update", "eventing.knative.dev", "triggers", "", false}, deny},
		{access{"kjobs-api", "patch", "eventing.knative.dev", "triggers", "", false}, deny},
		{access{"kjobs-api", "deletecollection", "eventing.knative.dev", "triggers", "", false}, deny},
		{access{"kjobs-api", "create", "eventing.knative.dev", "triggers", "", true}, deny},
		{access{"kjobs-api", "delete", "eventing.knative.dev", "triggers", "", true}, deny},
		{access{"kjobs-api", "create", "eventing.knative.dev", "brokers", "", false}, deny},
		{access{"kjobs-api", "get", "", "configmaps", "kjobs-functions", false}, allow},
		{access{"kjobs-api", "watch", "", "configmaps", "kjobs-functions", false}, allow},
		{access{"kjobs-api", "list", "", "configmaps", "", false}, deny},
		{access{"kjobs-api", "get", "", "configmaps", "kube-root-ca.crt", false}, deny},
		{access{"kjobs-api", "update", "", "configmaps", "kjobs-functions", false}, deny},
		// It reads the logs of the Jobs' pods, and changes no pod.
		{access{"kjobs-api", "list", "", "pods", "", false}, allow},
		{access{"kjobs-api", "get", "", "pods", "", false}, allow},
		{access{"kjobs-api", "get", "", "pods/log", "", false}, allow},
		{access{"kjobs-api", "watch", "", "pods", "", false}, deny},
		{access{"kjobs-api", "delete", "", "pods", "", false}, deny},
		{access{"kjobs-api", "create", "", "pods/exec", "", false}, deny},
		{access{"kjobs-api", "get", "", "pods/log", "", true}, deny},
		{access{"kjobs-api", "list", "", "secrets", "", false}, deny},
		{access{"kjobs-api", "get", "batch", "jobs", "", false}, deny},
	} {
		t.Run(tc.String(), func(t *testing.T) {
			if got := allowed(t, cs, ns, other, tc.access); got != tc.want {
				t.Errorf("allowed = %t, want %t", got, tc.want)
			}
		})
	}
}

// TestJobAccountCanDoNothing checks the account of every Job's pods: no
// mounted token, and no rule beyond what every authenticated user has.
func TestJobAccountCanDoNothing(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, nil)
	objs := kustomize(t, overlay(t, filepath.Join(repoRoot(t), "kustomize/base"), "namespace: "+ns+"\n"))
	if out, err := testenv.Kubectl(t, "apply", "--server-side", "-f", encode(t, ofKind(objs, "", "ServiceAccount"))); err != nil {
		t.Fatalf("applying the ServiceAccounts: %v\n%s", err, out)
	}

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := cs.CoreV1().ServiceAccounts(ns).Get(context.Background(), "kjobs-job", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := sa.AutomountServiceAccountToken; m == nil || *m {
		t.Errorf("ServiceAccount kjobs-job automountServiceAccountToken = %v, want false", m)
	}

	// What the account may do, asked as the account itself.
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: user(ns, "kjobs-job"), Groups: groups(ns)}
	asJob, err := kubernetes.NewForConfig(as)
	if err != nil {
		t.Fatal(err)
	}
	review, err := asJob.AuthorizationV1().SelfSubjectRulesReviews().Create(context.Background(),
		&authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Every authenticated user may ask who it is and what it may do
	// (system:basic-user); anything beyond that is a grant.
	selfReviews := map[string]bool{
		"selfsubjectaccessreviews": true, "selfsubjectrulesreviews": true, "selfsubjectreviews": true,
	}
	for _, rule := range review.Status.ResourceRules {
		for _, r := range rule.Resources {
			if !selfReviews[r] || !slices.Equal(rule.Verbs, []string{"create"}) {
				t.Errorf("kjobs-job may %v %v in group %v", rule.Verbs, rule.Resources, rule.APIGroups)
				break
			}
		}
	}
	for _, a := range []access{
		{"kjobs-job", "get", "", "pods", "", false},
		{"kjobs-job", "get", "", "configmaps", "kjobs-functions", false},
		{"kjobs-job", "get", "", "secrets", "", false},
		{"kjobs-job", "create", "batch", "jobs", "", false},
		{"kjobs-job", "list", "sources.knative.dev", "pingsources", "", false},
		{"kjobs-job", "list", "eventing.knative.dev", "triggers", "", false},
	} {
		if allowed(t, cs, ns, "", a) {
			t.Errorf("%s: allowed", a)
		}
	}
}

// access is one request a ServiceAccount of the install might make, in its
// own namespace or, elsewhere, in another.
type access struct {
	serviceAccount, verb, group, resource, name string
	elsewhere                                   bool
}

func (a access) String() string {
	s := fmt.Sprintf("%s %s %s", a.serviceAccount, a.verb, a.resource)
	if a.group != "" {
		s += "." + a.group
	}
	if a.name != "" {
		s += "/" + a.name
	}
	if a.elsewhere {
		s += " elsewhere"
	}
	return s
}

// user is the name the apiserver gives a ServiceAccount's requests.
func user(ns, sa string) string { return "system:serviceaccount:" + ns + ":" + sa }

// groups are the groups of a ServiceAccount's requests.
func groups(ns string) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
}

// allowed asks the apiserver whether the account of a, which lives in
// namespace home, may make the request a; other is the namespace of a
// request made elsewhere.
func allowed(t testing.TB, cs kubernetes.Interface, home, other string, a access) bool {
	t.Helper()
	ns := home
	if a.elsewhere {
		ns = other
	}
	// A subresource is written as RBAC writes it: pods/log.
	resource, subresource, _ := strings.Cut(a.resource, "/")
	sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user(home, a.serviceAccount),
			Groups: groups(home),
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace:   ns,
				Verb:        a.verb,
				Group:       a.group,
				Resource:    resource,
				Subresource: subresource,
				Name:        a.name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", a, err)
	}
	return sar.Status.Allowed
}

// waitAllowed waits until the apiserver allows a, which the install grants.
func waitAllowed(t testing.TB, cs kubernetes.Interface, home string, a access) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !allowed(t, cs, home, "", a) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not allowed after 30s", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
