#!/usr/bin/env bash
# The one test command (`npm test`): installs what the tests need on a machine
# that never saw the project, then runs lint, typecheck and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "==> lint";      npx --no-install biome check .
echo "==> typecheck"; npx --no-install tsc -p tsconfig.json --noEmit
echo "==> build";     npx --no-install tsc -p tsconfig.build.json
echo "==> tests";     npx --no-install vitest run "$@"
