#!/usr/bin/env bash
# What `npm test` runs; works straight after `git clone`.
#
#   1. Installs what is missing, while the network is still reachable:
#      node_modules (npm ci) and the control plane's binaries (hack/build-k8s.sh,
#      cached outside the repo; KUBEBUILDER_ASSETS skips the build).
#   2. Runs the whole vitest run (unit and integration; extra arguments are
#      passed to vitest) on Node 24 inside a private network namespace with
#      loopback up and 198.18.0.0/15 routed to it: pod IPs from that range can
#      be published in EndpointSlices and bound by test servers, and nothing
#      inside can reach any other network. A PID namespace around the run
#      makes sure no control-plane process outlives it.
#
#      With HEALTHGATE_REUSE_PLANE=1 and a plane started by `hack/cluster.ts up`
#      running, the run enters that plane's network namespace instead and the
#      suite reuses the plane (saves its start-up; opt-in, because the record
#      is shared by everyone using the same cache directory).
#
# Exits with vitest's exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

if [ ! -d node_modules ] || [ ! -e node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "test: installing node_modules (npm ci)" >&2
  npm ci
fi
node=$PWD/node_modules/.bin/node
[ -x "$node" ] || { echo "test: $node is missing; the 'node' devDependency provides Node 24" >&2; exit 1; }

KUBEBUILDER_ASSETS=$(bash hack/build-k8s.sh)
export KUBEBUILDER_ASSETS
# The chart tests need helm; nothing inside the network namespace can download it.
HELM=$(bash hack/ensure-helm.sh)
export HELM
# The Argo CD health scripts' tests run them in Argo CD's interpreter, built with Go.
HEALTHGATE_LUAHEALTH=$(bash hack/build-luahealth.sh)
export HEALTHGATE_LUAHEALTH
# Tools and tests that spawn `node` or `vitest` get Node 24, as under npm.
export PATH="$PWD/node_modules/.bin:$PATH"

vitest=(node_modules/vitest/vitest.mjs run "$@")
inside='ip link set lo up && ip route add local 198.18.0.0/15 dev lo || exit 1; "$@"; exit $?'
if [ "$(id -u)" -eq 0 ]; then userns=(); else userns=(--user --map-root-user); fi

status=0
if [ -n "${HEALTHGATE_REUSE_PLANE:-}" ] && plane_pid=$("$node" hack/cluster.ts pid 2>/dev/null); then
  echo "test: reusing the plane of hack/cluster.ts (kube-apiserver pid $plane_pid); 'node_modules/.bin/node hack/cluster.ts down' stops it" >&2
  if [ "$(id -u)" -eq 0 ]; then enter=(--net); else enter=(--user --net --preserve-credentials); fi
  nsenter --target "$plane_pid" "${enter[@]}" -- "$node" "${vitest[@]}" || status=$?
else
  unshare "${userns[@]}" --net --pid --fork --kill-child --mount-proc -- \
    bash -c "$inside" netns "$node" "${vitest[@]}" || status=$?
fi
echo "test: finished in $(($(date +%s) - started)) s (exit $status)" >&2
exit "$status"
