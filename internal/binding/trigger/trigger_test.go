package trigger_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"sigs.k8s.io/yaml"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/binding/trigger"
)

// configTrigger reads config/300-trigger-requested.yaml, the Trigger whose
// delivery every binding's Trigger has.
func configTrigger(t testing.TB) *eventingv1.Trigger {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "300-trigger-requested.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tr eventingv1.Trigger
	if err := yaml.UnmarshalStrict(raw, &tr); err != nil {
		t.Fatal(err)
	}
	return &tr
}

// TestTriggerAsConfig checks a binding's Trigger against config/'s: the
// same Broker, subscriber, labels and delivery spec, with the binding's
// routes as the paths.
func TestTriggerAsConfig(t *testing.T) {
	t.Parallel()
	config := configTrigger(t)
	s := trigger.New(nil, trigger.Config{Namespace: config.Namespace})
	b := binding.Binding{
		Name:     "uploads",
		Filters:  []eventingv1.SubscriptionsAPIFilter{{Prefix: map[string]string{"type": "com.amazonaws.s3."}}},
		Function: "echo",
		Args:     []byte(`{"k":"v"}`),
	}
	now := time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC)
	tr, err := s.Trigger(b, now)
	if err != nil {
		t.Fatal(err)
	}

	if tr.Name != "kjobs-binding-uploads" || tr.Namespace != config.Namespace {
		t.Errorf("Trigger %s/%s, want %s/kjobs-binding-uploads", tr.Namespace, tr.Name, config.Namespace)
	}
	if tr.Spec.Broker != config.Spec.Broker {
		t.Errorf("broker %q, want config's %q", tr.Spec.Broker, config.Spec.Broker)
	}
	for k, v := range config.Labels {
		if tr.Labels[k] != v {
			t.Errorf("label %s = %q, want config's %q", k, tr.Labels[k], v)
		}
	}
	if tr.Labels[binding.LabelKey] != "uploads" {
		t.Errorf("label %s = %q, want uploads", binding.LabelKey, tr.Labels[binding.LabelKey])
	}

	// config/'s refs name no namespace; the webhook (here SetDefaults)
	// fills it in.
	ref := config.Spec.Subscriber.Ref.DeepCopy()
	ref.Namespace = config.Namespace
	wantSubscriber := duckv1.Destination{Ref: ref, URI: &apis.URL{Path: "/bindings/uploads"}}
	if diff := cmp.Diff(wantSubscriber, tr.Spec.Subscriber); diff != "" {
		t.Errorf("subscriber (-want +got):\n%s", diff)
	}
	wantDelivery := config.Spec.Delivery.DeepCopy()
	wantDelivery.DeadLetterSink = &duckv1.Destination{Ref: ref, URI: &apis.URL{Path: "/bindings/uploads/dead-letter"}}
	if diff := cmp.Diff(wantDelivery, tr.Spec.Delivery); diff != "" {
		t.Errorf("delivery (-want +got):\n%s", diff)
	}

	got, err := trigger.FromTrigger(tr)
	if err != nil {
		t.Fatal(err)
	}
	b.CreatedAt = now
	if diff := cmp.Diff(b, got); diff != "" {
		t.Errorf("FromTrigger (-want +got):\n%s", diff)
	}
}

// TestDispatcherURI checks the paths joined to a dispatcher given by its
// URI, as tests and hosts without Knative Serving give it.
func TestDispatcherURI(t *testing.T) {
	t.Parallel()
	uri, err := apis.ParseURL("http://127.0.0.1:8090/")
	if err != nil {
		t.Fatal(err)
	}
	s := trigger.New(nil, trigger.Config{Namespace: "ns", Dispatcher: duckv1.Destination{URI: uri}})
	tr, err := s.Trigger(binding.Binding{Name: "a", Filter: map[string]string{"type": "t"}, Function: "echo"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Spec.Subscriber.URI.String(), "http://127.0.0.1:8090/bindings/a"; got != want || tr.Spec.Subscriber.Ref != nil {
		t.Errorf("subscriber %v, want %s", tr.Spec.Subscriber, want)
	}
	if got, want := tr.Spec.Delivery.DeadLetterSink.URI.String(), "http://127.0.0.1:8090/bindings/a/dead-letter"; got != want {
		t.Errorf("dead-letter sink %s, want %s", got, want)
	}
	if got := tr.Spec.Filter.Attributes; !cmp.Equal(got, eventingv1.TriggerFilterAttributes{"type": "t"}) {
		t.Errorf("filter %v", got)
	}
}
