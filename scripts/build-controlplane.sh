#!/usr/bin/env bash
# Builds tools/controlplane into .cache/controlplane/controlplane unless the
# binary is newer than every source file.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/controlplane/controlplane
v=$(cd tools/controlplane && go list -m -f '{{.Version}}' k8s.io/kubernetes)
# Fresh: newer than its sources and stamped with the pinned version (a build
# from an older checkout sharing .cache may have replaced it).
if [ -x "$out" ] && [ -z "$(find tools/controlplane scripts/build-controlplane.sh -newer "$out" -type f | head -n1)" ] &&
  [ "$("$out" kube-apiserver --version 2>/dev/null)" = "Kubernetes $v" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
start=$(date +%s)
# The version stamps upstream's Makefile sets: without them the API server
# says v0.0.0-master, and `helm install` of a chart with a kubeVersion fails.
(
  cd tools/controlplane
  pkg=k8s.io/component-base/version
  minor=$(echo "$v" | cut -d. -f2)
  go build -trimpath -ldflags "-X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor" \
    -o "../../$out.tmp" .
)
mv "$out.tmp" "$out"
echo "control plane built in $(( $(date +%s) - start ))s"
