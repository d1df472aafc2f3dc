#!/usr/bin/env bash
# Builds the operator's image from the project's own Dockerfile with Debian's
# buildah (no Docker daemon), into .cache/image/operator.tar (an OCI archive
# for `ctr images import`), tagged TAG (default
# localhost/ecr-creds-refresher:dev).
#
# No registry outside this machine is reachable here, so the Dockerfile's base
# image `node:24-slim` is replaced by a local stand-in under the same name,
# built once into .cache/image/base/:
#   - a Debian 12 (bookworm) minbase root filesystem from Debian's packages
#     (debootstrap --variant=minbase),
#   - the Node.js 24 binary the npm package `node` ships (node_modules/.bin/node),
#     as /usr/local/bin/node,
#   - npm from Debian's host install (/usr/lib/node_modules/npm), as
#     /usr/local/bin/npm and npx,
#   - the user and group `node` with uid and gid 1000, as in node:24-slim.
# The build stages' `npm ci` reach the npm registry through the host network
# (buildah --network host).
#
# Usage: scripts/build-image.sh [TAG [ARCHIVE]]   Root and Linux only. Does nothing when
# the archive is newer than the Dockerfile and every file it copies (and has
# TAG), unless FORCE_IMAGE_BUILD is set.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/ecr-creds-refresher:dev}
out=.cache/image
archive=${2:-$out/operator.tar}
base=docker.io/library/node:24-slim
mkdir -p "$out"
inputs=(Dockerfile package.json package-lock.json tsconfig.json tsconfig.build.json src bin scripts/build-image.sh)
if [ -z "${FORCE_IMAGE_BUILD:-}" ] && [ -f "$archive" ] && [ "$(cat "$archive.tag" 2>/dev/null)" = "$tag" ] &&
  [ -z "$(find "${inputs[@]}" -newer "$archive" -type f | head -n1)" ]; then
  exit 0
fi
for tool in buildah debootstrap; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null
    break
  fi
done

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  start=$(date +%s)
  rootfs=$out/base-rootfs
  if [ ! -e "$out/base-rootfs.done" ]; then
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$out/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    touch "$out/base-rootfs.done"
  fi
  install -m 0755 node_modules/node/bin/node "$rootfs/usr/local/bin/node"
  rm -rf "$rootfs/usr/local/lib/node_modules/npm"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a /usr/lib/node_modules/npm "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  if ! grep -q '^node:' "$rootfs/etc/passwd"; then
    chroot "$rootfs" groupadd --gid 1000 node
    chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  fi
  ctr=$(buildah from scratch)
  buildah copy --quiet "$ctr" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd node "$ctr"
  buildah commit --quiet "$ctr" "$base" >/dev/null
  buildah rm "$ctr" >/dev/null
  echo "stand-in for $base built in $(( $(date +%s) - start ))s"
fi

# The build stages' npm trusts what this host trusts (a proxy's CA, say):
# the host's CA bundle and an npmrc naming it, mounted for the build only.
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
echo "cafile=/run/host-ca.crt" >"$out/npmrc"
start=$(date +%s)
buildah build --quiet --pull=never --network host --layers \
  -v "$(realpath "$ca"):/run/host-ca.crt:ro" -v "$PWD/$out/npmrc:/usr/local/etc/npmrc:ro" \
  -t "$tag" -f Dockerfile . >/dev/null
rm -f "$archive"
buildah push --quiet "$tag" "oci-archive:$archive:$tag" >/dev/null
echo "$tag" >"$archive.tag"
echo "image $tag built in $(( $(date +%s) - start ))s"
