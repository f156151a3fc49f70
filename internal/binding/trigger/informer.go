package trigger

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"knative.dev/eventing/pkg/client/clientset/versioned"
	"knative.dev/eventing/pkg/client/informers/externalversions"
	eventinglisters "knative.dev/eventing/pkg/client/listers/eventing/v1"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/cluster"
)

// ErrNotSynced is what an Informer's Get returns before its cache has
// synced: the binding may well exist, and the caller should answer so
// that the delivery is retried, not dropped.
var ErrNotSynced = errors.New("the Trigger cache has not synced yet")

// Informer is a binding.Getter that reads bindings from an informer's cache
// of the binding Triggers of one namespace (those labelled
// binding.LabelKey), for the dispatcher: a delivery looks its binding up
// without a request to the API server.
type Informer struct {
	lister eventinglisters.TriggerNamespaceLister
	synced cache.InformerSynced
}

var _ binding.Getter = (*Informer)(nil)

// NewInformer starts an informer over the binding Triggers of namespace and
// returns at once; it stops when ctx ends. Get answers ErrNotSynced until
// the cache has synced (WaitForSync waits for it). The client needs list
// and watch on triggers.eventing.knative.dev in namespace.
func NewInformer(ctx context.Context, client versioned.Interface, namespace string) *Informer {
	factory := externalversions.NewSharedInformerFactoryWithOptions(client, 0,
		externalversions.WithNamespace(namespace),
		externalversions.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = binding.LabelKey }),
		externalversions.WithTransform(func(obj any) (any, error) {
			// The cache needs no field managers: drop them to save memory.
			if m, err := meta.Accessor(obj); err == nil {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}))
	triggers := factory.Eventing().V1().Triggers()
	inf := &Informer{lister: triggers.Lister().Triggers(namespace), synced: triggers.Informer().HasSynced}
	factory.Start(ctx.Done())
	return inf
}

// HasSynced reports whether the cache has synced.
func (i *Informer) HasSynced() bool { return i.synced() }

// WaitForSync waits until the cache has synced, or ctx ends.
func (i *Informer) WaitForSync(ctx context.Context) error {
	if !cluster.WaitForSync(ctx, i.synced) {
		return fmt.Errorf("trigger.WaitForSync: %w (%w); can the client list and watch Triggers?", ErrNotSynced, context.Cause(ctx))
	}
	return nil
}

// Get returns binding name from the cache, binding.ErrNotFound for one that
// is not there or is being deleted, or ErrNotSynced.
func (i *Informer) Get(_ context.Context, name string) (binding.Binding, error) {
	if !i.synced() {
		return binding.Binding{}, fmt.Errorf("trigger.Informer.Get %s: %w", name, ErrNotSynced)
	}
	if !binding.CheckName(name) {
		return binding.Binding{}, fmt.Errorf("trigger.Informer.Get %q: %w", name, binding.ErrNotFound)
	}
	tr, err := i.lister.Get(Name(name))
	if apierrors.IsNotFound(err) {
		return binding.Binding{}, fmt.Errorf("trigger.Informer.Get %s: %w", name, binding.ErrNotFound)
	}
	if err != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Informer.Get %s: %w", name, err)
	}
	if tr.DeletionTimestamp != nil || tr.Labels[binding.LabelKey] != name {
		return binding.Binding{}, fmt.Errorf("trigger.Informer.Get %s: %w", name, binding.ErrNotFound)
	}
	b, err := FromTrigger(tr)
	if err != nil {
		return binding.Binding{}, fmt.Errorf("trigger.Informer.Get: %w", err)
	}
	return b, nil
}
