#!/usr/bin/env bash
# Builds tools/keyring (the kubelet's own pull-credential keyring, from
# k8s.io/kubernetes at the version tools/controlplane pins, so the module and
# build caches are shared) into .cache/keyring/keyring unless the binary is
# newer than every source file.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/keyring/keyring
if [ -x "$out" ] && [ -z "$(find tools/keyring -newer "$out" -type f | head -n1)" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
start=$(date +%s)
(cd tools/keyring && go build -trimpath -o "../../$out.tmp" .)
mv "$out.tmp" "$out"
echo "keyring built in $(( $(date +%s) - start ))s"
