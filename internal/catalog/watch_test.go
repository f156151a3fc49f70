package catalog_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestWatch checks that a catalog follows its ConfigMap on the control
// plane: a function declared after Watch started, its schema changed, and
// the ConfigMap deleted.
func TestWatch(t *testing.T) {
	t.Parallel()
	cfg := testenv.Kube(t)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.Namespace(t, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c := catalog.New(false)
	if err := catalog.Watch(ctx, client, ns, "kjobs-functions", c, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	args := map[string]any{"width": 0}
	var unknown *catalog.UnknownError
	if err := c.Check("resize", args); !errors.As(err, &unknown) {
		t.Fatalf("before the ConfigMap: Check() = %v, want unknown", err)
	}

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kjobs-functions", Namespace: ns},
		Data:       map[string]string{"resize": "image: ghcr.io/team/resize:1\nargsSchema: {properties: {width: {minimum: 1}}}"},
	}
	if cm, err = client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var invalid *catalog.ArgsError
	eventually(t, ctx, "the declaration", func() bool { return errors.As(c.Check("resize", args), &invalid) })

	cm.Data["resize"] = "image: ghcr.io/team/resize:1\nargsSchema: {properties: {width: {minimum: 0}}}"
	if _, err := client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the changed schema", func() bool { return c.Check("resize", args) == nil })

	if err := client.CoreV1().ConfigMaps(ns).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the deletion", func() bool { return errors.As(c.Check("resize", args), &unknown) })
}

func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("the catalog never saw %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
