package cluster

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
)

// syncPoll is how often WaitForSync looks at the caches. client-go's own
// cache.WaitForCacheSync looks every 100 ms (syncedPollPeriod in
// tools/cache/shared_informer.go, client-go v0.35.7) and not at all between
// its first look, when nothing has synced yet, and the next: that tick was
// 100 of the API's 130 ms from start to ready. A namespace's kjobs objects
// list in milliseconds.
const syncPoll = 5 * time.Millisecond

// WaitForSync waits until every one of synced reports its cache synced, and
// returns false if ctx ends first.
func WaitForSync(ctx context.Context, synced ...cache.InformerSynced) bool {
	err := wait.PollUntilContextCancel(ctx, syncPoll, true, func(context.Context) (bool, error) {
		for _, s := range synced {
			if !s() {
				return false, nil
			}
		}
		return true, nil
	})
	return err == nil
}
