#!/usr/bin/env bash
# Builds crane (github.com/google/go-containerregistry/cmd/crane, pinned in
# tools/crane/go.mod as a Go tool) into .cache/crane/crane unless the binary
# is newer than tools/crane. crane authenticates through go-containerregistry's
# default keychain, the one Kaniko uses: it reads $DOCKER_CONFIG/config.json,
# which the config.json output test points at the operator's Secret.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/crane/crane
if [ -x "$out" ] && [ -z "$(find tools/crane -newer "$out" -type f | head -n1)" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
start=$(date +%s)
(
  cd tools/crane
  version=$(go list -m -f '{{.Version}}' github.com/google/go-containerregistry)
  go build -trimpath -ldflags "-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=${version}" \
    -o "../../$out.tmp" github.com/google/go-containerregistry/cmd/crane
)
mv "$out.tmp" "$out"
echo "crane built in $(( $(date +%s) - start ))s"
