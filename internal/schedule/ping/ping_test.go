package ping_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sourcesconfig "knative.dev/eventing/pkg/apis/sources/config"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/eventing/pkg/client/clientset/versioned/fake"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/schedule/ping"
)

const namespace = "kjobs"

// setup returns a Store over a fake clientset holding objects, and the
// clientset.
func setup(t *testing.T, cfg ping.Config, objects ...*sourcesv1.PingSource) (*ping.Store, *fake.Clientset) {
	t.Helper()
	client := fake.NewSimpleClientset()
	for _, o := range objects {
		if _, err := client.SourcesV1().PingSources(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client.ClearActions()
	return ping.New(client, cfg), client
}

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// wantPingSource is the PingSource kjobs' design asks for, but for the
// creation time, which the caller checks and copies in.
func wantPingSource(id, name, function, cron, timezone, data, broker string) *sourcesv1.PingSource {
	return &sourcesv1.PingSource{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "kjobs-schedule-" + id,
			Namespace: namespace,
			Labels:    map[string]string{"kjobs.dev/schedule": id, "app.kubernetes.io/managed-by": "kjobs"},
			Annotations: map[string]string{
				"kjobs.dev/name":     name,
				"kjobs.dev/function": function,
			},
		},
		Spec: sourcesv1.PingSourceSpec{
			SourceSpec: duckv1.SourceSpec{
				Sink: duckv1.Destination{Ref: &duckv1.KReference{
					APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: broker, Namespace: namespace,
				}},
				CloudEventOverrides: &duckv1.CloudEventOverrides{Extensions: map[string]string{"kjobsorigin": "schedule"}},
			},
			Schedule:    cron,
			Timezone:    timezone,
			ContentType: "application/json",
			Data:        data,
		},
	}
}

func TestCreateBuildsPingSource(t *testing.T) {
	t.Parallel()
	id := newID(t)
	tests := []struct {
		name   string
		cfg    ping.Config
		in     schedule.Schedule
		want   *sourcesv1.PingSource
		wantSc schedule.Schedule
	}{
		{
			name: "with timezone and args",
			cfg:  ping.Config{Namespace: namespace, Broker: "jobs"},
			in: schedule.Schedule{
				ID: id, Name: "weekday report", Cron: "0 9 * * 1-5", Timezone: "Europe/Paris",
				Function: "report", Args: job.Args{"format": "pdf", "to": "ops"},
				NextRuns: []time.Time{time.Now()},
			},
			want: wantPingSource(id, "weekday report", "report", "0 9 * * 1-5", "Europe/Paris",
				`{"function":"report","args":{"format":"pdf","to":"ops"},"schedule":"`+id+`"}`, "jobs"),
			wantSc: schedule.Schedule{
				ID: id, Name: "weekday report", Cron: "0 9 * * 1-5", Timezone: "Europe/Paris",
				Function: "report", Args: job.Args{"format": "pdf", "to": "ops"},
			},
		},
		{
			name: "default broker, no timezone, no args",
			cfg:  ping.Config{Namespace: namespace},
			in:   schedule.Schedule{ID: id, Cron: "*/10 * * * * *", Function: "sample"},
			want: wantPingSource(id, "", "sample", "*/10 * * * * *", "",
				`{"function":"sample","schedule":"`+id+`"}`, "kjobs"),
			wantSc: schedule.Schedule{ID: id, Cron: "*/10 * * * * *", Function: "sample", Args: job.Args{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, client := setup(t, tc.cfg)
			before := time.Now().UTC().Truncate(time.Second)
			got, err := s.Create(context.Background(), tc.in)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			after := time.Now()

			ps, err := client.SourcesV1().PingSources(namespace).Get(context.Background(), "kjobs-schedule-"+id, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the PingSource was not created: %v", err)
			}
			created, err := time.Parse(time.RFC3339, ps.Annotations["kjobs.dev/created-at"])
			if err != nil || created.Before(before) || created.After(after) {
				t.Errorf("annotation kjobs.dev/created-at = %q, want the time of Create in RFC 3339", ps.Annotations["kjobs.dev/created-at"])
			}
			tc.want.Annotations["kjobs.dev/created-at"] = ps.Annotations["kjobs.dev/created-at"]
			if diff := cmp.Diff(tc.want.ObjectMeta, ps.ObjectMeta); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want.Spec, ps.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}

			tc.wantSc.CreatedAt = created
			if diff := cmp.Diff(tc.wantSc, got); diff != "" {
				t.Errorf("Create returned (-want +got):\n%s", diff)
			}
			if got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt %v is not in UTC", got.CreatedAt)
			}
		})
	}
}

func TestCreateInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, cron, timezone string }{
		{"empty cron, which Knative would default", "", ""},
		{"@every", "@every 1m", ""},
		{"four fields", "* * * *", ""},
		{"out of range", "0 25 * * *", "UTC"},
		{"unknown timezone", "0 9 * * *", "Mars/Olympus_Mons"},
		{"unknown timezone in the cron field", "CRON_TZ=Mars/Olympus_Mons 0 9 * * *", ""},
		{"@every and unknown timezone", "@every 1m", "Mars/Olympus_Mons"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, client := setup(t, ping.Config{Namespace: namespace})
			_, err := s.Create(context.Background(), schedule.Schedule{ID: newID(t), Cron: tc.cron, Timezone: tc.timezone, Function: "sample"})
			var got *schedule.Error
			if !errors.As(err, &got) {
				t.Fatalf("Create = %v, want a *schedule.Error", err)
			}
			// The API answers the same whichever store it uses.
			var want *schedule.Error
			if !errors.As(schedule.Validate(tc.cron, tc.timezone), &want) {
				t.Fatalf("schedule.Validate accepts what Knative rejects")
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Create error (-schedule.Validate +Create):\n%s", diff)
			}
			if actions := client.Actions(); len(actions) != 0 {
				t.Errorf("Create called the API server: %v", actions)
			}
		})
	}
}

// TestCreateRejectedForConfig checks that Knative's validation of what
// kjobs itself sets is not blamed on the caller's fields.
func TestCreateRejectedForConfig(t *testing.T) {
	t.Parallel()
	s, client := setup(t, ping.Config{Namespace: namespace})
	// An operator's limit on spec.data, from Knative's config-ping-defaults.
	ctx := sourcesconfig.ToContext(context.Background(), &sourcesconfig.Config{
		PingDefaults: &sourcesconfig.PingDefaults{DataMaxSize: 16},
	})
	_, err := s.Create(ctx, schedule.Schedule{ID: newID(t), Cron: "@daily", Function: "sample"})
	var se *schedule.Error
	if err == nil || errors.As(err, &se) {
		t.Fatalf("Create = %v, want an error that is not a *schedule.Error", err)
	}
	if actions := client.Actions(); len(actions) != 0 {
		t.Errorf("Create called the API server: %v", actions)
	}
}

func TestCreateTwice(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, ping.Config{Namespace: namespace})
	sc := schedule.Schedule{ID: newID(t), Cron: "@daily", Function: "sample"}
	if _, err := s.Create(context.Background(), sc); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Create(context.Background(), sc); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second Create = %v, want AlreadyExists", err)
	}
	if _, err := s.Create(context.Background(), schedule.Schedule{Cron: "@daily", Function: "sample"}); err == nil {
		t.Errorf("Create without an ID succeeded, want an error")
	}
}

func TestListGetDelete(t *testing.T) {
	t.Parallel()
	old := metav1.NewTime(time.Date(2026, time.January, 2, 3, 4, 5, 0, time.UTC))
	handmade := newID(t)
	// A PingSource a person labelled by hand, without kjobs' annotations.
	byHand := wantPingSource(handmade, "", "", "@hourly", "", `{"function":"sample","args":{"a":"b"}}`, "kjobs")
	byHand.Annotations = nil
	byHand.CreationTimestamp = old
	// Neither of these is a kjobs schedule of the namespace.
	other := wantPingSource(newID(t), "x", "sample", "@daily", "", `{"function":"sample"}`, "kjobs")
	other.Namespace = "elsewhere"
	unlabelled := wantPingSource(newID(t), "x", "sample", "@daily", "", `{"function":"sample"}`, "kjobs")
	unlabelled.Labels = nil

	s, _ := setup(t, ping.Config{Namespace: namespace}, byHand, other, unlabelled)
	ctx := context.Background()
	var want []schedule.Schedule
	want = append(want, schedule.Schedule{ID: handmade, Cron: "@hourly", Function: "sample", Args: job.Args{"a": "b"}, CreatedAt: old.Time})
	for _, in := range []schedule.Schedule{
		{ID: newID(t), Name: "one", Cron: "0 * * * *", Function: "sample", Args: job.Args{"n": "1"}},
		{ID: newID(t), Name: "two", Cron: "30 1 * * *", Timezone: "Asia/Tokyo", Function: "report"},
	} {
		got, err := s.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		want = append(want, got)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff(want, list, cmpopts.SortSlices(func(a, b schedule.Schedule) bool { return a.ID < b.ID })); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if list[0].ID != handmade {
		t.Errorf("List starts with %s, want the oldest, %s", list[0].ID, handmade)
	}
	for _, w := range want {
		got, err := s.Get(ctx, w.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	}

	if err := s.Delete(ctx, want[1].ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, want[1].ID); !errors.Is(err, schedule.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, want[1].ID); !errors.Is(err, schedule.ErrNotFound) {
		t.Errorf("Delete after Delete = %v, want ErrNotFound", err)
	}
	for name, id := range map[string]string{
		"in another namespace":   other.Labels["kjobs.dev/schedule"],
		"with a slash in its ID": "a/b",
		"with a % in its ID":     "a%2Fb",
	} {
		if _, err := s.Get(ctx, id); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("Get of a schedule %s = %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(ctx, id); !errors.Is(err, schedule.ErrNotFound) {
			t.Errorf("Delete of a schedule %s = %v, want ErrNotFound", name, err)
		}
	}
	list, err = s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff([]schedule.Schedule{want[0], want[2]}, list); diff != "" {
		t.Errorf("List after Delete (-want +got):\n%s", diff)
	}
}

func TestBrokenPingSource(t *testing.T) {
	t.Parallel()
	id := newID(t)
	broken := wantPingSource(id, "", "", "@hourly", "", "not JSON", "kjobs")
	s, _ := setup(t, ping.Config{Namespace: namespace}, broken)
	if _, err := s.List(context.Background()); err == nil {
		t.Errorf("List of a PingSource whose data is not a job request succeeded, want an error")
	}
	if _, err := s.Get(context.Background(), id); err == nil || errors.Is(err, schedule.ErrNotFound) {
		t.Errorf("Get of a PingSource whose data is not a job request = %v, want an error naming it", err)
	}
}

// TestSetPausedByHand pauses and resumes the PingSource of a schedule
// labelled by hand, which has no ceOverrides: pausing adds them, resuming
// leaves none that say paused.
func TestSetPausedByHand(t *testing.T) {
	t.Parallel()
	id := newID(t)
	ps := wantPingSource(id, "by hand", "echo", "@hourly", "", `{"function":"echo","schedule":"`+id+`"}`, "kjobs")
	ps.Spec.CloudEventOverrides = nil
	ps.Annotations = nil
	s, client := setup(t, ping.Config{Namespace: namespace}, ps)
	ctx := context.Background()
	for _, paused := range []bool{true, false} {
		got, err := s.SetPaused(ctx, id, paused)
		if err != nil || got.Paused != paused {
			t.Fatalf("SetPaused(%v) = paused %v, %v", paused, got.Paused, err)
		}
		stored, err := client.SourcesV1().PingSources(namespace).Get(ctx, ps.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ext map[string]string
		if o := stored.Spec.CloudEventOverrides; o != nil {
			ext = o.Extensions
		}
		if (ext["kjobspaused"] == "true") != paused || (stored.Annotations[ping.AnnotationPaused] == "true") != paused {
			t.Errorf("after SetPaused(%v): extensions %v, annotations %v", paused, ext, stored.Annotations)
		}
	}
}
