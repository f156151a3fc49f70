package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
)

// KubeconfigEnv names the admin kubeconfig of the control plane that
// `make test` starts once for all tests (hack/controlplane).
const KubeconfigEnv = "KJOBS_KUBECONFIG"

// ToolsBinEnv names the folder with kubectl, kwok, ko and the other tools
// hack/tools/build.sh builds.
const ToolsBinEnv = "KJOBS_TOOLS_BIN"

// FakeNode is the one node of the test control plane; kwok plays its
// kubelet. It has no taints, so pods need no toleration or node selector.
const FakeNode = "kwok-node"

// Kube returns a client configuration for the test control plane as its
// admin (system:masters).
func Kube(t testing.TB) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig(t))
	if err != nil {
		t.Fatalf("testenv: loading %s: %v", KubeconfigEnv, err)
	}
	// Tests create objects in bursts; client-go's default of 5 requests
	// per second would make them wait on the client, not on the cluster.
	cfg.QPS, cfg.Burst = 200, 400
	return cfg
}

func kubeconfig(t testing.TB) string {
	t.Helper()
	path := os.Getenv(KubeconfigEnv)
	if path == "" {
		t.Fatalf("testenv: %s is not set: run the tests with `make test`, which starts a control plane, or start one with `go run ./hack/controlplane` and export %s=<the path it prints>", KubeconfigEnv, KubeconfigEnv)
	}
	return path
}

// PodSecurity returns the namespace labels that make PodSecurity admission
// enforce level ("restricted", "baseline" or "privileged"), as the kjobs
// namespace does in production.
func PodSecurity(level string) map[string]string {
	return map[string]string{
		"pod-security.kubernetes.io/enforce":         level,
		"pod-security.kubernetes.io/enforce-version": "latest",
	}
}

// Namespace creates a namespace of the test's own, named after the test,
// with labels, and deletes it when the test ends. It returns once the
// namespace's default ServiceAccount exists, because until then every pod
// in it is rejected.
func Namespace(t testing.TB, cfg *rest.Config, labels map[string]string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: namePrefix(t.Name()),
		Labels:       labels,
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testenv: creating a namespace: %v", err)
	}
	t.Cleanup(func() {
		// The namespace controller deletes what is in it; nothing needs
		// to wait for that.
		err := cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("testenv: deleting namespace %s: %v", ns.Name, err)
		}
	})

	lw := cache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "serviceaccounts", ns.Name,
		fields.OneTermEqualSelector("metadata.name", "default"))
	_, err = watchtools.UntilWithSync(ctx, lw, &corev1.ServiceAccount{}, nil, func(e watch.Event) (bool, error) {
		return e.Type == watch.Added, nil
	})
	if err != nil {
		t.Fatalf("testenv: namespace %s got no default ServiceAccount: %v", ns.Name, err)
	}
	return ns.Name
}

var notDNSLabel = regexp.MustCompile(`[^a-z0-9]+`)

// namePrefix turns a test name into a namespace name prefix, so that a
// namespace left in the control plane's logs tells which test made it.
func namePrefix(test string) string {
	p := strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(test), "-"), "-")
	// GenerateName adds 5 characters; a namespace name has at most 63.
	p = strings.TrimRight(p[:min(len(p), 50)], "-")
	return "t-" + p + "-"
}

// Kubectl runs the tools' kubectl against the test control plane and
// returns its combined output; the error is kubectl's exit.
func Kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv(ToolsBinEnv)
	if bin == "" {
		t.Fatalf("testenv: %s is not set: run the tests with `make test`, which builds the tools, or export %s=$(hack/tools/build.sh)", ToolsBinEnv, ToolsBinEnv)
	}
	cmd := exec.Command(filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig=" + kubeconfig(t)}, args...)...)
	// Keep kubectl's discovery cache out of ~/.kube.
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// JobsNamespace makes a namespace laid out like the kjobs namespace: it
// enforces the restricted Pod Security Standard and holds the
// ServiceAccount the Jobs' pods run as ("kjobs-job", without a token) and,
// unless functions is nil, the functions ConfigMap ("kjobs-functions") with
// that data. The names are the Kubernetes runner's defaults, spelled here
// because that package's own tests import this one.
func JobsNamespace(t testing.TB, cfg *rest.Config, functions map[string]string) string {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := Namespace(t, cfg, PodSecurity("restricted"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Name: "kjobs-job"},
		AutomountServiceAccountToken: new(false),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if functions != nil {
		if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "kjobs-functions"},
			Data:       functions,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}
