package kube

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kjobs/kjobs/internal/catalog"
)

// TestCatalogKnowsPlacement checks that the catalog, which parses entries as
// strictly as placementFor, knows every field of Placement but those of
// the Declaration it embeds: it would refuse an entry the runner reads.
func TestCatalogKnowsPlacement(t *testing.T) {
	t.Parallel()
	var fields []string
	typ := reflect.TypeFor[Placement]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	if diff := cmp.Diff(fields, catalog.PlacementFields()); diff != "" {
		t.Errorf("catalog.PlacementFields() differs from Placement's fields (-Placement +catalog):\n%s", diff)
	}
}

func TestPlacementFor(t *testing.T) {
	t.Parallel()
	full := `
resources:
  requests: {cpu: 250m, memory: 64Mi}
  limits: {memory: 128Mi}
nodeSelector: {kubernetes.io/arch: arm64}
tolerations:
- {key: dedicated, operator: Equal, value: batch, effect: NoSchedule}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: zone, operator: In, values: [a, b]}
podLabels: {cost-center: analytics}
podAnnotations: {example.com/owner: data-team}
`
	tests := []struct {
		name     string
		data     map[string]string
		function string
		want     Placement
		// wantErr lists what the error must say; none means no error.
		wantErr []string
	}{{
		name:     "no ConfigMap entries",
		function: "sample",
	}, {
		name:     "the function's own entry, every field",
		data:     map[string]string{"report": full, "_default": "nodeSelector: {pool: default}"},
		function: "report",
		want: Placement{
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
			NodeSelector: map[string]string{"kubernetes.io/arch": "arm64"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "batch", Effect: corev1.TaintEffectNoSchedule}},
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}},
				}}},
			}},
			PodLabels:      map[string]string{"cost-center": "analytics"},
			PodAnnotations: map[string]string{"example.com/owner": "data-team"},
		},
	}, {
		name:     "_default replaces a missing entry, unmerged",
		data:     map[string]string{"report": full, "_default": "nodeSelector: {pool: default}"},
		function: "sample",
		want:     Placement{NodeSelector: map[string]string{"pool": "default"}},
	}, {
		name:     "another function's broken entry does not matter",
		data:     map[string]string{"broken": "resources: [", "sample": "nodeSelector: {pool: a}"},
		function: "sample",
		want:     Placement{NodeSelector: map[string]string{"pool": "a"}},
	}, {
		name:     "malformed YAML names its key",
		data:     map[string]string{"sample": "resources: ["},
		function: "sample",
		wantErr:  []string{`key "sample" is malformed`},
	}, {
		name:     "a misspelt field names its key and the field",
		data:     map[string]string{"_default": "nodeselector: {pool: a}"},
		function: "sample",
		wantErr:  []string{`key "_default" is malformed`, "nodeselector"},
	}, {
		name:     "a wrongly typed value",
		data:     map[string]string{"sample": "tolerations: {key: a}"},
		function: "sample",
		wantErr:  []string{`key "sample" is malformed`},
	}, {
		name:     "kjobs' own labels are refused",
		data:     map[string]string{"sample": "podLabels: {kjobs.dev/job-id: other}"},
		function: "sample",
		wantErr:  []string{`key "sample" is malformed`, `"kjobs.dev/job-id" is set by kjobs itself`},
	}, {
		name:     "managed-by is refused",
		data:     map[string]string{"sample": "podLabels: {app.kubernetes.io/managed-by: me}"},
		function: "sample",
		wantErr:  []string{`"app.kubernetes.io/managed-by" is set by kjobs itself`},
	}, {
		name:     "a label value that is not one",
		data:     map[string]string{"sample": "podLabels: {team: a b}"},
		function: "sample",
		wantErr:  []string{`podLabels: "team": "a b" is not a label value`},
	}, {
		name:     "a declared function's own entry",
		data:     map[string]string{"resize": "image: ghcr.io/team/resize:1\ncommand: [/resize]\ncontainerArgs: [-v]\nargsSchema: {type: object}\nlocal: ./resize\nmaxRunning: 2", "_default": "maxRunning: 1"},
		function: "resize",
		want: Placement{
			Declaration: catalog.Declaration{Image: "ghcr.io/team/resize:1", Command: []string{"/resize"}, ContainerArgs: []string{"-v"}, ArgsSchema: []byte(`{"type":"object"}`), Local: "./resize"},
			MaxRunning:  new(2),
		},
	}, {
		name:     "_default may not name an image",
		data:     map[string]string{"_default": "image: ghcr.io/team/resize:1"},
		function: "resize",
		wantErr:  []string{`key "_default" is malformed: it may not set image, command or containerArgs`},
	}, {
		name:     "a built-in function runs in the processor image",
		data:     map[string]string{"sleep": "command: [/bin/sh]"},
		function: "sleep",
		wantErr:  []string{`key "sleep" is malformed: it may not set image, command or containerArgs`},
	}, {
		name:     "an annotation key that is not one",
		data:     map[string]string{"sample": "podAnnotations: {'bad key': x}"},
		function: "sample",
		wantErr:  []string{`podAnnotations: "bad key" is not an annotation key`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := placementFor(tt.data, tt.function)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("placementFor() = %+v, want an error saying %q", got, tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("placementFor() error = %q, want it to say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("placementFor() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("placementFor() (-want +got):\n%s", diff)
			}
		})
	}
}
