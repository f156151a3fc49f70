package kube

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kjobs/kjobs/internal/job"
)

// DefaultPlacementKey is the functions ConfigMap key whose placement applies
// to every function without a key of its own.
const DefaultPlacementKey = "_default"

// Placement is one entry of the functions ConfigMap: where and with what
// resources one function's pods run. The key is the function's name, or
// DefaultPlacementKey; the value is YAML with these fields:
//
//	resources:      {requests: {cpu: 100m}, limits: {memory: 256Mi}}
//	nodeSelector:   {kubernetes.io/arch: arm64}
//	tolerations:    [{key: dedicated, value: batch, effect: NoSchedule}]
//	affinity:       {nodeAffinity: ...}
//	podLabels:      {cost-center: analytics}
//	podAnnotations: {example.com/owner: data-team}
//	doNotDisrupt:   true
//
// podLabels and podAnnotations are added to the pod template: users label
// pods for cost allocation, and the tests use them to ask kwok to fail a pod.
// doNotDisrupt annotates the pod karpenter.sh/do-not-disrupt, so that
// Karpenter does not consolidate or drift its node away while it runs: for
// a function whose run is long or costly to repeat. Without it a disrupted
// pod is replaced within the same attempt (see newJob's podFailurePolicy),
// which suits most functions and lets nodes be packed tighter.
// A function's own entry replaces _default; the two are not merged, so that
// what a function gets is readable from one entry.
type Placement struct {
	Resources      corev1.ResourceRequirements `json:"resources,omitempty"`
	NodeSelector   map[string]string           `json:"nodeSelector,omitempty"`
	Tolerations    []corev1.Toleration         `json:"tolerations,omitempty"`
	Affinity       *corev1.Affinity            `json:"affinity,omitempty"`
	PodLabels      map[string]string           `json:"podLabels,omitempty"`
	PodAnnotations map[string]string           `json:"podAnnotations,omitempty"`
	DoNotDisrupt   bool                        `json:"doNotDisrupt,omitempty"`
}

// placementFor returns the placement of function from the ConfigMap's data:
// its own entry, else _default, else none. Only the entry used is parsed, so
// that one function's broken entry does not stop every other function; the
// entry used is parsed strictly, so that a misspelt field is an error rather
// than a placement silently ignored.
func placementFor(data map[string]string, function string) (Placement, error) {
	key := function
	value, ok := data[key]
	if !ok {
		key = DefaultPlacementKey
		if value, ok = data[key]; !ok {
			return Placement{}, nil
		}
	}
	p, err := parsePlacement(value)
	if err != nil {
		return Placement{}, fmt.Errorf("key %q is malformed: %w", key, err)
	}
	return p, nil
}

// parsePlacement decodes one entry the way the API server decodes a
// manifest: field names match case-sensitively, and unknown or repeated
// fields are errors.
func parsePlacement(value string) (Placement, error) {
	raw, err := yaml.YAMLToJSONStrict([]byte(value))
	if err != nil {
		return Placement{}, err
	}
	var p Placement
	strict, err := kjson.UnmarshalStrict(raw, &p)
	if err != nil {
		return Placement{}, err
	}
	if err := errors.Join(strict...); err != nil {
		return Placement{}, err
	}
	return p, p.validate()
}

// validate checks the pod labels here rather than leaving them to the API
// server, so that the error names the ConfigMap key to fix. Labels the
// runner sets itself are refused: overriding them would hide the pod from
// the runner's own informer or misattribute it to another job.
func (p Placement) validate() error {
	for _, k := range sortedKeys(p.PodLabels) {
		if err := job.CheckLabel(k, p.PodLabels[k]); err != nil {
			return fmt.Errorf("podLabels: %w", err)
		}
	}
	for _, k := range sortedKeys(p.PodAnnotations) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return fmt.Errorf("podAnnotations: %q is not an annotation key: %s", k, strings.Join(msgs, "; "))
		}
	}
	return nil
}

// sortedKeys orders map keys so that the first error reported is the same
// on every call.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
