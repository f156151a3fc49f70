//go:build linux

package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
)

// nodeName is the one fake node kwok manages; nodeAnnotation is what kwok
// selects it by.
const (
	nodeName       = "kwok-node"
	nodeAnnotation = "kwok.x-k8s.io/node=fake"
)

// kwokStages are the Stage files (relative to kwok's module folder) that make
// the fake node Ready and keep its lease fresh, take pods to Running, finish
// Job pods with exit code 0, delete pods, and fail the pods labelled
// pod-container-running-failed.stage.kwok.x-k8s.io=true instead.
var kwokStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
	"kustomize/stage/pod/chaos/pod-container-running-failed.yaml",
}

// startKwok starts kwok with the stages from its module folder, the files
// of c.stages and, with -bench, benchKwokConfig.
func (c *cluster) startKwok(module string) error {
	args := []string{"--kubeconfig=" + c.kubeconfig, "--manage-nodes-with-annotation-selector=" + nodeAnnotation}
	for _, stage := range kwokStages {
		args = append(args, "--config="+filepath.Join(module, stage))
	}
	for _, stage := range c.stages {
		args = append(args, "--config="+stage)
	}
	if c.bench {
		config, err := c.writeBenchKwokConfig()
		if err != nil {
			return err
		}
		args = append(args, "--config="+config)
	}
	// HOME is the work folder so that kwok does not also load a
	// ~/.kwok/kwok.yaml the user may have.
	c.run("kwok", filepath.Join(c.tools, "kwok"), []string{"HOME=" + c.dir}, args...)
	return nil
}

// createNode creates the node kwok manages and waits until kwok has made it
// Ready. It carries no taint, so pods need no toleration to land on it.
func (c *cluster) createNode(ctx context.Context) error {
	key, value, _ := strings.Cut(nodeAnnotation, "=")
	node, err := json.Marshal(map[string]any{
		"apiVersion": "v1",
		"kind":       "Node",
		"metadata": map[string]any{
			"name":        nodeName,
			"annotations": map[string]string{key: value},
			"labels": map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": nodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
	})
	if err != nil {
		return err
	}
	if _, err := c.kubectl(ctx, node, "create", "-f", "-"); err != nil {
		return err
	}
	_, err = c.kubectl(ctx, nil, "wait", "--for=condition=Ready", "--timeout=2m", "node/"+nodeName)
	return err
}
