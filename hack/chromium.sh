#!/usr/bin/env bash
# Installs Debian's chromium with apt-get when it is missing (as root, or with
# sudo) and prints its path. `make test` runs it: the dashboard's tests drive
# a headless chromium, and a fresh machine has only Go.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  echo "chromium.sh: installing chromium..." >&2
  sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium
