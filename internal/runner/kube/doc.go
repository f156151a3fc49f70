// Package kube runs each attempt of a kjobs job as a batch/v1 Job, in the
// dispatcher's namespace, and waits for it through informers.
//
// # One Job per attempt
//
// Attempt n of job id is the Job kjobs-<id>-<n> (runner.Name), labelled
// kjobs.dev/job-id, kjobs.dev/attempt, kjobs.dev/function and
// app.kubernetes.io/managed-by=kjobs, its pod template too. The Job runs one
// pod, never retried (backoffLimit 0: retries are the Broker's, one new Job
// each), for at most the job's timeout or else Config.Deadline. The job's
// own labels are on the Job and its pod, below kjobs' own. Once its outcome is recorded it is
// removed Config.Grace later; one whose outcome no dispatcher recorded is
// removed Config.TTL after it finished. The pod runs the processor image as user 65532 with a
// read-only root file system, no capabilities and no service account token,
// which the restricted Pod Security Standard admits.
//
// Because the name is derived from the job ID and attempt, two deliveries of
// one event cannot make two Jobs for one attempt: the second Create gets
// AlreadyExists, and Start adopts the Job that exists.
//
// # Reading state
//
// New starts one informer factory for the namespace, watching Jobs and pods
// labelled managed-by=kjobs and the functions ConfigMap by name. Attempts
// and Wait read its caches; Wait registers with its event handlers, so any
// number of waiting deliveries share one watch per kind and nothing polls.
// A cache lags the API server by a moment; where that could make the
// dispatcher start an attempt too early, the runner asks the API server once
// instead (see Runner.Attempts and Runner.Start).
//
// An attempt's outcome is its Job's Complete or Failed condition; its exit
// code and message are those of the pod's terminated processor container
// (the termination message, or the last log lines if the processor wrote
// none), else the Failed condition's reason and message, such as
// DeadlineExceeded.
//
// # Disruptions, and pods that cannot start
//
// Every Job's podFailurePolicy ignores a pod failure with the
// DisruptionTarget condition (eviction, preemption, a node autoscaler's
// consolidation): the Job controller replaces the pod within the same Job,
// so the disruption uses up no attempt. A placement's doNotDisrupt also
// annotates the pod karpenter.sh/do-not-disrupt.
//
// A pod that cannot start fails its attempt with the reason instead of
// holding it until the deadline: the reconciler annotates the Job
// kjobs.dev/start-failure and lowers its activeDeadlineSeconds, which the
// API server accepts on a running Job, so that the Job controller fails it
// as it would any Job past its deadline (see cannotStart for which reasons
// fail at once and which after Config.StartDeadline).
//
// # Recording outcomes
//
// Runner.Reconcile is the reconciler of kjobs Jobs: a workqueue fed by the
// same informers, whose sync reads a Job and its pods from the cache and
// records the attempt's start and end, whether or not a delivery waits for
// it. A cut delivery, a restarted Broker or a dispatcher that was down loses
// nothing: the next sync, or the first pass after a restart, records what
// the cluster shows. A Job deleted before it finished records a failed
// attempt with reason JobDeleted.
//
// # Placement
//
// The functions ConfigMap (Config.FunctionsConfigMap) sets each function's
// resources, nodeSelector, tolerations, affinity, pod labels and pod
// annotations, and doNotDisrupt; see Placement. The ConfigMap is optional; a malformed entry
// makes Start fail with an error naming the entry's key.
//
// # Permissions
//
// The dispatcher's ServiceAccount needs, in its namespace: create, get,
// list, watch and patch on jobs (batch); list and watch on pods; list and watch on
// the functions ConfigMap, which a rule with resourceNames allows since it
// is watched with a metadata.name field selector.
//
// # Logs
//
// Logs, apart from the Runner, reads an attempt's output from its pod's log
// (pods/log), for the API: it needs get and list on pods and get on pods/log,
// and nothing on Jobs.
package kube
