package ping_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"knative.dev/eventing/pkg/client/clientset/versioned"
	"knative.dev/pkg/apis"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/schedule/ping"
	"github.com/kjobs/kjobs/internal/testenv"
)

// kubectlPingSource is what a test reads of a PingSource in kubectl's JSON.
// The spec stays untyped: a field the CRD's schema pruned would be missing
// here, where a typed field would only read as empty.
type kubectlPingSource struct {
	Metadata struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

// kubectlPingSources returns the PingSources in ns as kubectl shows them,
// by name.
func kubectlPingSources(t *testing.T, ns string) map[string]kubectlPingSource {
	t.Helper()
	out, err := testenv.Kubectl(t, "get", "pingsources.sources.knative.dev", "--namespace", ns, "--output", "json")
	if err != nil {
		t.Fatalf("kubectl get pingsources: %v\n%s", err, out)
	}
	var list struct{ Items []kubectlPingSource }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("kubectl get pingsources: %v\n%s", err, out)
	}
	byName := make(map[string]kubectlPingSource, len(list.Items))
	for _, ps := range list.Items {
		byName[ps.Metadata.Name] = ps
	}
	return byName
}

// fromKubectl rebuilds a schedule from kubectl's view of its PingSource,
// independently of the Store.
func fromKubectl(t *testing.T, ps kubectlPingSource) schedule.Schedule {
	t.Helper()
	var req job.Request
	data, _ := ps.Spec["data"].(string)
	if err := json.Unmarshal([]byte(data), &req); err != nil {
		t.Fatalf("PingSource %s: spec.data %q: %v", ps.Metadata.Name, data, err)
	}
	created, err := time.Parse(time.RFC3339, ps.Metadata.Annotations["kjobs.dev/created-at"])
	if err != nil {
		t.Fatalf("PingSource %s: %v", ps.Metadata.Name, err)
	}
	cron, _ := ps.Spec["schedule"].(string)
	timezone, _ := ps.Spec["timezone"].(string)
	if req.Args == nil {
		req.Args = job.Args{}
	}
	return schedule.Schedule{
		ID:        ps.Metadata.Labels["kjobs.dev/schedule"],
		Name:      ps.Metadata.Annotations["kjobs.dev/name"],
		Cron:      cron,
		Timezone:  timezone,
		Function:  ps.Metadata.Annotations["kjobs.dev/function"],
		Args:      req.Args,
		CreatedAt: created,
	}
}

// TestInCluster runs the Store against the test control plane, whose
// PingSource CRD comes from the same Knative release as the Go types, and
// checks each step against what kubectl shows.
func TestInCluster(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, nil)
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := ping.New(client, ping.Config{Namespace: ns, Broker: "kjobs"})
	ctx := context.Background()

	report, err := s.Create(ctx, schedule.Schedule{
		ID: newID(t), Name: "weekday report", Cron: "0 9 * * 1-5", Timezone: "Europe/Paris",
		Function: "report", Args: job.Args{"to": "ops", "format": "pdf"},
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	often, err := s.Create(ctx, schedule.Schedule{
		ID: newID(t), Name: "every 10s", Cron: "*/10 * * * * *", Function: "sample", Args: job.Args{},
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	t.Run("the cluster keeps the whole spec", func(t *testing.T) {
		got := kubectlPingSources(t, ns)["kjobs-schedule-"+report.ID]
		want := map[string]any{
			"schedule":    "0 9 * * 1-5",
			"timezone":    "Europe/Paris",
			"contentType": "application/json",
			"data":        `{"function":"report","args":{"format":"pdf","to":"ops"},"schedule":"` + report.ID + `"}`,
			"sink": map[string]any{"ref": map[string]any{
				"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "kjobs", "namespace": ns,
			}},
			"ceOverrides": map[string]any{"extensions": map[string]any{"kjobsorigin": "schedule"}},
		}
		if diff := cmp.Diff(want, got.Spec); diff != "" {
			t.Errorf("spec (-want +got):\n%s", diff)
		}
		wantLabels := map[string]string{"kjobs.dev/schedule": report.ID, "app.kubernetes.io/managed-by": "kjobs"}
		if diff := cmp.Diff(wantLabels, got.Metadata.Labels); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
		for k, want := range map[string]string{"kjobs.dev/name": "weekday report", "kjobs.dev/function": "report"} {
			if got := got.Metadata.Annotations[k]; got != want {
				t.Errorf("annotation %s = %q, want %q", k, got, want)
			}
		}
	})

	t.Run("List and Get match kubectl", func(t *testing.T) {
		shown := kubectlPingSources(t, ns)
		var want []schedule.Schedule
		for _, sc := range []schedule.Schedule{report, often} {
			ps, ok := shown["kjobs-schedule-"+sc.ID]
			if !ok {
				t.Fatalf("kubectl shows no PingSource kjobs-schedule-%s", sc.ID)
			}
			want = append(want, fromKubectl(t, ps))
		}
		if diff := cmp.Diff(want, []schedule.Schedule{report, often}); diff != "" {
			t.Errorf("Create returned other than kubectl shows (-kubectl +Create):\n%s", diff)
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		// Both were created within the same second, maybe: List orders
		// them by creation time, then ID, as the two UUIDv7s are.
		if diff := cmp.Diff(want, list); diff != "" {
			t.Errorf("List (-kubectl +List):\n%s", diff)
		}
		for _, w := range want {
			got, err := s.Get(ctx, w.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("Get (-kubectl +Get):\n%s", diff)
			}
		}
	})

	t.Run("invalid schedules leave nothing behind", func(t *testing.T) {
		for _, in := range []schedule.Schedule{
			{ID: newID(t), Cron: "@every 1m", Function: "sample"},
			{ID: newID(t), Cron: "61 * * * *", Function: "sample"},
			{ID: newID(t), Cron: "0 9 * * *", Timezone: "Mars/Olympus_Mons", Function: "sample"},
		} {
			var se *schedule.Error
			if _, err := s.Create(ctx, in); !errors.As(err, &se) {
				t.Errorf("Create(%q, %q) = %v, want a *schedule.Error", in.Cron, in.Timezone, err)
			}
			out, err := testenv.Kubectl(t, "get", "pingsources.sources.knative.dev", "kjobs-schedule-"+in.ID, "--namespace", ns)
			if err == nil || !strings.Contains(out, "NotFound") {
				t.Errorf("kubectl get pingsource kjobs-schedule-%s after a failed Create: %v\n%s", in.ID, err, out)
			}
		}
		if n := len(kubectlPingSources(t, ns)); n != 2 {
			t.Errorf("kubectl shows %d PingSources, want the 2 valid ones", n)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if err := s.Delete(ctx, report.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		shown := kubectlPingSources(t, ns)
		if _, ok := shown["kjobs-schedule-"+report.ID]; ok || len(shown) != 1 {
			t.Errorf("kubectl shows %d PingSources after Delete, want only kjobs-schedule-%s", len(shown), often.ID)
		}
		if _, err := s.Get(ctx, report.ID); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("Get after Delete = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, report.ID); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("Delete after Delete = %v, want ErrNotFound", err)
		}
		// client-go refuses such a name before asking the server.
		if _, err := s.Get(ctx, "a/b"); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("Get of ID a/b = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "a/b"); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("Delete of ID a/b = %v, want ErrNotFound", err)
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if diff := cmp.Diff([]schedule.Schedule{often}, list); diff != "" {
			t.Errorf("List after Delete (-want +got):\n%s", diff)
		}
	})
}

// TestPauseInCluster pauses and resumes a schedule on the test control
// plane and checks what kubectl shows, that Knative's own validation takes
// the PingSource, and that a new Store, as a restarted API has, reads the
// state back.
func TestPauseInCluster(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, nil)
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := ping.New(client, ping.Config{Namespace: ns, Broker: "kjobs"})
	ctx := context.Background()
	sc, err := s.Create(ctx, schedule.Schedule{ID: newID(t), Cron: "*/10 * * * * *", Function: "sample", Args: job.Args{}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	name := "kjobs-schedule-" + sc.ID

	for _, step := range []struct {
		name   string
		paused bool
		// unchanged is true when the PingSource is not to be written.
		unchanged      bool
		wantExtensions map[string]any
	}{
		{name: "pause", paused: true, wantExtensions: map[string]any{"kjobsorigin": "schedule", "kjobspaused": "true"}},
		{name: "pause again", paused: true, unchanged: true, wantExtensions: map[string]any{"kjobsorigin": "schedule", "kjobspaused": "true"}},
		{name: "resume", paused: false, wantExtensions: map[string]any{"kjobsorigin": "schedule"}},
		{name: "resume again", paused: false, unchanged: true, wantExtensions: map[string]any{"kjobsorigin": "schedule"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			before, err := client.SourcesV1().PingSources(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.SetPaused(ctx, sc.ID, step.paused)
			if err != nil {
				t.Fatalf("SetPaused(%v): %v", step.paused, err)
			}
			want := sc
			want.Paused = step.paused
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("SetPaused (-want +got):\n%s", diff)
			}

			shown := kubectlPingSources(t, ns)[name]
			if diff := cmp.Diff(map[string]any{"extensions": step.wantExtensions}, shown.Spec["ceOverrides"]); diff != "" {
				t.Errorf("kubectl's spec.ceOverrides (-want +got):\n%s", diff)
			}
			if v, ok := shown.Metadata.Annotations[ping.AnnotationPaused]; step.paused != ok || ok && v != "true" {
				t.Errorf("kubectl's annotation %s = %q (present %v), want present only while paused, as \"true\"", ping.AnnotationPaused, v, ok)
			}

			after, err := client.SourcesV1().PingSources(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if written := after.ResourceVersion != before.ResourceVersion; written == step.unchanged {
				t.Errorf("PingSource written: %v, want %v", written, !step.unchanged)
			}
			// What Knative's webhook would say of the update, were one
			// running here.
			vctx := apis.WithinUpdate(apis.WithinParent(ctx, after.ObjectMeta), before)
			if fe := after.Validate(vctx); fe != nil {
				t.Errorf("Knative's Validate of the updated PingSource: %v", fe)
			}

			// A new Store, as the API has once restarted, reads the state
			// from the cluster.
			restarted := ping.New(client, ping.Config{Namespace: ns, Broker: "kjobs"})
			if got, err := restarted.Get(ctx, sc.ID); err != nil || got.Paused != step.paused {
				t.Errorf("Get = paused %v, %v; want %v", got.Paused, err, step.paused)
			}
			list, err := restarted.List(ctx)
			if err != nil || len(list) != 1 || list[0].Paused != step.paused {
				t.Errorf("List = %+v, %v; want the schedule, paused %v", list, err, step.paused)
			}
		})
	}

	t.Run("unknown or being deleted", func(t *testing.T) {
		if _, err := s.SetPaused(ctx, newID(t), true); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("SetPaused of an unknown schedule = %v, want ErrNotFound", err)
		}
		if _, err := s.SetPaused(ctx, "a/b", true); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("SetPaused of ID a/b = %v, want ErrNotFound", err)
		}
		// A finalizer of the test's holds the PingSource while it is being
		// deleted, as Knative's reconciler may. It is added and removed by
		// read, change, update, since Knative's controller changes the
		// finalizers too.
		const finalizer = "kjobs.dev/test-hold"
		hold := func(add bool) {
			t.Helper()
			pingSources := client.SourcesV1().PingSources(ns)
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				ps, err := pingSources.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				ps.Finalizers = slices.DeleteFunc(ps.Finalizers, func(f string) bool { return f == finalizer })
				if add {
					ps.Finalizers = append(ps.Finalizers, finalizer)
				}
				_, err = pingSources.Update(ctx, ps, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		hold(true)
		if err := client.SourcesV1().PingSources(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetPaused(ctx, sc.ID, true); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("SetPaused of a schedule being deleted = %v, want ErrNotFound", err)
		}
		ps, err := client.SourcesV1().PingSources(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ps.Annotations[ping.AnnotationPaused] != "" {
			t.Errorf("SetPaused paused a schedule being deleted")
		}
		hold(false)
	})
}
