// Package install_test checks what users install with `kubectl apply -k`:
// that every overlay builds, that a real apiserver with Knative's CRDs
// accepts it without a warning, that its pods pass PodSecurity "restricted",
// that its RBAC grants each component what it needs and nothing more, and
// that `make release` publishes non-root images and pins the overlays to
// them. The tests run kubectl and the image tools from $KJOBS_TOOLS_BIN and
// use the control plane `make test` starts.
package install_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kjobs/kjobs/internal/testenv"
)

// koImages maps each image config/ references to the name `ko build -B`
// pushes it under: the last element of its import path.
var koImages = map[string]string{
	"ko://github.com/kjobs/kjobs/services/api":         "api",
	"ko://github.com/kjobs/kjobs/functions/dispatcher": "dispatcher",
	"ko://github.com/kjobs/kjobs/processor":            "processor",
}

// overlays are the kustomizations users install, relative to the
// repository root.
var overlays = []string{"kustomize/overlays/dev", "kustomize/overlays/prod"}

// repoRoot returns the repository's root folder; go test runs a package's
// tests in the package's folder, two levels below it.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool returns the path of one of the binaries hack/tools/build.sh builds.
func tool(t testing.TB, name string) string {
	t.Helper()
	bin := os.Getenv(testenv.ToolsBinEnv)
	if bin == "" {
		t.Fatalf("%s is not set: run the tests with `make test`, which builds the tools, or export %s=$(hack/tools/build.sh)", testenv.ToolsBinEnv, testenv.ToolsBinEnv)
	}
	path := filepath.Join(bin, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s has no %s (%v): run hack/tools/build.sh, which builds it", bin, name, err)
	}
	return path
}

// command returns cmd for one of the tools, with kubectl's discovery cache
// kept out of ~/.kube.
func command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+t.TempDir())
	return cmd
}

// run runs cmd and returns what it wrote to stdout and stderr. A failure
// fails the test with both.
func run(t testing.TB, cmd *exec.Cmd) (stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(cmd.Args, " "), err, out.String(), errs.String())
	}
	return out.String(), errs.String()
}

// kustomize renders the kustomization in dir as `kubectl apply -k` would.
// A warning from kustomize (a deprecated field, say) fails the test.
func kustomize(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, warnings := run(t, command(t, "kubectl", "kustomize", dir))
	if warnings != "" {
		t.Errorf("kubectl kustomize %s warned:\n%s", dir, warnings)
	}
	return decode(t, out)
}

// decode parses a stream of YAML documents. Going through JSON, as the
// apiserver does, makes whole numbers int64 rather than float64.
func decode(t testing.TB, stream string) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("reading rendered manifests: %v", err)
		}
		j, err := utilyaml.ToJSON(doc)
		if err != nil {
			t.Fatalf("decoding rendered manifests: %v", err)
		}
		if string(j) == "null" {
			continue // an empty document
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(j); err != nil {
			t.Fatalf("decoding rendered manifests: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
}

// encode writes objs as one YAML stream to a file of the test's own and
// returns its path.
func encode(t testing.TB, objs []*unstructured.Unstructured) string {
	t.Helper()
	var b bytes.Buffer
	for _, obj := range objs {
		j, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		// JSON is YAML; one document per object.
		b.WriteString("---\n")
		b.Write(j)
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// overlay writes a kustomization of the test's own that builds on dir and
// adds fields (YAML, e.g. "namespace: x\n"), and returns its folder.
// kustomize refuses an absolute path to another kustomization, so dir is
// referenced relative to the new folder.
func overlay(t testing.TB, dir, fields string) string {
	t.Helper()
	tmp := t.TempDir()
	rel, err := filepath.Rel(tmp, dir)
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n%s", rel, fields)
	if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// placeholderImages is an images: field that pins every ko:// image to a
// made-up digest the way `make release` pins real ones, for checks that
// need valid image references but no image.
func placeholderImages() string {
	var b strings.Builder
	b.WriteString("images:\n")
	for _, ko := range sortedKeys(koImages) {
		fmt.Fprintf(&b, "  - name: %s\n    newName: %s\n    digest: sha256:%x\n",
			ko, placeholderName(ko), sha256.Sum256([]byte(ko)))
	}
	return b.String()
}

// placeholderName is the repository placeholderImages gives the ko image.
func placeholderName(ko string) string {
	return "registry.example/kjobs/" + koImages[ko]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// find returns the object of kind (with its API group, "" for core) and
// name, failing the test when there is none.
func find(t testing.TB, objs []*unstructured.Unstructured, group, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		if gvk.Group == group && gvk.Kind == kind && obj.GetName() == name {
			return obj
		}
	}
	t.Fatalf("no %s %s.%s in the rendered manifests", kind, name, group)
	return nil
}

// ofKind returns the objects of kind (with its API group, "" for core).
func ofKind(objs []*unstructured.Unstructured, group, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		if gvk := obj.GroupVersionKind(); gvk.Group == group && gvk.Kind == kind {
			out = append(out, obj)
		}
	}
	return out
}

// str returns the string at fields in obj, or "" when there is none.
func str(obj *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(obj.Object, fields...)
	return s
}
