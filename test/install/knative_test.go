package install_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	servingconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
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
			if want := 6; checked != want { // Broker, 2 Triggers, 2 Services, SinkBinding
				t.Errorf("validated %d Knative objects, want %d", checked, want)
			}
		})
	}
}

// knativeContext returns a context carrying Knative's default settings, as
// its webhook would load them from empty config-features, config-defaults
// and Eventing's feature flags.
func knativeContext(t testing.TB) context.Context {
	t.Helper()
	f, err := servingconfig.NewFeaturesConfigFromMap(nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := servingconfig.NewDefaultsConfigFromMap(nil)
	if err != nil {
		t.Fatal(err)
	}
	flags, err := feature.NewFlagsConfigFromMap(nil)
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
