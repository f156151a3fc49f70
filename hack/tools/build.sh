#!/usr/bin/env bash
# Builds the tools the tests and image targets need from the pinned modules
# beside this script, into a cache folder outside the work tree, and prints
# that folder. A module is rebuilt only when its go.mod, go.sum or Go files
# changed or one of its binaries is missing, so a warm run takes seconds; a
# cold one takes ~15-27 min on 2 cores (knative's five binaries: ~1.5 min
# once the others are built).
#
# Usage: hack/tools/build.sh [kube|etcd|kwok|ko|knative]...   (default: all)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${KJOBS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kjobs/tools}
bin="$cache/bin"
mkdir -p "$bin"

# Two runs at once (two `make test`s) would write the same binaries.
exec 9>"$cache/.lock"
flock 9

kube_version=v1.36.3
version_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=36"
  version_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# build MODULE LDFLAGS BINARY... builds every tool of MODULE's go.mod.
build() {
  local mod=$1 ldflags=$2
  shift 2
  local stamp="$cache/$mod.stamp"
  local want
  # The Go files are those of a module's own main packages (knative's).
  want=$(cat "$here/$mod/go.mod" "$here/$mod/go.sum" $(find "$here/$mod" -name '*.go' | LC_ALL=C sort) |
    sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && all_exist "$@"; then
    return
  fi
  echo "building $mod tools (cold builds take minutes)..." >&2
  (cd "$here/$mod" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w $ldflags" -o "$bin/" tool)
  # etcd's main package is its module root, go.etcd.io/etcd/server/v3,
  # which go build names "server".
  if [[ $mod == etcd ]]; then
    mv -f "$bin/server" "$bin/etcd"
  fi
  all_exist "$@" || { echo "build.sh: $mod did not produce $*" >&2; exit 1; }
  echo "$want" >"$stamp"
}

all_exist() {
  local b
  for b in "$@"; do
    [[ -x $bin/$b ]] || return 1
  done
}

mods=("$@")
[[ ${#mods[@]} -gt 0 ]] || mods=(etcd kwok kube ko knative)
for mod in "${mods[@]}"; do
  case $mod in
  kube) build kube "$version_ldflags" kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
  etcd) build etcd "" etcd ;;
  kwok) build kwok "" kwok ;;
  ko) build ko "" ko crane registry ;;
  knative) build knative "" ingress filter channel_dispatcher knative-mtping knative-controllers ;;
  *) echo "unknown tool module: $mod" >&2; exit 2 ;;
  esac
done
echo "$bin"
