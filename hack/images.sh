#!/usr/bin/env bash
# Builds every kjobs image with ko and pushes it to $KO_DOCKER_REPO, then
# prints one line per image: its ko:// reference as config/ writes it, and
# the pushed image by digest. Extra arguments go to `ko build` (make release
# passes --sbom=none).
#
# Usage: KO_DOCKER_REPO=registry.example.com/kjobs hack/images.sh [ko build flags]
set -euo pipefail

: "${KO_DOCKER_REPO:?set KO_DOCKER_REPO to the repository to push to, e.g. KO_DOCKER_REPO=ghcr.io/you/kjobs}"

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# ko reads only .ko.yaml unless told otherwise; without ko.yaml it would
# silently use its own default base image.
export KO_CONFIG_PATH=${KO_CONFIG_PATH:-$root/ko.yaml}

module=$(go list -m)
# Every main of the project, as config/ references them.
mains=(services/api functions/dispatcher processor)

for main in "${mains[@]}"; do
  # -B names each image after its main's last path element (api,
  # dispatcher, processor); --bare would push all three to the same name.
  ref=$(ko build -B "$@" "$module/$main")
  echo "ko://$module/$main $ref"
done
