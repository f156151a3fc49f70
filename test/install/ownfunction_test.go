package install_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/runner/kube"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestOwnFunction does what a team shipping a function of its own does: it
// builds the example module examples/resize, a module of its own on the
// public run package, with ko into a registry of the test's own, declares
// the image by digest with the args schema in examples/resize/resize.yaml,
// and runs it. The Job of an attempt runs exactly that image, and the API,
// which reads the declaration from the ConfigMap, refuses bad args with the
// schema's message and the JSON Pointer of the value.
func TestOwnFunction(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	crane := tool(t, "crane")
	registry := startRegistry(t)
	base := baseImage(t, crane, registry)

	image := koBuild(t, filepath.Join(repoRoot(t), "examples/resize"), base, registry+"/team")
	if !strings.HasPrefix(image, registry+"/team/resize@sha256:") {
		t.Fatalf("ko built %q, want %s/team/resize@sha256:...", image, registry)
	}
	checkImageConfig(t, crane, image, "/ko-app/resize")

	decl, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/resize/resize.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.JobsNamespace(t, cfg, map[string]string{"resize": "image: " + image + "\n" + string(decl)})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)

	// The API, checking requests against the ConfigMap it watches.
	functions := catalog.New(false)
	if err := catalog.Watch(ctx, client, ns, "kjobs-functions", functions, log); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{
		Store: store.New(testenv.Redis(t), store.Options{}), Sender: accept{}, Functions: functions, Log: log,
	}))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		name, body string
		status     int
		errors     []problem.Error
	}{
		{"valid", `{"function":"resize","args":{"source":{"width":1200,"height":800},"width":300}}`, http.StatusAccepted, nil},
		{"too narrow", `{"function":"resize","args":{"source":{"width":1200,"height":800},"width":0}}`, http.StatusBadRequest,
			[]problem.Error{{Detail: "minimum: got 0, want 1", Pointer: "#/args/width"}}},
		{"no source height", `{"function":"resize","args":{"source":{"width":1200},"width":300}}`, http.StatusBadRequest,
			[]problem.Error{{Detail: "missing property 'height'", Pointer: "#/args/source"}}},
	} {
		resp, err := http.Post(srv.URL+"/jobs", "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		var p problem.Details
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: POST /jobs = %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
		if diff := cmp.Diff(tt.errors, p.Errors); diff != "" {
			t.Errorf("%s: problem errors (-want +got):\n%s", tt.name, diff)
		}
	}

	// The dispatcher's runner, running an attempt of it as a Job.
	r, err := kube.New(ctx, client, kube.Config{Namespace: ns, Image: "registry.example/kjobs/processor:test"})
	if err != nil {
		t.Fatal(err)
	}
	const id = "0199a6a0-0000-7000-8000-00000000e5e1"
	args := job.Args{"source": map[string]any{"width": json.Number("1200"), "height": json.Number("800")}, "width": json.Number("300")}
	if _, err := r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "resize", Args: args}); err != nil {
		t.Fatal(err)
	}
	a, err := r.Wait(ctx, id, 1)
	if err != nil || a.Outcome != job.OutcomeSucceeded {
		t.Errorf("Wait() = %+v, %v; want the attempt succeeded", a, err)
	}
	j, err := client.BatchV1().Jobs(ns).Get(ctx, runner.Name(id, 1), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := j.Spec.Template.Spec.Containers[0]
	if c.Image != image {
		t.Errorf("the Job runs image %q, want the ko-built %q", c.Image, image)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	want := map[string]string{"KJOBS_FUNCTION": "resize", "KJOBS_ARGS": `{"source":{"height":800,"width":1200},"width":300}`, "KJOBS_JOB_ID": id, "KJOBS_ATTEMPT": "1"}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("the Job's environment (-want +got):\n%s", diff)
	}
}

// koBuild builds the main package in dir, a module of its own, with ko onto
// base and pushes it under repo; it returns the image by digest.
func koBuild(t *testing.T, dir, base, repo string) string {
	t.Helper()
	// A ko configuration of the team's own, not kjobs' ko.yaml (which make
	// test exports as KO_CONFIG_PATH): the module is not kjobs'.
	config := filepath.Join(t.TempDir(), ".ko.yaml")
	if err := os.WriteFile(config, []byte("defaultBaseImage: "+base+"\ndefaultPlatforms: [linux/amd64]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool(t, "ko"), "build", "--base-import-paths", "--sbom=none", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KO_DOCKER_REPO="+repo, "KO_CONFIG_PATH="+config)
	start := time.Now()
	out, stderr := run(t, cmd)
	t.Logf("ko build took %v; stderr:\n%s", time.Since(start).Round(time.Second), stderr)
	return strings.TrimSpace(out)
}

// accept is a Broker that takes every event.
type accept struct{}

func (accept) Send(context.Context, cloudevents.Event) error { return nil }
