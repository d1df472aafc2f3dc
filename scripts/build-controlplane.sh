#!/usr/bin/env bash
# Builds tools/controlplane into .cache/controlplane/controlplane unless the
# binary is newer than every source file.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/controlplane/controlplane
if [ -x "$out" ] && [ -z "$(find tools/controlplane -newer "$out" -type f | head -n1)" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
start=$(date +%s)
(cd tools/controlplane && go build -trimpath -o "../../$out.tmp" .)
mv "$out.tmp" "$out"
echo "control plane built in $(( $(date +%s) - start ))s"
