package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kjobs/kjobs/internal/cluster"
)

// syncTimeout bounds the wait for the ConfigMap's first list.
const syncTimeout = time.Minute

// Watch keeps c's declarations those of the ConfigMap namespace/name, from
// an informer on that one ConfigMap, so that the client needs only get,
// list and watch on it by resourceNames. It returns once c holds the
// ConfigMap as it stands, and keeps c current until ctx is done. A
// malformed entry is logged, and its function refused, until it is fixed.
func Watch(ctx context.Context, client kubernetes.Interface, namespace, name string, c *Catalog, log *slog.Logger) error {
	informer := coreinformers.NewFilteredConfigMapInformer(client, namespace, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	})
	log = log.With("configMap", namespace+"/"+name)
	set := func(data map[string]string) { c.Update(data, log) }
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { set(obj.(*corev1.ConfigMap).Data) },
		UpdateFunc: func(_, obj any) { set(obj.(*corev1.ConfigMap).Data) },
		DeleteFunc: func(any) { set(nil) },
	}); err != nil {
		return fmt.Errorf("catalog.Watch: %w", err)
	}
	go informer.Run(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cluster.WaitForSync(syncCtx, informer.HasSynced) {
		return fmt.Errorf("catalog.Watch: ConfigMap %s/%s did not sync (%w); can the client list and watch it?", namespace, name, context.Cause(syncCtx))
	}
	return nil
}
