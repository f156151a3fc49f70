//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Module versions whose files the control plane reads from the Go module
// cache. kwok's must match hack/tools/kwok/go.mod (its stages belong to that
// binary); Knative's must match the project's go.mod and
// hack/tools/knative/go.mod, so that the CRDs and Eventing's configuration
// are those of the API types the code compiles against and of the data
// plane that runs.
const (
	kwokModule     = "sigs.k8s.io/kwok@v0.8.0"
	eventingModule = "knative.dev/eventing@v0.50.0"
	servingModule  = "knative.dev/serving@v0.50.0"
)

// startTimeout bounds the whole start-up; a start on a busy 2-core machine
// takes well under a minute, so hitting it means something hangs.
const startTimeout = 3 * time.Minute

type cluster struct {
	ctx  context.Context // canceled by a signal or, with the cause, by a component's exit
	fail context.CancelCauseFunc

	dir        string // data, certificates, kubeconfig: removed on exit
	logs       string
	ownLogs    bool   // logs is a folder of ours, removed after a clean stop
	tools      string // kubectl, kube-controller-manager, kube-scheduler, kwok, Knative's
	assets     string // kube-apiserver, etcd
	kubeconfig string
	token      string       // the admin's
	server     string       // the apiserver's URL
	api        *http.Client // trusts the apiserver's certificate
	stages     []string     // kwok Stage files beside kwokStages (-kjobs: kwok-sleep.yaml)
	bench      bool         // -bench: tuned so as not to bound a benchmark (bench.go)
	noData     bool         // -dataplane=false: no Knative data plane, port 8080 not needed

	mu         sync.Mutex
	components []*component // every process started, in order

	proxy    *proxy
	control  *http.Server
	services map[string]*service // the data plane's, by name
}

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

// attach returns a cluster for a control plane that runs already, whose
// admin kubeconfig (with dataplane.json beside it) is kubeconfig, to run
// kjobs on: the tests run the -kjobs mode's install on the control plane
// of make test, which holds port 8080. Its stop stops only what it started.
func attach(parent context.Context, kubeconfig, logs string) (*cluster, error) {
	c, err := newCluster(parent, logs)
	if err != nil {
		return nil, err
	}
	c.kubeconfig = kubeconfig
	return c, nil
}

// toolsBin returns $KJOBS_TOOLS_BIN, or builds the tools (a no-op when they
// are up to date) and returns the folder build.sh prints.
func toolsBin() (string, error) {
	if dir := os.Getenv("KJOBS_TOOLS_BIN"); dir != "" {
		return dir, nil
	}
	mods := []string{"kube", "kwok", "knative"}
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

	// Before anything else: without these ports the data plane cannot
	// run, and a minute of start-up would be wasted.
	if !c.noData {
		if err := checkDispatcherPorts(); err != nil {
			return err
		}
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

	c.startControllerManager()
	c.startScheduler()
	if err := c.startKwok(mods[kwokModule]); err != nil {
		return err
	}

	err = parallel(
		reported(step, "kube-controller-manager ready", func() error { return c.waitControllerManager(ctx) }),
		reported(step, "node "+nodeName+" ready", func() error { return c.createNode(ctx) }),
		reported(step, "Knative CRDs established", func() error {
			return c.applyKnativeCRDs(ctx, mods[eventingModule], mods[servingModule])
		}),
		reported(step, "Knative Eventing's configuration applied", func() error {
			return c.applyEventingConfig(ctx, mods[eventingModule])
		}),
	)
	if err != nil {
		return err
	}
	if c.noData {
		return nil
	}
	return c.startDataPlane(ctx, step)
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

// reported returns fn, which reports what with step once it succeeded.
func reported(step func(string), what string, fn func() error) func() error {
	return func() error {
		if err := fn(); err != nil {
			return err
		}
		step(what)
		return nil
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
