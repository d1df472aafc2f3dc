#!/usr/bin/env bash
# Builds the node world (test/harness/node.ts) into .cache/node/, each piece
# only when its binary is older than its sources:
#   node         kubelet + kube-scheduler (tools/node, the Kubernetes pins of
#                tools/controlplane, so the module and build caches are shared)
#   bin/         containerd, ctr, containerd-shim-runc-v2 (containerd v2,
#                tools/node/containerd, build tag no_btrfs)
#   sleeper      the static program of the pause and test images
#   ../image/operator.tar  the operator's image (scripts/build-image.sh)
# and installs runc and the CNI plugins (bridge, host-local, loopback) from
# Debian's packages. Root and Linux only: elsewhere it says so and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "node world: needs root on Linux; not built"
  exit 0
fi
out=.cache/node
mkdir -p "$out/bin"

stale() { # stale BINARY DIR...: true when BINARY is missing or older than a file under DIR
  local bin=$1
  shift
  [ ! -x "$bin" ] && return 0
  [ -n "$(find "$@" -newer "$bin" -type f | head -n1)" ]
}

if stale "$out/node" tools/node/main.go tools/node/go.mod tools/node/go.sum scripts/build-node.sh; then
  start=$(date +%s)
  (
    cd tools/node
    # Versions stamped as upstream's Makefile does (the Node reports it).
    v=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
    pkg=k8s.io/component-base/version
    minor=$(echo "$v" | cut -d. -f2)
    go build -trimpath -ldflags "-X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor" \
      -o "../../$out/node.tmp" .
  )
  mv "$out/node.tmp" "$out/node"
  echo "kubelet + kube-scheduler built in $(( $(date +%s) - start ))s"
fi

if stale "$out/bin/containerd" tools/node/containerd scripts/build-node.sh; then
  start=$(date +%s)
  for cmd in containerd ctr containerd-shim-runc-v2; do
    (cd tools/node/containerd && go build -trimpath -tags no_btrfs -o "../../../$out/bin/$cmd.tmp" \
      "github.com/containerd/containerd/v2/cmd/$cmd")
    mv "$out/bin/$cmd.tmp" "$out/bin/$cmd"
  done
  echo "containerd built in $(( $(date +%s) - start ))s"
fi

if stale "$out/sleeper" tools/node/sleeper scripts/build-node.sh; then
  (cd tools/node && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "../../$out/sleeper.tmp" ./sleeper)
  mv "$out/sleeper.tmp" "$out/sleeper"
fi

# The operator's image from the Dockerfile (buildah, a local stand-in base).
bash scripts/build-image.sh

if ! command -v runc >/dev/null 2>&1 || [ ! -x /usr/lib/cni/bridge ]; then
  echo "==> runc and CNI plugins (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc containernetworking-plugins >/dev/null
fi
