// Package trigger keeps bindings as Knative Triggers (eventing.knative.dev/v1)
// on the kjobs Broker, each delivering to the dispatcher's route for its
// binding with the same delivery spec as config/300-trigger-requested.yaml.
// As for schedules (package ping), the cluster is the truth: a binding is
// rebuilt from its Trigger on every List and Get, and a Trigger being
// deleted is a binding that is gone.
//
// No Knative webhook is relied on: Create applies Trigger's own defaulting
// and validation in-process, as the webhook would, before anything reaches
// the API server.
//
// A binding's Trigger has no ownerReference, as a schedule's PingSource has
// none: the only kjobs object it could belong to is the Broker, and a
// Broker is deleted and created again to change its class (the prod
// overlay says so), which would garbage-collect every user's bindings. The
// labels say whose it is: LabelKey, app.kubernetes.io/managed-by=kjobs and
// the app.kubernetes.io labels of config/'s Triggers.
package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	"knative.dev/eventing/pkg/client/clientset/versioned"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/ptr"

	"github.com/kjobs/kjobs/internal/binding"
)

// DefaultBroker is the Broker of the Triggers when Config.Broker is empty.
const DefaultBroker = "kjobs"

// Annotations keep what a Trigger's spec has no field for, so that a
// binding can be rebuilt from the cluster alone.
const (
	AnnotationFunction  = "kjobs.dev/function"
	AnnotationArgs      = "kjobs.dev/args"
	AnnotationCreatedAt = "kjobs.dev/created-at"
)

// namePrefix prefixes the name of every binding's Trigger.
const namePrefix = "kjobs-binding-"

// Name returns the name of the Trigger of binding name.
func Name(name string) string { return namePrefix + name }

// Config says where a Store keeps Triggers and where they deliver.
type Config struct {
	// Namespace holds the Triggers, the Broker and the dispatcher.
	// Required; the API takes it from KJOBS_NAMESPACE.
	Namespace string
	// Broker is the name of the Broker in Namespace (KJOBS_BROKER).
	// Defaults to DefaultBroker.
	Broker string
	// Dispatcher is where the Triggers deliver: with a ref, the binding's
	// paths are relative URIs resolved against the ref's address; without
	// one, they are joined to its absolute URI (a dispatcher on a host, in
	// tests). Defaults to the Knative Service kjobs-dispatcher in
	// Namespace, as config/'s Triggers.
	Dispatcher duckv1.Destination
}

// Store is a binding.Store of Triggers.
type Store struct {
	client versioned.Interface
	cfg    Config
}

var _ binding.Store = (*Store)(nil)

// New returns a Store that keeps Triggers through client.
func New(client versioned.Interface, cfg Config) *Store {
	if cfg.Broker == "" {
		cfg.Broker = DefaultBroker
	}
	if cfg.Dispatcher.Ref == nil && cfg.Dispatcher.URI == nil {
		cfg.Dispatcher.Ref = &duckv1.KReference{
			APIVersion: "serving.knative.dev/v1",
			Kind:       "Service",
			Name:       "kjobs-dispatcher",
			Namespace:  cfg.Namespace,
		}
	}
	return &Store{client: client, cfg: cfg}
}

// Create creates the binding's Trigger and returns the binding as the
// cluster keeps it, or binding.ErrExists. b must be one binding.Decode
// accepted; Knative's validation runs again on the whole Trigger.
func (s *Store) Create(ctx context.Context, b binding.Binding) (binding.Binding, error) {
	tr, err := s.Trigger(b, time.Now())
	if err != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Create: %w", err)
	}
	// What the webhook would do, were one running, with Knative's default
	// feature flags: without them spec.delivery.timeout is refused.
	actx := feature.ToContext(ctx, feature.FromContextOrDefaults(context.Background()))
	tr.SetDefaults(actx)
	if fe := tr.Validate(apis.WithinCreate(apis.WithinParent(actx, tr.ObjectMeta))).Filter(apis.ErrorLevel); fe != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Create: Knative rejects Trigger %s: %w", tr.Name, fe)
	}
	created, err := s.client.EventingV1().Triggers(s.cfg.Namespace).Create(ctx, tr, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return binding.Binding{}, fmt.Errorf("trigger.Create %s: %w", b.Name, binding.ErrExists)
	}
	if err != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Create %s: %w", tr.Name, err)
	}
	out, err := FromTrigger(created)
	if err != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Create: %w", err)
	}
	return out, nil
}

// List returns every binding whose Trigger is in the namespace, oldest
// first, leaving out Triggers being deleted.
func (s *Store) List(ctx context.Context) ([]binding.Binding, error) {
	list, err := s.client.EventingV1().Triggers(s.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: binding.LabelKey})
	if err != nil {
		return nil, fmt.Errorf("trigger.List: %w", err)
	}
	out := make([]binding.Binding, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp != nil {
			continue
		}
		b, err := FromTrigger(&list.Items[i])
		if err != nil {
			return nil, fmt.Errorf("trigger.List: %w", err)
		}
		out = append(out, b)
	}
	binding.Sort(out)
	return out, nil
}

// Get returns binding name, or binding.ErrNotFound, also for one being
// deleted.
func (s *Store) Get(ctx context.Context, name string) (binding.Binding, error) {
	tr, err := s.get(ctx, name)
	if err != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Get: %w", err)
	}
	b, err := FromTrigger(tr)
	if err != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Get: %w", err)
	}
	return b, nil
}

// get returns the Trigger of binding name, or binding.ErrNotFound.
func (s *Store) get(ctx context.Context, name string) (*eventingv1.Trigger, error) {
	if !binding.CheckName(name) {
		// client-go refuses "/" or ".." in a request path; such a name,
		// from a URL, is simply not found.
		return nil, fmt.Errorf("%q: %w", name, binding.ErrNotFound)
	}
	tr, err := s.client.EventingV1().Triggers(s.cfg.Namespace).Get(ctx, Name(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", name, binding.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// A Trigger of that name without the label is not a binding.
	if tr.DeletionTimestamp != nil || tr.Labels[binding.LabelKey] != name {
		return nil, fmt.Errorf("%s: %w", name, binding.ErrNotFound)
	}
	return tr, nil
}

// Delete deletes the binding's Trigger, or returns binding.ErrNotFound,
// also for one already being deleted. The delete is preconditioned on the
// UID of the Trigger it read, so that a binding created again meanwhile is
// not deleted in its stead.
func (s *Store) Delete(ctx context.Context, name string) error {
	tr, err := s.get(ctx, name)
	if err != nil {
		return fmt.Errorf("trigger.Delete: %w", err)
	}
	err = s.client.EventingV1().Triggers(s.cfg.Namespace).Delete(ctx, tr.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &tr.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return fmt.Errorf("trigger.Delete %s: %w", name, binding.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("trigger.Delete %s: %w", name, err)
	}
	return nil
}

// Trigger builds the Trigger of b, created at now, before Knative's
// defaulting.
func (s *Store) Trigger(b binding.Binding, now time.Time) (*eventingv1.Trigger, error) {
	subscriber, err := s.destination(binding.SubscriberPath(b.Name))
	if err != nil {
		return nil, err
	}
	deadLetter, err := s.destination(binding.DeadLetterPath(b.Name))
	if err != nil {
		return nil, err
	}
	annotations := map[string]string{
		AnnotationFunction:  b.Function,
		AnnotationCreatedAt: now.UTC().Format(time.RFC3339),
	}
	if len(b.Args) > 0 {
		annotations[AnnotationArgs] = string(b.Args)
	}
	tr := &eventingv1.Trigger{
		TypeMeta: metav1.TypeMeta{APIVersion: eventingv1.SchemeGroupVersion.String(), Kind: "Trigger"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name(b.Name),
			Namespace: s.cfg.Namespace,
			Labels: map[string]string{
				binding.LabelKey:               b.Name,
				"app.kubernetes.io/name":       "kjobs",
				"app.kubernetes.io/component":  "dispatcher",
				"app.kubernetes.io/managed-by": "kjobs",
			},
			Annotations: annotations,
		},
		Spec: eventingv1.TriggerSpec{
			Broker:     s.cfg.Broker,
			Filters:    b.Filters,
			Subscriber: subscriber,
			Delivery:   Delivery(deadLetter),
		},
	}
	if b.Filter != nil {
		tr.Spec.Filter = &eventingv1.TriggerFilter{Attributes: maps.Clone(b.Filter)}
	}
	return tr, nil
}

// Delivery is the delivery spec of config/300-trigger-requested.yaml with
// deadLetter as its sink: a binding's jobs retry as every other job.
func Delivery(deadLetter duckv1.Destination) *eventingduckv1.DeliverySpec {
	backoff := eventingduckv1.BackoffPolicyExponential
	return &eventingduckv1.DeliverySpec{
		Retry:          ptr.Int32(2),
		BackoffPolicy:  &backoff,
		BackoffDelay:   ptr.String("PT2S"),
		Timeout:        ptr.String("PT10M"),
		DeadLetterSink: &deadLetter,
	}
}

// destination is the dispatcher's route path.
func (s *Store) destination(path string) (duckv1.Destination, error) {
	d := *s.cfg.Dispatcher.DeepCopy()
	if d.Ref != nil {
		d.URI = &apis.URL{Path: path}
		return d, nil
	}
	if d.URI == nil || !d.URI.URL().IsAbs() {
		return duckv1.Destination{}, fmt.Errorf("the dispatcher has neither a ref nor an absolute URI: %v", d.URI)
	}
	d.URI.Path = strings.TrimSuffix(d.URI.Path, "/") + path
	return d, nil
}

// FromTrigger rebuilds a binding from its Trigger.
func FromTrigger(tr *eventingv1.Trigger) (binding.Binding, error) {
	createdAt, err := time.Parse(time.RFC3339, tr.Annotations[AnnotationCreatedAt])
	if err != nil {
		// A Trigger labelled by hand has no annotation: the API server's
		// record of its creation is as good.
		createdAt = tr.CreationTimestamp.Time
	}
	b := binding.Binding{
		Name:      tr.Labels[binding.LabelKey],
		Filters:   tr.Spec.Filters,
		Function:  tr.Annotations[AnnotationFunction],
		CreatedAt: createdAt.UTC(),
	}
	if f := tr.Spec.Filter; f != nil && len(f.Attributes) > 0 {
		b.Filter = map[string]string(f.Attributes)
	}
	if a := tr.Annotations[AnnotationArgs]; a != "" {
		if !json.Valid([]byte(a)) {
			return binding.Binding{}, fmt.Errorf("Trigger %s/%s: annotation %s is not JSON", tr.Namespace, tr.Name, AnnotationArgs)
		}
		b.Args = json.RawMessage(a)
	}
	return b, nil
}
