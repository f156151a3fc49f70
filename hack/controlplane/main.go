//go:build linux

// Command controlplane runs a real Kubernetes control plane on 127.0.0.1 for
// the integration tests: etcd, kube-apiserver (RBAC, PodSecurity admission),
// kube-controller-manager with the Job, Deployment and EndpointSlice
// controllers, kube-scheduler, and kwok playing the kubelet of one fake node,
// with Knative's CRDs applied; and Knative Eventing's own data plane as
// processes: its controllers (knative-controllers), the MT channel-based
// Broker's ingress and filter, the in-memory channel's dispatcher and the
// PingSource adapter (mtping), behind a forward proxy that maps their
// cluster DNS names to loopback ports.
//
// Once everything is ready it prints the admin kubeconfig's path on stdout,
// with dataplane.json beside it (the ingress's, filter's, proxy's and
// control server's URLs), and runs until SIGINT or SIGTERM, or until the
// process that started it dies; then it stops every component. If a
// component fails, it prints where the logs are and exits non-zero. The
// control server stops and starts data-plane components on request
// (control.go); a component stopped that way does not count as failed.
//
// With -kjobs (what make cluster runs, through hack/cluster.sh) it also
// runs kjobs on itself, for people to try: it installs
// kustomize/overlays/dev, runs a redis-server and kjobs' API and dispatcher
// (built from the working tree) as host processes with the environment
// and ServiceAccounts their Knative Services give them, sets what Knative
// Serving and Eventing's webhook would (kjobs.go), and prints
// "kjobs API: http://127.0.0.1:PORT" on stdout instead of the kubeconfig's
// path once a job sent to the API would be delivered. kwok then also
// finishes "sleep" pods after their seconds (kwok-sleep.yaml), and
// kjobs-functions makes kwok fail "fail" pods. Measured on 2 cores, tools
// built: "kjobs API" 21-32 s after start, of which 13.5-20 s for the control
// plane; the build of the API and the dispatcher runs meanwhile (18-28 s
// warm under that load) and is what the rest waits for (~4 s after it). The tests run the same
// install on the control plane of make test (TestKjobsOnControlPlane).
//
// Usage, from the repository root:
//
//	go run ./hack/controlplane [-logs DIR] [-kjobs [-port 8090]] [-bench] [-dataplane=false]
//
// With -bench the control plane is tuned so that it does not bound a
// benchmark of Jobs end to end (issue 10, target 3): kube-controller-manager's
// client and Job workers, kube-scheduler's client and kwok's stage workers
// are raised above their defaults, which hold bare Jobs near 3.3 Jobs/s
// (bench.go says which flag and why; BENCHMARKS.md, "End to end (issue 10,
// target 3)", what it reaches). With -dataplane=false it starts no Knative
// data plane and needs no port 8080, so that a second control plane can run
// beside one that has it, for benchmarks of bare Jobs; -kjobs needs the
// data plane.
//
// The binaries come from $KJOBS_TOOLS_BIN, else from hack/tools/build.sh;
// kube-apiserver and etcd come from $KUBEBUILDER_ASSETS when that is set
// (the envtest convention). Port 8080 (and 8443) must be free: Knative's
// in-memory channel dispatcher listens there, whatever it is told.
//
// Measured on 2 cores, tools built: ready 7.5-8 s after start, 10 s on the
// first start after a build (etcd at 0.2-0.9 s, kube-apiserver 3-3.5 s,
// the default ServiceAccount and the Ready node at 4 s, Eventing's
// configuration applied at 5.5 s, the 25 Knative CRDs Established at 6 s,
// then the data plane's processes serve 0.2-2 s later, and Knative's
// Deployments are Available); before the data plane it was 5.5-7 s, and
// 11-16 s while other builds load the machine. Stopping takes 2-4 s (up to
// 6 s more when mtping gets SIGTERM in the last seconds of a minute: it
// waits for the next tick). A data-plane component starts again in
// 0.1-0.6 s. The cold part is building the tools: ~13 min for etcd, kwok,
// kube and ko, ~1.5 min more for knative (hack/tools/build.sh).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	logs := flag.String("logs", "", "folder for the components' logs (default: a temporary folder, removed after a clean stop)")
	withKjobs := flag.Bool("kjobs", false, "also install kjobs from kustomize/overlays/dev and run its API and dispatcher as host processes (make cluster)")
	port := flag.Int("port", 8090, "with -kjobs: the API's port (8080 is the in-memory channel dispatcher's)")
	bench := flag.Bool("bench", false, "tune the control plane for benchmarks of Jobs end to end, so that it does not bound them: "+
		"kube-controller-manager's client at 1000 requests/s (default 20) and 50 Job workers (default 5), kube-scheduler's client at 1000/s (default 50), "+
		"32 kwok workers playing pod stages (default 4); see bench.go")
	dataPlane := flag.Bool("dataplane", true, "start Knative Eventing's data plane; false leaves it out, and port 8080 free, for a second control plane that only runs Jobs")
	flag.Parse()
	if *withKjobs && !*dataPlane {
		fmt.Fprintln(os.Stderr, "controlplane: -kjobs needs the data plane; drop -dataplane=false")
		os.Exit(2)
	}
	os.Exit(run(*logs, *withKjobs, *port, *bench, !*dataPlane))
}

func run(logs string, withKjobs bool, port int, bench, noDataPlane bool) int {
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
	c.bench, c.noData = bench, noDataPlane
	var k *kjobs
	if withKjobs {
		if k, err = c.prepareKjobs(".", port); err != nil {
			fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
			c.cleanUp()
			return 1
		}
	}
	if err = c.start(); err == nil {
		fmt.Fprintf(os.Stderr, "controlplane: ready in %.1fs\n", time.Since(begin).Seconds())
		if k == nil {
			fmt.Println(c.kubeconfig)
		} else {
			var api string
			if api, err = k.start(c.ctx); err == nil {
				token, secret := k.token()
				fmt.Fprintf(os.Stderr, "controlplane: kjobs ready in %.1fs; logs in %s; Ctrl-C stops everything\n"+
					"  export KUBECONFIG=%s\n"+
					"  curl -H 'Authorization: Bearer %s' %s/jobs/stats   # the token of Secret %s/%s\n",
					time.Since(begin).Seconds(), c.logs, c.kubeconfig, token, api, kjobsNamespace, secret)
				fmt.Println("kjobs API: " + api)
			}
		}
		if err == nil {
			<-c.ctx.Done()
		}
	}
	// Taken before stop, which makes every component exit: a component
	// that exited on its own explains a failure better than the start-up
	// steps it made fail.
	cause := context.Cause(c.ctx)
	stopping := time.Now()
	c.stop()
	if ctx.Err() != nil { // a signal: the expected way to stop
		c.cleanUp()
		if k != nil {
			fmt.Fprintf(os.Stderr, "controlplane: stopped and removed everything in %.1fs; the logs are in %s\n", time.Since(stopping).Seconds(), c.logs)
		}
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
