//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// startEtcd starts etcd on two free ports and returns its client URL.
func (c *cluster) startEtcd(ctx context.Context) (string, error) {
	var url string
	err := c.serve(ctx, 30*time.Second, func() (*component, func() error) {
		client, peer := freePort(), freePort()
		url = fmt.Sprintf("http://127.0.0.1:%d", client)
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
		comp := c.run("etcd", filepath.Join(c.assets, "etcd"), nil,
			"--name=kjobs", "--data-dir="+c.path("etcd"),
			"--listen-client-urls="+url, "--advertise-client-urls="+url,
			"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=kjobs="+peerURL,
			"--unsafe-no-fsync") // tests need no durability, and fsync dominates on slow disks
		return comp, func() error {
			body, err := get(http.DefaultClient, url+"/health", "")
			if err == nil && !strings.Contains(body, `"health":"true"`) {
				err = fmt.Errorf("unhealthy: %s", body)
			}
			return err
		}
	})
	return url, err
}
