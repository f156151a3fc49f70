// Package cluster finds the Kubernetes cluster and namespace kjobs works in
// (in a pod, its own; elsewhere, KUBECONFIG's), and waits for informers'
// caches of it. The API, the dispatcher and `make run` against a cluster all
// connect through it.
package cluster

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config returns the REST config of the cluster and the namespace to work
// in: namespace itself, or when it is empty the pod's namespace (in a pod)
// or the current context's (from KUBECONFIG, "default" when it names none).
//
// The config allows 50 requests a second, bursts of 100: client-go's
// default of 5 would throttle a burst of deliveries, each creating a Job.
func Config(namespace string) (*rest.Config, string, error) {
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("cluster.Config: %w", err)
	}
	if namespace == "" {
		if namespace, _, err = loader.Namespace(); err != nil {
			return nil, "", fmt.Errorf("cluster.Config: %w", err)
		}
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, namespace, nil
}
