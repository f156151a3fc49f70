package install_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/kjobs/kjobs/internal/testenv"
)

// caBundle is the host's CA bundle, which the test base image carries as
// distroless does.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// TestRelease does what a maintainer does, `make images` and then
// `make release KO_DOCKER_REPO=...`, against a registry of the test's own,
// with a base image made from local files since nothing can be pulled. It
// runs in a copy of the repository, because release rewrites the overlays.
// It checks that the images run as non-root with ko's entrypoint, that both
// targets build the same digests (ko builds are reproducible), that release
// pins exactly those digests in both overlays and leaves the rest of each
// file alone, and that the pinned prod overlay installs with plain
// `kubectl apply -k` (server dry run): no ko:// left.
func TestRelease(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	crane := tool(t, "crane")
	registry := startRegistry(t)
	base := baseImage(t, crane, registry)
	repo := copyRepo(t, repoRoot(t))
	dockerRepo := registry + "/kjobs"

	built := koRefs(t, makeTarget(t, repo, base, "images", "KO_DOCKER_REPO="+dockerRepo))
	if len(built) != len(koImages) {
		t.Fatalf("make images built %v, want one image for each of %v", built, sortedKeys(koImages))
	}
	for ko, ref := range built {
		want := dockerRepo + "/" + koImages[ko] + "@sha256:"
		if !strings.HasPrefix(ref, want) {
			t.Errorf("%s was pushed as %s, want %s...", ko, ref, want)
		}
		checkImageConfig(t, crane, ref, "/ko-app/"+koImages[ko])
	}

	released := koRefs(t, makeTarget(t, repo, base, "release", "KO_DOCKER_REPO="+dockerRepo))
	if diff := cmp.Diff(built, released); diff != "" {
		t.Errorf("make release pushed other digests than make images (-images +release):\n%s", diff)
	}

	for _, o := range overlays {
		original, err := os.ReadFile(filepath.Join(repoRoot(t), o, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		pinned, err := os.ReadFile(filepath.Join(repo, o, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(beforeImages(t, original), beforeImages(t, pinned)); diff != "" {
			t.Errorf("make release changed %s above images: (-before +after):\n%s", o, diff)
		}
		if diff := cmp.Diff(built, pinnedImages(t, pinned)); diff != "" {
			t.Errorf("%s images: (-pushed +pinned):\n%s", o, diff)
		}
	}

	prod := filepath.Join(repo, "kustomize/overlays/prod")
	for _, obj := range kustomize(t, prod) {
		j, _ := obj.MarshalJSON()
		if strings.Contains(string(j), "ko://") {
			t.Errorf("after make release, %s still has a ko:// reference", id(obj))
		}
	}
	ns := kjobsNamespace(t, cfg, prod)
	dryRun(t, "-k", overlay(t, prod, "namespace: "+ns+"\n"))
}

// startRegistry starts go-containerregistry's in-memory registry on a free
// loopback port, for the test alone, and returns its host:port. Registries
// on localhost are spoken to over plain HTTP.
func startRegistry(t testing.TB) string {
	t.Helper()
	// Port 0: the registry takes a free port itself and logs which.
	cmd := command(t, "registry", "-port", "0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ports := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		defer close(exited)
		serving := regexp.MustCompile(`serving on port (\d+)`)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			log.WriteString(s.Text() + "\n")
			if m := serving.FindStringSubmatch(s.Text()); m != nil {
				ports <- m[1]
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case port := <-ports:
		return "localhost:" + port
	case <-exited:
		t.Fatalf("registry exited:\n%s", log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("registry did not start within 30s")
	}
	return ""
}

// baseImage pushes a minimal base image to registry, the equivalent of
// distroless static:nonroot built from local files: a CA bundle, a nonroot
// user and group 65532 with its home, and an empty /tmp, run as 65532. It
// returns the image by digest.
func baseImage(t testing.TB, crane, registry string) string {
	t.Helper()
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		t.Fatalf("the base image needs the host's CA bundle (%v): install the ca-certificates package", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct {
		name     string
		mode     int64
		uid      int
		contents string
		dir      bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, contents: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		{name: "etc/group", mode: 0o644, contents: "root:x:0:\nnonroot:x:65532:\n"},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, contents: string(ca)},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: 65532, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, Typeflag: tar.TypeReg, Size: int64(len(f.contents))}
		if f.dir {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.contents)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "layer.tar")
	if err := os.WriteFile(tarball, layer.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	tag := registry + "/base:nonroot"
	run(t, exec.Command(crane, "append", "--oci-empty-base", "--platform", "linux/amd64", "-f", tarball, "-t", tag))
	out, _ := run(t, exec.Command(crane, "mutate", tag,
		"--user", "65532:65532", "--workdir", "/home/nonroot",
		"-e", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "-t", tag))
	return strings.TrimSpace(out)
}

// copyRepo copies the repository, without its Git data and build output,
// to a folder of the test's own and returns it.
func copyRepo(t testing.TB, root string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		switch rel {
		case ".git", "bin", "_output":
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		default: // a symlink or socket left by a tool; nothing builds from it
			return nil
		}
	})
	if err != nil {
		t.Fatalf("copying the repository: %v", err)
	}
	return dst
}

// makeTarget runs `make target args...` in repo as a user would, with the
// tools first in PATH and ko building on base for the one platform base
// has, and returns what make wrote to stdout.
func makeTarget(t testing.TB, repo, base, target string, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", repo, target}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "KO_DOCKER_REPO": // only the command line says where to push
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL": // from the `make test` running this test
		default:
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"PATH="+filepath.Dir(tool(t, "ko"))+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KO_DEFAULTBASEIMAGE="+base,
		"KO_DEFAULTPLATFORMS=linux/amd64",
	)
	start := time.Now()
	out, stderr := run(t, cmd)
	t.Logf("make %s took %v; stderr:\n%s", target, time.Since(start).Round(time.Second), stderr)
	return out
}

// koRefs reads hack/images.sh's lines "ko://<import path> <image by
// digest>" from output.
func koRefs(t testing.TB, output string) map[string]string {
	t.Helper()
	refs := map[string]string{}
	for line := range strings.Lines(output) {
		if ko, ref, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.HasPrefix(ko, "ko://") {
			refs[ko] = ref
		}
	}
	return refs
}

// checkImageConfig checks that image runs as the nonroot user, with ko's
// entrypoint for its main.
func checkImageConfig(t testing.TB, crane, image, entrypoint string) {
	t.Helper()
	out, _ := run(t, exec.Command(crane, "config", image))
	var cfg struct {
		Config struct {
			User       string
			Entrypoint []string
		}
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("config of %s: %v\n%s", image, err, out)
	}
	if uid, _, _ := strings.Cut(cfg.Config.User, ":"); uid != "65532" {
		t.Errorf("%s runs as user %q, want 65532 (nonroot)", image, cfg.Config.User)
	}
	if diff := cmp.Diff([]string{entrypoint}, cfg.Config.Entrypoint); diff != "" {
		t.Errorf("%s entrypoint (-want +got):\n%s", image, diff)
	}
}

// beforeImages returns a kustomization's text above its images: key, which
// make release must leave as it is.
func beforeImages(t testing.TB, kustomization []byte) string {
	t.Helper()
	before, _, ok := strings.Cut(string(kustomization), "\nimages:")
	if !ok {
		t.Fatalf("no images: key in\n%s", kustomization)
	}
	return before
}

// pinnedImages returns a kustomization's images: entries as ko:// name ->
// newName@digest.
func pinnedImages(t testing.TB, kustomization []byte) map[string]string {
	t.Helper()
	var k struct {
		Images []struct {
			Name, NewName, Digest string
		}
	}
	if err := yaml.Unmarshal(kustomization, &k); err != nil {
		t.Fatalf("parsing a kustomization: %v", err)
	}
	pinned := map[string]string{}
	for _, img := range k.Images {
		pinned[img.Name] = img.NewName + "@" + img.Digest
	}
	return pinned
}
