#!/usr/bin/env bash
# Builds promtool (github.com/prometheus/prometheus/cmd/promtool, pinned in
# tools/promtool/go.mod as a Go tool) into .cache/promtool/promtool unless the
# binary is newer than tools/promtool. The chart's PrometheusRule tests run
# `promtool check rules` and `promtool test rules`. remove_all_sd leaves out
# the service-discovery plugins (cloud SDKs) that rule checks never use.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/promtool/promtool
if [ -x "$out" ] && [ -z "$(find tools/promtool -newer "$out" -type f | head -n1)" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
start=$(date +%s)
(
  cd tools/promtool
  version=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
  ldflags="-s -w -X github.com/prometheus/common/version.Version=${version}"
  go build -trimpath -tags remove_all_sd -ldflags "$ldflags" -o "../../$out.tmp" \
    github.com/prometheus/prometheus/cmd/promtool
)
mv "$out.tmp" "$out"
echo "promtool built in $(( $(date +%s) - start ))s"
