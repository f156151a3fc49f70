package kube

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kjobs/kjobs/internal/catalog"
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
//	maxRunning:     3
//
// and, for a function of one's own, the fields of catalog.Declaration:
// image, command, containerArgs (the Job container's), argsSchema and local
// (which the API and make run read) and doc.
//
// maxRunning caps how many of the function's jobs run at once; the
// dispatcher puts it in force through the store, for every replica.
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
	// Declaration is embedded so that its fields are fields of the entry.
	catalog.Declaration
	Resources      corev1.ResourceRequirements `json:"resources,omitempty"`
	NodeSelector   map[string]string           `json:"nodeSelector,omitempty"`
	Tolerations    []corev1.Toleration         `json:"tolerations,omitempty"`
	Affinity       *corev1.Affinity            `json:"affinity,omitempty"`
	PodLabels      map[string]string           `json:"podLabels,omitempty"`
	PodAnnotations map[string]string           `json:"podAnnotations,omitempty"`
	DoNotDisrupt   bool                        `json:"doNotDisrupt,omitempty"`
	// MaxRunning caps how many of the function's jobs run at once; unset
	// is no cap of its own (an install's cap still counts it).
	MaxRunning *int `json:"maxRunning,omitempty"`
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
	// Only a function's own entry says what image runs it; the built-in
	// functions run in the processor image, as the catalog has it.
	if (key == DefaultPlacementKey || catalog.Builtin(key)) && (p.Image != "" || len(p.Command) > 0 || len(p.ContainerArgs) > 0) {
		return Placement{}, fmt.Errorf("key %q is malformed: it may not set image, command or containerArgs, which only a declared function's own key sets", key)
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
	if p.MaxRunning != nil && *p.MaxRunning < 1 {
		return fmt.Errorf("maxRunning: %d: want at least 1, or no maxRunning for no cap", *p.MaxRunning)
	}
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

// MaxRunning returns the concurrency caps that the functions ConfigMap's
// data sets: _default's maxRunning, and each function's own (0 when its
// entry has none: a function's entry replaces _default's as a whole, its
// cap included). A malformed entry is reported, naming its key, and the
// caps of the others are returned all the same.
func MaxRunning(data map[string]string) (def int, functions map[string]int, err error) {
	functions = map[string]int{}
	var errs []error
	for _, key := range sortedKeys(data) {
		p, perr := parsePlacement(data[key])
		if perr != nil {
			errs = append(errs, fmt.Errorf("key %q is malformed: %w", key, perr))
			continue
		}
		n := 0
		if p.MaxRunning != nil {
			n = *p.MaxRunning
		}
		if key == DefaultPlacementKey {
			def = n
		} else {
			functions[key] = n
		}
	}
	return def, functions, errors.Join(errs...)
}

// ReadFunctionsFile reads the file that stands for the functions ConfigMap
// where there is no cluster (KJOBS_FUNCTIONS_FILE under make run): one YAML
// mapping of function name, or _default, to the same entry as the
// ConfigMap's values. It returns the data such a ConfigMap would hold.
func ReadFunctionsFile(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var entries map[string]any
	if err := yaml.UnmarshalStrict(raw, &entries); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data := make(map[string]string, len(entries))
	for k, v := range entries {
		entry, err := yaml.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", path, k, err)
		}
		data[k] = string(entry)
	}
	return data, nil
}
