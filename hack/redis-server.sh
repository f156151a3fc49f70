#!/usr/bin/env bash
# Installs redis-server with apt-get when it is missing (as root, or with
# sudo) and prints its path. `make test` and `make cluster` run it: a fresh
# machine has only Go.
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  echo "redis-server.sh: installing redis-server..." >&2
  sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
command -v redis-server
