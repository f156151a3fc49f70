//go:build linux

package main

import "os"

// The -bench mode: what it changes of each component so that the control
// plane is not what bounds an end-to-end benchmark of Jobs (issue 10,
// target 3). With the defaults, 200 bare Jobs took 60 s (3.3 Jobs/s), the
// pace of the Job controller's client. Each value was read in the pinned
// sources (k8s.io/kubernetes v1.36.3, sigs.k8s.io/kwok v0.8.0); the
// figures it reaches are in BENCHMARKS.md, "End to end (issue 10, target
// 3)".

// benchControllerManager are kube-controller-manager's flags in -bench mode.
//   - --kube-api-qps/--kube-api-burst: the client every controller shares
//     (controller-manager options/generic.go) defaults to 20 requests a
//     second, bursts of 30 (pkg/controller/apis/config/v1alpha1/defaults.go).
//     The Job controller makes about six requests per Job (the pod, the
//     status with the pod's uncounted finish, the pod's finalizer removed,
//     the Complete status, and events), so 20/s holds it near 3.3 Jobs/s.
//   - --concurrent-job-syncs: the Job controller's workers, 5 by default
//     (pkg/controller/job/config/v1alpha1/defaults.go); each sync waits on
//     its requests' round trips, so more workers keep more in flight.
//   - --concurrent-ttl-after-finished-syncs and --concurrent-gc-syncs: the
//     workers that delete finished Jobs at their TTL and then their pods
//     (5 and 20 by default), so that deleting one run's Jobs keeps pace with
//     creating the next's.
var benchControllerManager = []string{
	"--kube-api-qps=1000", "--kube-api-burst=2000",
	"--concurrent-job-syncs=50",
	"--concurrent-ttl-after-finished-syncs=20",
	"--concurrent-gc-syncs=50",
}

// benchScheduler are kube-scheduler's flags in -bench mode: its client
// defaults to 50 requests a second, bursts of 100 (cmd/kube-scheduler
// app/options/deprecated.go), and every pod costs a binding and an event.
// The flags are deprecated in favour of a KubeSchedulerConfiguration's
// clientConnection, but still honoured when no --config is given, as here.
var benchScheduler = []string{"--kube-api-qps=1000", "--kube-api-burst=2000"}

// kube-apiserver is left at its defaults: --max-requests-inflight (400) and
// --max-mutating-requests-inflight (200) (k8s.io/apiserver
// pkg/server/config.go) are API Priority and Fairness's seats, and every
// component here authenticates as the admin in system:masters, whose
// requests APF's exempt priority level serves without a limit
// (BENCHMARKS.md: all requests exempt, none rejected).

// benchKwokConfig is a KwokConfiguration kwok reads beside its Stages in
// -bench mode. kwok's client has no rate limit already
// (pkg/utils/client/clientset.go sets a fake always-allow limiter); what
// bounds it is podPlayStageParallelism, the workers that apply a pod's
// stages (Running, Succeeded, deleted), one PATCH each: 4 by default
// (pkg/apis/config/v1alpha1/kwok_configuration_types.go). A configuration
// read from a file is not defaulted, so every option that has a default
// (zz_generated.defaults.go) is spelled out at it here, or kwok refuses a
// node parallelism of 0.
const benchKwokConfig = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 32
  cidr: 10.0.0.0/24
  manageAllNodes: false
  enableDebuggingHandlers: true
  enableContentionProfiling: false
  enableProfilingHandler: true
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
`

// writeBenchKwokConfig writes benchKwokConfig into the work folder and
// returns its path.
func (c *cluster) writeBenchKwokConfig() (string, error) {
	path := c.path("kwok-bench.yaml")
	return path, os.WriteFile(path, []byte(benchKwokConfig), 0o600)
}
