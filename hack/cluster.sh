#!/usr/bin/env bash
# What `make cluster` runs: kjobs on a local control plane with Knative
# Eventing's real data plane, no Docker. Installs redis-server when it is
# missing, builds the tools (cached) and the control plane, and runs it with
# -kjobs: it installs kustomize/overlays/dev, runs the API and the
# dispatcher as host processes, and prints `kjobs API: http://127.0.0.1:PORT`
# once everything is Ready. Ctrl-C stops and removes everything; the logs
# stay in _output/cluster.
#
# Usage: hack/cluster.sh [PORT]   (default 8090: the in-memory channel
# dispatcher of Knative Eventing always holds 8080)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8090}

# As the Makefile exports them, so that the API and dispatcher builds share
# ko's and the tests' Go build cache.
export CGO_ENABLED=${CGO_ENABLED:-0}
export GOFLAGS=${GOFLAGS:--trimpath -tags=grpcnotrace}

hack/redis-server.sh >/dev/null

tools=(kube kwok knative)
[[ -n ${KUBEBUILDER_ASSETS:-} ]] || tools+=(etcd)
KJOBS_TOOLS_BIN=$(hack/tools/build.sh "${tools[@]}")
export KJOBS_TOOLS_BIN

logs=$PWD/_output/cluster # git-ignored; kept after the stop
rm -rf "$logs"
go build -o _output/bin/controlplane ./hack/controlplane
# The control plane stops everything it started on Ctrl-C (the terminal's
# SIGINT), on SIGTERM, and when its parent (make) dies.
exec _output/bin/controlplane -kjobs -port "$port" -logs "$logs"
