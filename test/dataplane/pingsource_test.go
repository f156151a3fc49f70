package dataplane

import (
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"

	"github.com/kjobs/kjobs/internal/testenv"
)

// TestPingSourceTicks: a PingSource whose sink is a Broker ticks through
// mtping on its schedule (a seconds field is accepted), with its
// CloudEvents overrides, and a Trigger filtering on them receives it.
func TestPingSourceTicks(t *testing.T) {
	t.Parallel()
	cfg, ns, _ := setup(t)
	testenv.Broker(t, cfg, ns, "default", nil)
	subscriber := newSink(t, http.StatusOK, 0)
	testenv.Trigger(t, cfg, ns, "default", "ticks", subscriber.URL, &testenv.TriggerOptions{
		Filter: map[string]string{"type": sourcesv1.PingSourceEventType, "kjobsorigin": "schedule"},
	})

	ps := &sourcesv1.PingSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "every-2s"},
		Spec: sourcesv1.PingSourceSpec{
			Schedule:    "*/2 * * * * *",
			ContentType: "application/json",
			Data:        `{"tick":true}`,
			SourceSpec: duckv1.SourceSpec{
				Sink: duckv1.Destination{Ref: &duckv1.KReference{
					APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default",
				}},
				CloudEventOverrides: &duckv1.CloudEventOverrides{Extensions: map[string]string{"kjobsorigin": "schedule"}},
			},
		},
	}
	ps.SetDefaults(t.Context())
	if errs := ps.Validate(apis.WithinParent(apis.WithinCreate(t.Context()), ps.ObjectMeta)).Filter(apis.ErrorLevel); errs != nil {
		t.Fatalf("PingSource is invalid: %v", errs)
	}
	cs := eventingclient.NewForConfigOrDie(cfg)
	if _, err := cs.SourcesV1().PingSources(ns).Create(t.Context(), ps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	first := subscriber.next(t, "the first tick")
	second := subscriber.next(t, "the second tick")
	for _, d := range []delivery{first, second} {
		if got := d.header.Get("Ce-Kjobsorigin"); got != "schedule" {
			t.Errorf("tick's ce-kjobsorigin %q, want schedule", got)
		}
		if d.body != `{"tick":true}` {
			t.Errorf("tick's body %q, want the PingSource's data", d.body)
		}
	}
	gap := second.at.Sub(first.at)
	t.Logf("ticks %s apart", gap)
	if gap < time.Second || gap > 4*time.Second {
		t.Errorf("ticks %s apart, want ~2s", gap)
	}
}
