//go:build linux

package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	eventingconfig "knative.dev/eventing/pkg/apis/config"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
)

// The -kjobs mode sets by hand what Knative Eventing's webhook would
// default on the overlay's Broker and Triggers; this checks it against
// Knative's own SetDefaults, with the config-br-defaults the control plane
// applies from Eventing's module. (Only the test imports Knative: the
// binary uses the standard library and kubectl.)
func TestWebhookDefaults(t *testing.T) {
	ctx := context.Background()
	dirs, err := moduleDirs(ctx, eventingModule)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dirs[eventingModule], "config/core/configmaps/default-broker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	defaults, err := eventingconfig.NewDefaultsConfigFromConfigMap(&cm)
	if err != nil {
		t.Fatal(err)
	}
	admission := eventingconfig.ToContext(ctx, &eventingconfig.Config{Defaults: defaults})

	for _, file := range []string{"300-broker.yaml", "300-trigger-requested.yaml", "300-trigger-schedule.yaml"} {
		t.Run(file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("../../config", file))
			if err != nil {
				t.Fatal(err)
			}
			js, err := yaml.YAMLToJSON(raw)
			if err != nil {
				t.Fatal(err)
			}
			var ours object
			if err := json.Unmarshal(js, &ours); err != nil {
				t.Fatal(err)
			}
			switch ours["kind"] {
			case "Broker":
				var theirs eventingv1.Broker
				decode(t, js, &theirs)
				theirs.SetDefaults(admission)
				defaultBroker(ours)
				var got eventingv1.Broker
				decode(t, encode(t, ours), &got)
				if diff := cmp.Diff(theirs, got); diff != "" {
					t.Errorf("defaultBroker differs from Knative's SetDefaults (-Knative +ours):\n%s", diff)
				}
			case "Trigger":
				var theirs eventingv1.Trigger
				decode(t, js, &theirs)
				theirs.SetDefaults(admission)
				defaultTrigger(ours)
				var got eventingv1.Trigger
				decode(t, encode(t, ours), &got)
				if diff := cmp.Diff(theirs, got); diff != "" {
					t.Errorf("defaultTrigger differs from Knative's SetDefaults (-Knative +ours):\n%s", diff)
				}
			default:
				t.Fatalf("%s is a %v", file, ours["kind"])
			}
		})
	}
}

// The chaos entry for "fail" keeps _default's resources and adds kwok's
// chaos stage's label and annotations, in YAML kwok can template (no ": "
// in reason or message).
func TestAddChaos(t *testing.T) {
	cm := object{"data": object{"_default": "resources:\n  requests: {cpu: 100m}\n"}}
	if err := addChaos(cm); err != nil {
		t.Fatal(err)
	}
	var entry struct {
		Resources      map[string]any    `json:"resources"`
		PodLabels      map[string]string `json:"podLabels"`
		PodAnnotations map[string]string `json:"podAnnotations"`
	}
	if err := yaml.UnmarshalStrict([]byte(cm["data"].(object)["fail"].(string)), &entry); err != nil {
		t.Fatal(err)
	}
	if entry.Resources == nil || entry.PodLabels[chaosLabel] != "true" || entry.PodAnnotations[chaosLabel+"/exit-code"] != "1" {
		t.Errorf("fail entry: %+v", entry)
	}
	if msg := entry.PodAnnotations[chaosLabel+"/message"]; msg != chaosMessage || strings.Contains(msg, ": ") {
		t.Errorf("message %q", msg)
	}
	if err := addChaos(object{"data": object{"_default": "podLabels: {a: b}\n"}}); err == nil {
		t.Error("a _default with podLabels: no error")
	}
}

func decode(t *testing.T, js []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(js, v); err != nil {
		t.Fatal(err)
	}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestKjobsOnControlPlane runs the -kjobs mode's install (what make cluster
// does once its control plane is up) on the control plane of make test,
// which holds port 8080 so that a second one cannot run: the overlay, the
// API and the dispatcher as host processes on a redis-server of their own,
// behind Knative Eventing's real Broker. One job succeeds; one fails its 3
// attempts and is dead-lettered (kwok's chaos stage, through
// kjobs-functions); the stats count both exactly. Then it removes namespace
// kjobs, which no other test uses. (make cluster's kwok also finishes
// "sleep" pods after their seconds; the test control plane's finishes them
// at once.)
func TestKjobsOnControlPlane(t *testing.T) {
	kubeconfig := os.Getenv("KJOBS_KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("KJOBS_KUBECONFIG is not set: run the tests with make test, which starts a control plane")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := t.TempDir()
	c, err := attach(ctx, kubeconfig, logs)
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.prepareKjobs("../..", freePort())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			for _, name := range []string{apiService, dispatcherKsvc} {
				t.Logf("--- end of %s.log:\n%s", name, tail(filepath.Join(logs, name+".log"), 40))
			}
		}
		if err := k.uninstall(context.Background()); err != nil {
			t.Errorf("removing kjobs: %v", err)
		}
		c.cleanUp()
	})
	begin := time.Now()
	api, err := k.start(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kjobs API at %s after %.1fs", api, time.Since(begin).Seconds())
	token, _ := k.token()
	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, api+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	type job struct {
		ID       string
		Status   string
		Error    string
		Attempts []struct{ Outcome, Message string }
	}
	post := func(body string) string {
		t.Helper()
		status, out := call(http.MethodPost, "/jobs", body)
		var j job
		if status != http.StatusAccepted || json.Unmarshal(out, &j) != nil || j.ID == "" {
			t.Fatalf("POST /jobs %s: %d %s", body, status, out)
		}
		return j.ID
	}
	wait := func(id string) job {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			status, out := call(http.MethodGet, "/jobs/"+id, "")
			var j job
			if status != http.StatusOK || json.Unmarshal(out, &j) != nil {
				t.Fatalf("GET /jobs/%s: %d %s", id, status, out)
			}
			if j.Status == "succeeded" || j.Status == "failed" {
				return j
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s still %s after a minute: %s", id, j.Status, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	ok := post(`{"function":"sleep","args":{"seconds":"0"}}`)
	bad := post(`{"function":"fail","args":{"message":"boom"}}`)
	if j := wait(ok); j.Status != "succeeded" || len(j.Attempts) != 1 {
		t.Errorf("sleep: %+v", j)
	}
	j := wait(bad)
	if j.Status != "failed" || len(j.Attempts) != 3 || !strings.Contains(j.Error, "dead-letter") {
		t.Errorf("fail: want failed after 3 attempts with the dead letter's error, got %+v", j)
	}
	for _, a := range j.Attempts {
		if a.Outcome != "failed" || a.Message != chaosMessage {
			t.Errorf("fail's attempt: %+v, want failed with kwok's message %q", a, chaosMessage)
		}
	}
	status, out := call(http.MethodGet, "/jobs/stats", "")
	var stats map[string]int
	if status != http.StatusOK || json.Unmarshal(out, &stats) != nil {
		t.Fatalf("GET /jobs/stats: %d %s", status, out)
	}
	want := map[string]int{"succeeded": 1, "failed": 1, "retries": 2, "queued": 0, "running": 0, "retrying": 0}
	for key, n := range want {
		if stats[key] != n {
			t.Errorf("stats: %s = %d, want %d (%s)", key, stats[key], n, out)
		}
	}
	t.Logf("done after %.1fs", time.Since(begin).Seconds())
}
