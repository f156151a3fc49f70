// Package binding defines bindings: an event filter and the function that
// the events it selects run. In a cluster a binding is a Trigger on the
// kjobs Broker (package trigger); under `make run` the local Broker matches
// events against the bindings of package local. Both apply Knative's own
// filter semantics, and Decode validates filters with Knative's own code,
// so that a binding accepted here is a Trigger the cluster accepts.
package binding

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/pkg/apis"

	"github.com/kjobs/kjobs/internal/job"
)

// Binding says that the events its filter selects run Function with Args.
type Binding struct {
	// Name is a DNS label of at most MaxNameLen characters: it is part of
	// the name of the binding's Trigger.
	Name string `json:"name"`
	// Filter is Knative's attribute filter: exact matches of CloudEvents
	// attributes (extensions included). It becomes the Trigger's
	// spec.filter.attributes.
	Filter map[string]string `json:"filter,omitempty"`
	// Filters are Knative's SubscriptionsAPI filters (exact, prefix,
	// suffix, all, any, not, cesql), all of which must pass. They become
	// the Trigger's spec.filters, which wins over spec.filter.
	Filters []eventingv1.SubscriptionsAPIFilter `json:"filters,omitempty"`
	// Function runs once per selected event.
	Function string `json:"function"`
	// Args is a JSON object passed to every job of the binding as its args.
	Args json.RawMessage `json:"args,omitempty"`
	// CreatedAt is set by the store.
	CreatedAt time.Time `json:"createdAt"`
}

// LabelKey labels a binding's Trigger with the binding's name; stores list
// by it, and the API's admission policy lets the API touch only Triggers
// that carry it.
const LabelKey = "kjobs.dev/binding"

// MaxNameLen bounds a binding's name so that "kjobs-binding-<name>" and
// the names Knative derives from a Trigger's (its Subscription's) stay
// within Kubernetes' limits.
const MaxNameLen = 40

// SubscriberPath is the dispatcher's route for the deliveries of binding
// name.
func SubscriberPath(name string) string { return "/bindings/" + name }

// DeadLetterPath is the dispatcher's route for the dead letters of binding
// name.
func DeadLetterPath(name string) string { return SubscriberPath(name) + "/dead-letter" }

// Errors a Store returns.
var (
	// ErrNotFound is a binding that does not exist, or is being deleted.
	ErrNotFound = errors.New("binding not found")
	// ErrExists is a binding created under a name that is taken.
	ErrExists = errors.New("binding exists")
)

// Getter reads one binding; it is what the dispatcher needs.
type Getter interface {
	// Get returns binding name, or ErrNotFound.
	Get(ctx context.Context, name string) (Binding, error)
}

// Store keeps bindings. Create is given a binding that Decode accepted; it
// sets CreatedAt and returns ErrExists for a name that is taken. List
// returns the bindings oldest first. Delete returns ErrNotFound for a
// binding that does not exist.
type Store interface {
	Getter
	Create(ctx context.Context, b Binding) (Binding, error)
	List(ctx context.Context) ([]Binding, error)
	Delete(ctx context.Context, name string) error
}

// Sort sorts bindings as stores list them: oldest first, then by name.
func Sort(bs []Binding) {
	slices.SortFunc(bs, func(a, b Binding) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Name, b.Name))
	})
}

// request is the body of POST /jobs/bindings: a Binding without what the
// store sets. Filters are decoded apart, so that an unknown key in them is
// reported as a filter's fault.
type request struct {
	Name     string            `json:"name"`
	Filter   map[string]string `json:"filter"`
	Filters  json.RawMessage   `json:"filters"`
	Function string            `json:"function"`
	Args     json.RawMessage   `json:"args"`
}

// dialects names the keys of a SubscriptionsAPI filter, for messages.
const dialects = "exact, prefix, suffix, all, any, not or cesql"

// Decode reads the body of POST /jobs/bindings strictly and validates it.
// Every error is a *job.FieldError naming the request's field at fault;
// the filters' are Knative's own messages. A binding must select: one
// without filter and filters, or whose filter can pass every event, is
// refused, as is one with both (Knative would ignore filter).
func Decode(data []byte) (Binding, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Binding{}, &job.FieldError{Field: "body", Detail: `the body is required: {"name", "filter" or "filters", "function", "args"}`}
	}
	var req request
	if err := job.DecodeJSON(data, &req); err != nil {
		return Binding{}, err
	}
	b := Binding{Name: req.Name, Filter: req.Filter, Function: req.Function}
	if err := checkName(b.Name); err != nil {
		return Binding{}, err
	}
	if b.Function == "" {
		return Binding{}, &job.FieldError{Field: "function", Detail: "function is required"}
	}
	if err := (job.Request{Function: b.Function}).Validate(); err != nil {
		return Binding{}, err
	}
	if len(bytes.TrimSpace(req.Filters)) > 0 && !bytes.Equal(bytes.TrimSpace(req.Filters), []byte("null")) {
		if err := decodeFilters(req.Filters, &b.Filters); err != nil {
			return Binding{}, err
		}
	}
	if args := bytes.TrimSpace(req.Args); len(args) > 0 && !bytes.Equal(args, []byte("null")) {
		if args[0] != '{' {
			return Binding{}, &job.FieldError{Field: "args", Detail: fmt.Sprintf("got %.20s, want a JSON object", args)}
		}
		// Compact, as the Trigger's annotation keeps it.
		var compact bytes.Buffer
		if err := json.Compact(&compact, args); err != nil {
			return Binding{}, &job.FieldError{Field: "args", Detail: err.Error()}
		}
		b.Args = json.RawMessage(compact.Bytes())
	}
	if err := b.checkFilters(); err != nil {
		return Binding{}, err
	}
	return b, nil
}

func checkName(name string) error {
	if name == "" {
		return &job.FieldError{Field: "name", Detail: "name is required"}
	}
	if len(name) > MaxNameLen || len(validation.IsDNS1123Label(name)) > 0 {
		return &job.FieldError{Field: "name", Detail: fmt.Sprintf("%q is not a binding name: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most %d characters", name, MaxNameLen)}
	}
	return nil
}

// CheckName reports whether name can name a binding; a name from a URL
// that cannot is simply not found.
func CheckName(name string) bool { return checkName(name) == nil }

func decodeFilters(raw json.RawMessage, out *[]eventingv1.SubscriptionsAPIFilter) error {
	err := job.DecodeJSON(raw, out)
	var fe *job.FieldError
	if err == nil || !errors.As(err, &fe) {
		return err
	}
	switch {
	case fe.Detail == "unknown field":
		return &job.FieldError{Field: "filters", Detail: fmt.Sprintf("unknown dialect %s: a filter is one of %s", fe.Field, dialects)}
	case fe.Field == "body":
		return &job.FieldError{Field: "filters", Detail: "want a list of filters: " + fe.Detail}
	default:
		return &job.FieldError{Field: "filters", Detail: fe.Error()}
	}
}

// requiredAttributes are on every event: an attribute filter that asks
// only for one of them to be present ("" matches any value) selects every
// event.
var requiredAttributes = []string{"id", "source", "specversion", "type"}

// checkFilters validates the filters with Knative's validation of a
// Trigger's spec.filter and spec.filters, then refuses what Knative
// accepts but would make the binding run on every event: no filter, and a
// filter without a dialect (or with an empty value), which Knative's filter
// code skips.
func (b Binding) checkFilters() error {
	if b.Filter != nil && b.Filters != nil {
		return &job.FieldError{Field: "filters", Detail: "give filter or filters, not both: Knative ignores filter when filters is set"}
	}
	ctx := context.Background()
	fe := eventingv1.ValidateAttributeFilters(&eventingv1.TriggerFilter{Attributes: b.Filter}).ViaField("filter").
		Also(eventingv1.ValidateSubscriptionAPIFiltersList(ctx, b.Filters).ViaField("filters"))
	if fe = fe.Filter(apis.ErrorLevel); fe != nil {
		return knativeError(fe)
	}
	switch {
	case len(b.Filter) == 0 && len(b.Filters) == 0:
		return &job.FieldError{Field: "filter", Detail: `a binding needs a filter, such as {"filter": {"type": "com.example.created"}}: one that selects every event is refused`}
	case len(b.Filter) > 0:
		for _, k := range slices.Sorted(maps.Keys(b.Filter)) {
			if b.Filter[k] != "" || !slices.Contains(requiredAttributes, k) {
				return nil
			}
		}
		return &job.FieldError{Field: "filter", Detail: fmt.Sprintf("%s is on every event: an empty value matches any value, so this filter selects every event", strings.Join(slices.Sorted(maps.Keys(b.Filter)), ", "))}
	}
	for i, f := range b.Filters {
		if err := checkDialect(f, fmt.Sprintf("filters[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// checkDialect refuses a filter that Knative's
// subscriptionsapi.MaterializeSubscriptionsAPIFilter would skip, which
// makes it pass every event: one without a dialect, an exact, prefix or
// suffix with an empty value, or an all or any whose own filters do.
// Knative's validation refuses only more than one dialect.
func checkDialect(f eventingv1.SubscriptionsAPIFilter, path string) error {
	for _, d := range []struct {
		name string
		m    map[string]string
	}{{"exact", f.Exact}, {"prefix", f.Prefix}, {"suffix", f.Suffix}} {
		if len(d.m) == 0 {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(d.m)) {
			if d.m[k] == "" {
				return &job.FieldError{Field: path + "." + d.name + "." + k, Detail: "empty value: Knative skips such a filter, which then passes every event"}
			}
		}
		return nil
	}
	var nested []eventingv1.SubscriptionsAPIFilter
	switch {
	case len(f.All) > 0:
		path, nested = path+".all", f.All
	case len(f.Any) > 0:
		path, nested = path+".any", f.Any
	case f.Not != nil:
		return checkDialect(*f.Not, path+".not")
	case f.CESQL != "":
		return nil
	default:
		return &job.FieldError{Field: path, Detail: "a filter needs one dialect: " + dialects}
	}
	for i, n := range nested {
		if err := checkDialect(n, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	return nil
}

// knativeError turns Knative's verdict on the filters into a FieldError
// naming the first field at fault with every message Knative gave. Its
// paths are the request's field names, but for the attribute filter, which
// Knative validates as the Trigger's filter.attributes; an error with no
// path (several dialects in one filter) is the filters'.
func knativeError(fe *apis.FieldError) error {
	request := strings.NewReplacer("filter.attributes", "filter")
	field := "filters"
	for _, e := range fe.WrappedErrors() {
		if len(e.Paths) > 0 {
			field = request.Replace(e.Paths[0])
			break
		}
	}
	detail := strings.TrimSuffix(strings.ReplaceAll(fe.Error(), "\n", "; "), ": ")
	return &job.FieldError{Field: field, Detail: request.Replace(detail)}
}
