#!/usr/bin/env bash
# Publishes every kjobs image and pins the overlays to them by digest, so
# that `kubectl apply -k kustomize/overlays/prod` (or dev) installs the
# release with no ko and no build. Run it on the commit being released and
# commit the pinned overlays with the release: `make deploy` then installs
# those images too, so check the overlays out again to go back to building
# from the working tree.
#
# Prints what it pinned, one image a line, as hack/images.sh does.
#
# Usage: KO_DOCKER_REPO=registry.example.com/kjobs hack/release.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

# No SBOM: it would be pushed as a second artifact beside each image, which
# not every registry accepts and nothing here consumes.
refs=$("$root/hack/images.sh" --sbom=none)

for overlay in prod dev; do
  file=$root/kustomize/overlays/$overlay/kustomization.yaml
  # images: is the last key of each overlay (its comment says so), so
  # everything from it to the end is replaced.
  head=$(awk '/^images:/ { exit } { print }' "$file")
  {
    printf '%s\nimages:\n' "$head"
    while read -r ko ref; do
      printf '  - name: %s\n    newName: %s\n    digest: %s\n' "$ko" "${ref%@*}" "${ref#*@}"
    done <<<"$refs"
  } >"$file"
  echo "pinned kustomize/overlays/$overlay" >&2
done
echo "$refs"
