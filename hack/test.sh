#!/usr/bin/env bash
# What `make test` runs: installs redis-server when it is missing, builds the
# tools (cached), starts one control plane for the whole run, runs every test
# and then a short fuzz run of every fuzz target against it, and stops it.
# Exits non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
begin=$SECONDS

# The Makefile exports these; set them here too so that running this script
# directly tests the same way and shares ko's Go build cache.
export CGO_ENABLED=${CGO_ENABLED:-0}
export GOFLAGS=${GOFLAGS:--trimpath -tags=grpcnotrace}

KJOBS_REDIS_SERVER=$(hack/redis-server.sh)
export KJOBS_REDIS_SERVER
KJOBS_CHROMIUM=$(hack/chromium.sh)
export KJOBS_CHROMIUM

# kube-apiserver and etcd come from KUBEBUILDER_ASSETS when it is set (then
# KJOBS_TOOLS_BIN has no etcd). knative is Eventing's data plane, which the
# control plane runs as processes.
tools=(kube kwok ko knative)
[[ -n ${KUBEBUILDER_ASSETS:-} ]] || tools+=(etcd)
KJOBS_TOOLS_BIN=$(hack/tools/build.sh "${tools[@]}")
export KJOBS_TOOLS_BIN
export PATH="$KJOBS_TOOLS_BIN:$PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/kjobs-test.XXXXXX")
# Keep kubectl's discovery cache out of ~/.kube.
export KUBECACHEDIR=$work/kubecache
logs=$root/_output/controlplane # git-ignored; kept for a look after a failure
rm -rf "$logs"

cp_pid=
stop_controlplane() {
  [[ -n $cp_pid ]] || return 0
  local rc=0
  kill -TERM "$cp_pid" 2>/dev/null || true
  wait "$cp_pid" || rc=$?
  cp_pid=
  return "$rc"
}
trap 'stop_controlplane || true; rm -rf "$work"' EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

go build -o "$work/controlplane" ./hack/controlplane
"$work/controlplane" -logs "$logs" >"$work/kubeconfig-path" &
cp_pid=$!
# It prints the kubeconfig's path once everything is ready.
until [[ -s $work/kubeconfig-path ]]; do
  if ! kill -0 "$cp_pid" 2>/dev/null; then
    wait "$cp_pid" || true
    cp_pid=
    echo "test.sh: FAIL: the control plane did not start (logs in $logs)" >&2
    exit 1
  fi
  sleep 0.2
done
KJOBS_KUBECONFIG=$(<"$work/kubeconfig-path")
# KUBECONFIG too: a kubectl that a test runs without testenv.Kubectl then
# reaches the test cluster, never the developer's own.
export KJOBS_KUBECONFIG KUBECONFIG=$KJOBS_KUBECONFIG
# Where Knative Eventing's data plane listens, and its control server
# (testenv.DataPlane).
KJOBS_DATAPLANE=$(dirname "$KJOBS_KUBECONFIG")/dataplane.json
[[ -s $KJOBS_DATAPLANE ]] || { echo "test.sh: FAIL: the control plane wrote no $KJOBS_DATAPLANE" >&2; exit 1; }
export KJOBS_DATAPLANE

failed=()
# The packages that stop and start the shared Knative data plane's
# components run after the others, one at a time, so that a broker filter or
# channel dispatcher one of them kills never cuts another package's
# deliveries.
dataplane=(./test/dataplane ./test/knative)
mapfile -t others < <(go list ./... | grep -v -e /test/dataplane -e /test/knative)
go test -count=1 "${others[@]}" || failed+=("go test (all but the data-plane packages)")
go test -count=1 -p 1 "${dataplane[@]}" || failed+=("go test ${dataplane[*]}")

# `go test -list` prints each package's matching names, then "ok <package>";
# it fails when a package does not build, which `go test` has reported
# already: fuzz the packages that do.
fuzz=()
list=$(go test -list '^Fuzz' ./...) || failed+=("go test -list")
names=()
while read -r first second _; do
  case $first in
  Fuzz*) names+=("$first") ;;
  ok)
    for name in "${names[@]}"; do fuzz+=("$second $name"); done
    names=()
    ;;
  esac
done <<<"$list"
# A count, not a duration: with -fuzztime 10s, go1.26's fuzz coordinator
# can report the end of its own deadline as a failure, "context deadline
# exceeded" with no failing input (go.dev/issue/75804, fixed in go1.27). It
# did so once here, for FuzzJobID. 10,000 inputs take 1-17 s per target.
fuzzcount=10000
for target in "${fuzz[@]}"; do
  read -r pkg name <<<"$target"
  go test -run '^$' -fuzz "^$name\$" -fuzztime "${fuzzcount}x" "$pkg" || failed+=("fuzz $name ($pkg)")
done

# It exits non-zero only when a component failed during the tests.
stop_controlplane || failed+=("the control plane (a component exited during the tests)")

elapsed=$((SECONDS - begin))
if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'test.sh: failed: %s\n' "${failed[@]}" >&2
  echo "test.sh: FAIL after ${elapsed}s (control plane logs in $logs)" >&2
  exit 1
fi
echo "test.sh: PASS: all tests and ${#fuzz[@]} fuzz targets (${fuzzcount} inputs each) in ${elapsed}s"
