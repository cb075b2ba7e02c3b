#!/usr/bin/env bash
# `npm run dev`: the README's first command. Installs what is missing (npm
# dependencies incl. Node 24, the control-plane binaries), then runs
# `healthgate dev`: a local control plane when no cluster is configured, the
# CRD, the operator, an example policy, and `kubectl get hpol`.
# Arguments pass through, e.g. `npm run dev -- --once`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "dev: installing npm dependencies (includes Node 24)…" >&2
  npm ci --no-audit --no-fund >&2
fi
if [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ] && [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  bash hack/build-k8s.sh >/dev/null
fi
exec node_modules/.bin/node src/cli/main.ts dev "$@"
