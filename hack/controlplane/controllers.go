//go:build linux

package main

import (
	"context"
	"path/filepath"
	"strings"
)

// controllers are the kube-controller-manager controllers that run: the Job
// controller and what Jobs need (service accounts and their tokens,
// namespace deletion, garbage collection, TTLs, pod GC), and the ones
// Knative's readiness checks read: a Broker is Ready only once the
// broker-ingress and broker-filter Services have ready endpoints, and a
// PingSource once the pingsource-mt-adapter Deployment is Available. kwok
// runs Knative's Deployments' pods; the host processes do the work.
var controllers = []string{
	"job", "serviceaccount", "serviceaccount-token", "namespace", "garbagecollector",
	"ttl-after-finished", "podgc",
	"deployment", "replicaset", "endpoint", "endpointslice",
}

func (c *cluster) startControllerManager() {
	args := []string{
		"--kubeconfig=" + c.kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--service-account-private-key-file=" + c.path("sa.key"),
		"--root-ca-file=" + c.path("certs", "apiserver.crt"),
		"--leader-elect=false", "--secure-port=0",
	}
	if c.bench {
		args = append(args, benchControllerManager...)
	}
	c.run("kube-controller-manager", filepath.Join(c.tools, "kube-controller-manager"), nil, args...)
}

// waitControllerManager waits until the serviceaccount controller has made
// the default namespace's "default" ServiceAccount: without it every pod is
// rejected.
func (c *cluster) waitControllerManager(ctx context.Context) error {
	_, err := c.kubectl(ctx, nil, "wait", "--for=create", "--timeout=2m", "-n", "default", "serviceaccount/default")
	return err
}

// startScheduler starts kube-scheduler, which binds pods to the fake node.
func (c *cluster) startScheduler() {
	args := []string{"--kubeconfig=" + c.kubeconfig, "--leader-elect=false", "--secure-port=0"}
	if c.bench {
		args = append(args, benchScheduler...)
	}
	c.run("kube-scheduler", filepath.Join(c.tools, "kube-scheduler"), nil, args...)
}
