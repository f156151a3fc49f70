package install_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingv1alpha1 "knative.dev/eventing/pkg/apis/eventing/v1alpha1"
	"knative.dev/eventing/pkg/apis/feature"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/eventing/pkg/auth"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/logging"
	servingconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/kjobs/kjobs/internal/schedule"
)

// knativeObject is what Knative's admission webhook calls on an object.
type knativeObject interface {
	apis.Defaultable
	apis.Validatable
}

// TestKnativeValidation runs Knative's own defaulting and validation, which
// its webhook would run on apply, on every Knative object of both overlays.
// The test control plane has Knative's CRDs but not its webhook, so this is
// what catches a reserved variable, a probe Knative rejects, a field behind
// a feature flag or a timeout above the default maximum: the install must
// work on a Knative with its default settings.
func TestKnativeValidation(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(filepath.Base(o), func(t *testing.T) {
			t.Parallel()
			objs := kustomize(t, overlay(t, filepath.Join(repoRoot(t), o), placeholderImages()))
			ctx := knativeContext(t)
			checked := 0
			for _, obj := range objs {
				v := typed(t, obj)
				if v == nil {
					continue
				}
				checked++
				v.SetDefaults(ctx)
				if err := v.Validate(ctx).Filter(apis.ErrorLevel); err != nil {
					t.Errorf("Knative rejects %s: %v", id(obj), err)
				}
			}
			if want := 7; checked != want { // Broker, 2 Triggers, 2 Services, 2 SinkBindings
				t.Errorf("validated %d Knative objects, want %d", checked, want)
			}
		})
	}
}

// TestEventPolicyComponent checks the optional EventPolicy
// (kustomize/components/eventpolicy) over the dev overlay: Knative refuses
// it while authentication-oidc is off, which is why no overlay includes it,
// and accepts it once the feature is on; it guards the install's Broker;
// and its subjects match the identities Eventing gives the API's
// SinkBinding (resolved from the reference) and the PingSources the API
// creates, by Eventing's own matching.
func TestEventPolicyComponent(t *testing.T) {
	t.Parallel()
	objs := kustomize(t, eventPolicyOverlay(t))
	u := find(t, objs, "eventing.knative.dev", "EventPolicy", "kjobs-broker")

	ep := typed(t, u).(*eventingv1alpha1.EventPolicy)
	ep.SetDefaults(knativeContext(t))
	if err := ep.Validate(knativeContext(t)).Filter(apis.ErrorLevel); err == nil || !strings.Contains(err.Error(), "oidc-authentication feature not enabled") {
		t.Errorf("with authentication-oidc off Knative answers %v, want the feature's error", err)
	}
	ep = typed(t, u).(*eventingv1alpha1.EventPolicy)
	ctx := knativeContextWith(t, map[string]string{feature.OIDCAuthentication: string(feature.Enabled)})
	ep.SetDefaults(ctx)
	if err := ep.Validate(ctx).Filter(apis.ErrorLevel); err != nil {
		t.Errorf("with authentication-oidc on Knative rejects %s: %v", id(u), err)
	}

	broker := find(t, objs, "eventing.knative.dev", "Broker", "kjobs")
	want := []eventingv1alpha1.EventPolicySpecTo{{Ref: &eventingv1alpha1.EventPolicyToReference{
		APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: broker.GetName(),
	}}}
	if diff := cmp.Diff(want, ep.Spec.To); diff != "" {
		t.Errorf("EventPolicy to, want the Broker only (-want +got):\n%s", diff)
	}

	var refs, subs []string
	for _, from := range ep.Spec.From {
		if from.Ref != nil {
			refs = append(refs, from.Ref.Kind+"/"+from.Ref.Namespace+"/"+from.Ref.Name)
		} else {
			subs = append(subs, *from.Sub)
		}
	}
	var senders []string
	for _, name := range []string{"kjobs-api", "kjobs-dispatcher"} { // POST /jobs, and the sweep
		sb := find(t, objs, "sources.knative.dev", "SinkBinding", name)
		senders = append(senders, "SinkBinding/"+sb.GetNamespace()+"/"+sb.GetName())
	}
	if !slices.Equal(refs, senders) {
		t.Errorf("EventPolicy from refs = %v, want %v", refs, senders)
	}
	allowed := []auth.SubjectsWithFilters{{Subjects: subs}}
	event := cloudevents.NewEvent()
	event.SetID("1")
	event.SetSource("/kjobs/test")
	event.SetType("dev.knative.sources.ping")
	logger := logging.FromContext(ctx)
	pass := func(sa string) bool {
		return auth.SubjectAndFiltersPass(ctx, "system:serviceaccount:"+broker.GetNamespace()+":"+sa, allowed, &event, logger)
	}
	// Schedule IDs are UUIDs (long names are hashed) or shorter.
	for _, id := range []string{"0190f5b2-8a4e-7c3d-9e2f-1a2b3c4d5e6f", "a1"} {
		sa := auth.GetOIDCServiceAccountNameForResource(sourcesv1.SchemeGroupVersion.WithKind("PingSource"),
			metav1.ObjectMeta{Name: schedule.ResourceName(id), Namespace: broker.GetNamespace()})
		if !pass(sa) {
			t.Errorf("the PingSource of schedule %s sends as %s, which the EventPolicy's %v refuse", id, sa, subs)
		}
	}
	for _, sa := range []string{"default", "kjobs-dispatcher", "kjobs-job"} {
		if pass(sa) {
			t.Errorf("the EventPolicy's %v let service account %s send to the Broker", subs, sa)
		}
	}

	// A namePrefix and nameSuffix reach its references
	// (kustomize/base/knative-references.yaml).
	renamed := kustomize(t, overlay(t, eventPolicyOverlay(t), "namePrefix: a-\nnameSuffix: -z\n"))
	rep := find(t, renamed, "eventing.knative.dev", "EventPolicy", "a-kjobs-broker-z")
	to, _, _ := unstructured.NestedSlice(rep.Object, "spec", "to")
	from, _, _ := unstructured.NestedSlice(rep.Object, "spec", "from")
	if len(to) == 0 || len(from) == 0 {
		t.Fatalf("renamed EventPolicy has to %v, from %v", to, from)
	}
	if got, _, _ := unstructured.NestedString(to[0].(map[string]any), "ref", "name"); got != "a-kjobs-z" {
		t.Errorf("renamed EventPolicy's to refers to %q, want a-kjobs-z", got)
	}
	if got, _, _ := unstructured.NestedString(from[0].(map[string]any), "ref", "name"); got != "a-kjobs-api-z" {
		t.Errorf("renamed EventPolicy's from refers to %q, want a-kjobs-api-z", got)
	}
}

// eventPolicyOverlay returns the folder of a kustomization of the test's
// own: the dev overlay with the EventPolicy component and placeholder
// images.
func eventPolicyOverlay(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	dir := overlay(t, filepath.Join(root, "kustomize/overlays/dev"), placeholderImages())
	rel, err := filepath.Rel(dir, filepath.Join(root, "kustomize/components/eventpolicy"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "kustomization.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "components:\n  - %s\n", rel); err != nil {
		t.Fatal(err)
	}
	return dir
}

// knativeContext returns a context carrying Knative's default settings, as
// its webhook would load them from empty config-features, config-defaults
// and Eventing's feature flags.
func knativeContext(t testing.TB) context.Context {
	t.Helper()
	return knativeContextWith(t, nil)
}

// knativeContextWith is knativeContext with Eventing's feature flags set
// from features, as config-features would set them.
func knativeContextWith(t testing.TB, features map[string]string) context.Context {
	t.Helper()
	f, err := servingconfig.NewFeaturesConfigFromMap(nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := servingconfig.NewDefaultsConfigFromMap(nil)
	if err != nil {
		t.Fatal(err)
	}
	flags, err := feature.NewFlagsConfigFromMap(features)
	if err != nil {
		t.Fatal(err)
	}
	ctx := servingconfig.ToContext(context.Background(), &servingconfig.Config{Features: f, Defaults: d})
	return apis.WithinCreate(feature.ToContext(ctx, flags))
}

// typed converts a Knative object to its Go type, and returns nil for any
// other object.
func typed(t testing.TB, obj *unstructured.Unstructured) knativeObject {
	t.Helper()
	var v knativeObject
	switch gvk := obj.GroupVersionKind(); gvk.Group + "/" + gvk.Kind {
	case "serving.knative.dev/Service":
		v = &servingv1.Service{}
	case "eventing.knative.dev/Broker":
		v = &eventingv1.Broker{}
	case "eventing.knative.dev/Trigger":
		v = &eventingv1.Trigger{}
	case "eventing.knative.dev/EventPolicy":
		v = &eventingv1alpha1.EventPolicy{}
	case "sources.knative.dev/SinkBinding":
		v = &sourcesv1.SinkBinding{}
	default:
		if strings.Contains(gvk.Group, "knative.dev") {
			t.Fatalf("%s: no Knative validation for this kind here; add it", id(obj))
		}
		return nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, v); err != nil {
		t.Fatalf("%s: %v", id(obj), err)
	}
	return v
}
