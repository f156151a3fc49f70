package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
)

func TestWaitForSync(t *testing.T) {
	var later atomic.Bool
	time.AfterFunc(20*time.Millisecond, func() { later.Store(true) })
	synced := func() bool { return true }
	never := func() bool { return false }
	tests := []struct {
		name   string
		synced []cache.InformerSynced
		want   bool
	}{
		{"nothing to wait for", nil, true},
		{"synced at once", []cache.InformerSynced{synced}, true},
		{"one syncs later", []cache.InformerSynced{synced, later.Load}, true},
		{"one never syncs", []cache.InformerSynced{synced, never}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if got := WaitForSync(ctx, tt.synced...); got != tt.want {
				t.Errorf("WaitForSync = %v, want %v", got, tt.want)
			}
		})
	}
}
