#!/usr/bin/env bash
# Builds the Helm CLI (helm.sh/helm/v3, pinned in tools/helm/go.mod as a Go
# tool) into .cache/helm/helm unless the binary is newer than tools/helm. The
# chart tests need `helm lint` and `helm template`; no prebuilt binary can be
# downloaded here, the Go module proxy is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/helm/helm
if [ -x "$out" ] && [ -z "$(find tools/helm -newer "$out" -type f | head -n1)" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
start=$(date +%s)
(
  cd tools/helm
  # The version stamps upstream's Makefile sets: helm's own version, and the
  # Kubernetes version that `helm template` and `helm lint` assume (from
  # client-go v0.X.Y: 1.X), else charts needing a recent kubeVersion fail.
  helm_version=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
  k8s_minor=$(go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${helm_version}"
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${k8s_minor}"
  done
  go build -trimpath -ldflags "$ldflags" -o "../../$out.tmp" helm.sh/helm/v3/cmd/helm
)
mv "$out.tmp" "$out"
echo "helm built in $(( $(date +%s) - start ))s"
