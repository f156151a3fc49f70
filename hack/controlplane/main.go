//go:build linux

// Command controlplane runs a real Kubernetes control plane on 127.0.0.1 for
// the integration tests: etcd, kube-apiserver (RBAC, PodSecurity admission),
// kube-controller-manager with the Job controller, kube-scheduler, and kwok
// playing the kubelet of one fake node, with Knative's CRDs applied. Once
// everything is ready it prints the admin kubeconfig's path on stdout and
// runs until SIGINT or SIGTERM, or until the process that started it dies;
// then it stops every component. If a component fails, it prints where the
// logs are and exits non-zero.
//
// Usage, from the repository root:
//
//	go run ./hack/controlplane [-logs DIR]
//
// The binaries come from $KJOBS_TOOLS_BIN, else from hack/tools/build.sh;
// kube-apiserver and etcd come from $KUBEBUILDER_ASSETS when that is set
// (the envtest convention).
//
// Measured on 2 cores, tools built: ready 5.5-7 s after start (etcd at
// 0.5 s, kube-apiserver 3.5 s, the default ServiceAccount and the Ready node
// at 4-4.5 s, the 24 Knative CRDs Established at 5.5-6.5 s), about the same
// right after dropping the page cache, and 11-16 s while other builds load
// the machine; stopping takes ~2 s. The cold part is building the tools:
// 13 min for etcd, kwok, kube and ko (hack/tools/build.sh).
package main

import (
	"bufio"
	"bytes"
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
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Module versions whose files the control plane reads from the Go module
// cache. kwok's must match hack/tools/kwok/go.mod (its stages belong to that
// binary); Knative's must match the project's go.mod, so that the CRDs are
// those of the API types the code compiles against.
const (
	kwokModule     = "sigs.k8s.io/kwok@v0.8.0"
	eventingModule = "knative.dev/eventing@v0.50.0"
	servingModule  = "knative.dev/serving@v0.50.0"
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

// startTimeout bounds the whole start-up; a cold start on a busy 2-core
// machine takes well under a minute, so hitting it means something hangs.
const startTimeout = 3 * time.Minute

func main() {
	logs := flag.String("logs", "", "folder for the components' logs (default: a temporary folder, removed after a clean stop)")
	flag.Parse()
	os.Exit(run(*logs))
}

func run(logs string) int {
	begin := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dieWithParent(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		return 1
	}

	c, err := newCluster(ctx, logs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		return 1
	}
	if err = c.start(); err == nil {
		fmt.Fprintf(os.Stderr, "controlplane: ready in %.1fs\n", time.Since(begin).Seconds())
		fmt.Println(c.kubeconfig)
		<-c.ctx.Done()
	}
	// Taken before stop, which makes every component exit: a component
	// that exited on its own explains a failure better than the start-up
	// steps it made fail.
	cause := context.Cause(c.ctx)
	c.stop()
	if ctx.Err() != nil { // a signal: the expected way to stop
		c.cleanUp()
		return 0
	}
	if cause != nil {
		err = cause
	}
	c.report(err)
	return 1
}

// dieWithParent asks the kernel for a SIGTERM when the process that started
// the control plane dies, so that a test run killed even with SIGKILL does
// not leave a control plane behind.
func dieWithParent() error {
	parent := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %v", errno)
	}
	if os.Getppid() != parent { // it died before prctl took effect
		return errors.New("the parent process has exited")
	}
	return nil
}

type cluster struct {
	ctx  context.Context // canceled by a signal or, with the cause, by a component's exit
	fail context.CancelCauseFunc

	dir        string // data, certificates, kubeconfig: removed on exit
	logs       string
	ownLogs    bool   // logs is a folder of ours, removed after a clean stop
	tools      string // kubectl, kube-controller-manager, kube-scheduler, kwok
	assets     string // kube-apiserver, etcd
	kubeconfig string
	token      string       // the admin's
	server     string       // the apiserver's URL
	api        *http.Client // trusts the apiserver's certificate
	components []*component
}

type component struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited; err is set then
	err  error
}

// exitError is the cause a component's exit cancels the cluster with.
type exitError struct{ c *component }

func (e exitError) Error() string { return fmt.Sprintf("%s exited: %v", e.c.name, e.c.err) }

func newCluster(parent context.Context, logs string) (*cluster, error) {
	tools, err := toolsBin()
	if err != nil {
		return nil, err
	}
	c := &cluster{tools: tools, assets: tools, logs: logs}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		c.assets = dir
	}
	if c.logs == "" {
		if c.logs, err = os.MkdirTemp("", "kjobs-controlplane-logs-"); err != nil {
			return nil, err
		}
		c.ownLogs = true
	} else if err := os.MkdirAll(c.logs, 0o755); err != nil {
		return nil, err
	}
	if c.dir, err = os.MkdirTemp("", "kjobs-controlplane-"); err != nil {
		c.cleanUp()
		return nil, err
	}
	c.kubeconfig = c.path("kubeconfig")
	c.ctx, c.fail = context.WithCancelCause(parent)
	return c, nil
}

// toolsBin returns $KJOBS_TOOLS_BIN, or builds the tools (a no-op when they
// are up to date) and returns the folder build.sh prints.
func toolsBin() (string, error) {
	if dir := os.Getenv("KJOBS_TOOLS_BIN"); dir != "" {
		return dir, nil
	}
	mods := []string{"kube", "kwok"}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		mods = append(mods, "etcd")
	}
	cmd := exec.Command("hack/tools/build.sh", mods...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the tools with hack/tools/build.sh (run from the repository root, or set KJOBS_TOOLS_BIN): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

func (c *cluster) start() error {
	ctx, cancel := context.WithTimeoutCause(c.ctx, startTimeout, errors.New("the control plane did not start in time"))
	defer cancel()
	begin := time.Now()
	step := func(what string) {
		fmt.Fprintf(os.Stderr, "controlplane: %s after %.1fs\n", what, time.Since(begin).Seconds())
	}

	mods, err := moduleDirs(ctx, kwokModule, eventingModule, servingModule)
	if err != nil {
		return err
	}
	if err := c.writeCredentials(); err != nil {
		return err
	}

	etcdURL, err := c.startEtcd(ctx)
	if err != nil {
		return err
	}
	step("etcd ready")
	if err := c.startAPIServer(ctx, etcdURL); err != nil {
		return err
	}
	step("kube-apiserver ready")

	kubeconfig := "--kubeconfig=" + c.kubeconfig
	c.run("kube-controller-manager", filepath.Join(c.tools, "kube-controller-manager"), nil,
		kubeconfig,
		"--controllers=job,serviceaccount,serviceaccount-token,namespace,garbagecollector,ttl-after-finished,podgc",
		"--service-account-private-key-file="+c.path("sa.key"),
		"--root-ca-file="+c.path("certs", "apiserver.crt"),
		"--leader-elect=false", "--secure-port=0")
	c.run("kube-scheduler", filepath.Join(c.tools, "kube-scheduler"), nil,
		kubeconfig, "--leader-elect=false", "--secure-port=0")
	kwok := []string{kubeconfig, "--manage-nodes-with-annotation-selector=" + nodeAnnotation}
	for _, stage := range kwokStages {
		kwok = append(kwok, "--config="+filepath.Join(mods[kwokModule], stage))
	}
	// HOME is the work folder so that kwok does not also load a
	// ~/.kwok/kwok.yaml the user may have.
	c.run("kwok", filepath.Join(c.tools, "kwok"), []string{"HOME=" + c.dir}, kwok...)

	return parallel(
		func() error {
			// Without the serviceaccount controller's "default"
			// ServiceAccount every pod is rejected.
			_, err := c.kubectl(ctx, nil, "wait", "--for=create", "--timeout=2m", "-n", "default", "serviceaccount/default")
			if err == nil {
				step("kube-controller-manager ready")
			}
			return err
		},
		func() error {
			if err := c.createNode(ctx); err != nil {
				return err
			}
			step("node " + nodeName + " ready")
			return nil
		},
		func() error {
			if err := c.applyKnativeCRDs(ctx, mods[eventingModule], mods[servingModule]); err != nil {
				return err
			}
			step("Knative CRDs established")
			return nil
		},
	)
}

// moduleDirs downloads modules (a no-op when cached) and returns their
// folders in the module cache, by module@version.
func moduleDirs(ctx context.Context, mods ...string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"mod", "download", "-json"}, mods...)...)
	// Outside the project's module: the versions are explicit, and a
	// go.mod that someone is editing must not break the tests' cluster.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download %s: %v\n%s%s", strings.Join(mods, " "), err, out, stderr.Bytes())
	}
	dirs := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m struct{ Path, Version, Dir, Error string }
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go mod download: %v", err)
		}
		if m.Error != "" {
			return nil, fmt.Errorf("go mod download %s@%s: %s", m.Path, m.Version, m.Error)
		}
		dirs[m.Path+"@"+m.Version] = m.Dir
	}
	for _, mod := range mods {
		if dirs[mod] == "" {
			return nil, fmt.Errorf("go mod download did not report %s", mod)
		}
	}
	return dirs, nil
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

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

// serve starts a component that listens on free ports, through launch, and
// waits until its ready check passes. Another process may take a port
// between freePort and the component's bind, so a start that fails with
// "address already in use" is retried on new ports.
func (c *cluster) serve(ctx context.Context, timeout time.Duration, launch func() (*component, func() error)) error {
	for attempt := 1; ; attempt++ {
		comp, ready := launch()
		err := waitUntil(ctx, comp, timeout, ready)
		if err == nil {
			c.watch(comp)
			return nil
		}
		c.kill(comp)
		log, _ := os.ReadFile(comp.log)
		if attempt < 3 && bytes.Contains(log, []byte("address already in use")) {
			continue
		}
		return err
	}
}

// waitUntil polls ready until it passes, the component exits, or the
// timeout passes.
func waitUntil(ctx context.Context, comp *component, timeout time.Duration, ready func() error) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-comp.done:
			return exitError{comp}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline:
			return fmt.Errorf("%s not ready after %s: %v", comp.name, timeout, err)
		case <-tick.C:
		}
	}
}

func get(client *http.Client, url, token string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body)), err
}

// run starts a component in its own process group, with its output in its
// log file, and keeps it for stop. A component started with run alone is
// watched at once; serve watches the ones it starts only once they are
// ready, because it may retry them.
func (c *cluster) run(name, bin string, env []string, args ...string) *component {
	comp := &component{name: name, log: filepath.Join(c.logs, name+".log"), done: make(chan struct{})}
	c.components = append(c.components, comp)
	log, err := os.Create(comp.log)
	if err != nil {
		comp.err = err
		close(comp.done)
		return comp
	}
	defer log.Close()
	comp.cmd = exec.Command(bin, args...)
	comp.cmd.Stdout, comp.cmd.Stderr = log, log
	comp.cmd.Env = append(environ(), env...)
	// Its own process group lets stop signal everything it started, and
	// keeps a terminal's Ctrl-C from reaching it before we stop it in
	// order; Pdeathsig ends it if this process dies without stopping it.
	comp.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if comp.err = comp.cmd.Start(); comp.err != nil {
		close(comp.done)
		return comp
	}
	go func() {
		comp.err = comp.cmd.Wait()
		close(comp.done)
	}()
	if name != "etcd" && name != "kube-apiserver" {
		c.watch(comp)
	}
	return comp
}

// environ is this process's environment without ETCD_* variables: etcd
// reads every one of them as a flag.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// watch cancels the cluster when comp exits.
func (c *cluster) watch(comp *component) {
	go func() {
		<-comp.done
		c.fail(exitError{comp})
	}()
}

// stop stops the components in the reverse order of their start.
func (c *cluster) stop() {
	for i := len(c.components) - 1; i >= 0; i-- {
		c.kill(c.components[i])
	}
}

// kill sends SIGTERM to comp's process group, and SIGKILL if it has not
// exited 10 s later.
func (c *cluster) kill(comp *component) {
	select {
	case <-comp.done:
		return
	default:
	}
	pgid := comp.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-comp.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-comp.done
	}
}

// report prints why the control plane failed, the end of the failed
// component's log, and where all logs are; it keeps the logs.
func (c *cluster) report(err error) {
	fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
	var exit exitError
	if errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "--- last lines of %s\n%s---\n", exit.c.log, tail(exit.c.log, 30))
	}
	fmt.Fprintf(os.Stderr, "controlplane: logs of every component are in %s\n", c.logs)
	os.RemoveAll(c.dir)
}

func (c *cluster) cleanUp() {
	os.RemoveAll(c.dir)
	if c.ownLogs {
		os.RemoveAll(c.logs)
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error() + "\n"
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// kubectl runs the tools' kubectl against the cluster, with stdin when
// given, and returns its standard output.
func (c *cluster) kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.tools, "kubectl"), append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	// Keep kubectl's discovery cache out of ~/.kube.
	cmd.Env = append(environ(), "KUBECACHEDIR="+c.path("kubecache"))
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
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

// applyKnativeCRDs applies the CRDs of Knative Eventing and Serving from
// their modules' own config folders, and waits until they are Established.
// No Knative webhook runs here, so CRDs that convert between versions
// through one are changed to convert by changing apiVersion only.
func (c *cluster) applyKnativeCRDs(ctx context.Context, eventing, serving string) error {
	// kubectl parses the YAML (Go's standard library has no parser) and
	// prints the CRDs as a stream of JSON objects; the server validates
	// them when they are applied.
	raw, err := c.kubectl(ctx, nil, "create", "--dry-run=client", "--validate=false", "-o=json",
		"-f", filepath.Join(eventing, "config/core/resources"),
		"-f", filepath.Join(serving, "config/core/300-resources"))
	if err != nil {
		return err
	}
	var crds []map[string]any
	var names []string
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // re-encode numbers as they were, not as float64
	for {
		var crd map[string]any
		if err := dec.Decode(&crd); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("parsing the Knative CRDs: %v", err)
		}
		if spec, ok := crd["spec"].(map[string]any); ok {
			if conv, ok := spec["conversion"].(map[string]any); ok && conv["strategy"] == "Webhook" {
				spec["conversion"] = map[string]any{"strategy": "None"}
			}
		}
		crds = append(crds, crd)
		if meta, ok := crd["metadata"].(map[string]any); ok {
			names = append(names, fmt.Sprint(meta["name"]))
		}
	}
	if len(crds) == 0 {
		return errors.New("no Knative CRDs found")
	}
	patched, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": crds})
	if err != nil {
		return err
	}
	if _, err := c.kubectl(ctx, patched, "apply", "--server-side", "--field-manager=kjobs-controlplane", "-f", "-"); err != nil {
		return err
	}
	return c.waitEstablished(ctx, names)
}

// waitEstablished polls the apiserver until the named CRDs are Established.
// (kubectl wait takes ~0.1 s per CRD, one after the other.)
func (c *cluster) waitEstablished(ctx context.Context, names []string) error {
	pending := names
	for {
		body, err := get(c.api, c.server+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions", c.token)
		if err == nil {
			var list struct {
				Items []struct {
					Metadata struct{ Name string }
					Status   struct {
						Conditions []struct{ Type, Status string }
					}
				}
			}
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				return fmt.Errorf("listing CRDs: %v", err)
			}
			established := map[string]bool{}
			for _, crd := range list.Items {
				for _, cond := range crd.Status.Conditions {
					if cond.Type == "Established" && cond.Status == "True" {
						established[crd.Metadata.Name] = true
					}
				}
			}
			pending = slices.DeleteFunc(slices.Clone(names), func(name string) bool { return established[name] })
			if len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRDs not Established: %s: %w", strings.Join(pending, ", "), context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// parallel runs fns at once and returns all their errors.
func parallel(fns ...func() error) error {
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn() }()
	}
	var all []error
	for range fns {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("no free loopback port: %v", err))
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
