//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// writeCredentials writes the service-account signing key and a token file
// whose one token belongs to an admin in system:masters.
func (c *cluster) writeCredentials() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(c.path("sa.key"), pemKey, 0o600); err != nil {
		return err
	}
	token := make([]byte, 32)
	rand.Read(token)
	c.token = hex.EncodeToString(token)
	return os.WriteFile(c.path("tokens.csv"), []byte(c.token+`,admin,admin,"system:masters"`+"\n"), 0o600)
}

func (c *cluster) startAPIServer(ctx context.Context, etcdURL string) error {
	certs := c.path("certs")
	return c.serve(ctx, time.Minute, func() (*component, func() error) {
		port := freePort()
		server := fmt.Sprintf("https://127.0.0.1:%d", port)
		comp := c.run("kube-apiserver", filepath.Join(c.assets, "kube-apiserver"), nil,
			"--etcd-servers="+etcdURL,
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(port),
			// The apiserver writes a self-signed serving certificate here;
			// the kubeconfig trusts it as the CA.
			"--cert-dir="+certs,
			"--token-auth-file="+c.path("tokens.csv"),
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file="+c.path("sa.key"),
			"--service-account-signing-key-file="+c.path("sa.key"),
			"--service-cluster-ip-range=10.96.0.0/24",
			// No kubelet or kube-proxy serves the kubernetes Service here.
			"--endpoint-reconciler-type=none",
			// Otherwise a new node keeps a not-ready:NoSchedule taint that
			// only the node lifecycle controller, which does not run
			// here, would remove, and pods stay Pending.
			"--disable-admission-plugins=TaintNodesByCondition")
		return comp, func() error {
			// Read on every try: the apiserver may still be writing it.
			ca, err := os.ReadFile(filepath.Join(certs, "apiserver.crt"))
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return errors.New("no certificate in apiserver.crt yet")
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			body, err := get(client, server+"/readyz", c.token)
			if err == nil && body != "ok" {
				err = fmt.Errorf("not ready: %s", body)
			}
			if err != nil {
				client.CloseIdleConnections()
				return err
			}
			c.server, c.api = server, client
			return c.writeKubeconfig(server, ca)
		}
	})
}

func (c *cluster) writeKubeconfig(server string, ca []byte) error {
	type named struct {
		Name    string         `json:"name"`
		Cluster map[string]any `json:"cluster,omitempty"`
		User    map[string]any `json:"user,omitempty"`
		Context map[string]any `json:"context,omitempty"`
	}
	kubeconfig, err := json.MarshalIndent(map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []named{{Name: "kjobs", Cluster: map[string]any{
			"server":                     server,
			"certificate-authority-data": base64.StdEncoding.EncodeToString(ca),
		}}},
		"users":           []named{{Name: "admin", User: map[string]any{"token": c.token}}},
		"contexts":        []named{{Name: "kjobs", Context: map[string]any{"cluster": "kjobs", "user": "admin"}}},
		"current-context": "kjobs",
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.kubeconfig, kubeconfig, 0o600)
}
