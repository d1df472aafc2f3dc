#!/usr/bin/env bash
# Builds AWS's IAM Roles Anywhere signing helper
# (github.com/aws/rolesanywhere-credential-helper, pinned in
# tools/rolesanywhere-helper/go.mod as a Go tool) into
# .cache/rolesanywhere-helper/aws_signing_helper unless the binary is newer
# than tools/rolesanywhere-helper. The Roles Anywhere double's unit test runs
# it as `credential-process --endpoint <double>`: the double is checked
# against AWS's own signer, and our signer against the double.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/rolesanywhere-helper/aws_signing_helper
if [ -x "$out" ] && [ -z "$(find tools/rolesanywhere-helper -newer "$out" -type f | head -n1)" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
start=$(date +%s)
(
  cd tools/rolesanywhere-helper
  go build -trimpath -ldflags "-s -w" -o "../../$out.tmp" github.com/aws/rolesanywhere-credential-helper
)
mv "$out.tmp" "$out"
echo "rolesanywhere-helper built in $(( $(date +%s) - start ))s"
