#!/usr/bin/env bash
# Runs integration test files against real control planes of several Kubernetes
# versions and prints a pass/fail table with durations.
#
#   bash hack/test-versions.sh [FILE...]
#   K8S_VERSIONS="v1.36.5" bash hack/test-versions.sh test/integration/controller/gate.test.ts
#
# For each version, hack/build-k8s.sh builds (or reuses from its cache) that
# version's etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl and healthgate-node from the Go module proxy; then each FILE runs in
# its own `K8S_VERSION=<version> bash hack/test.sh FILE` (a fresh plane of that
# version per file). A row shows the version the API server reported (from the
# run's "control plane vX.Y.Z ... up" line), the file, PASS/FAIL and the
# wall-clock seconds. Logs: $HEALTHGATE_VERSIONS_LOGS (default a new directory
# under $TMPDIR), one per build and per run.
#
#   K8S_VERSIONS  space-separated v1.MINOR.PATCH list. Default: the latest 1.35
#                 and 1.36 patches whose whole module graph (k8s.io/kubernetes
#                 and every staging module at the matching v0 tag) the Go
#                 module proxy serves, then the version hack/k8sbin/go.mod pins.
#   FILE...       default: the gate webhook's tests on the real control plane
#                 and the real kubelet (see DEFAULT_FILES below). Files that
#                 assert the pinned version (harness.test.ts, readme.test.ts)
#                 fail on any other version by design.
#
# Exits 0 when every row passed, 1 otherwise.
#
# Not part of .ci/run (too heavy for its 90-minute budget): a version not yet
# cached takes 7-9 minutes of builds on 2 cores, and the default files about
# 6 minutes per version, a plane each. Run it by hand before a release or after
# changing hack/k8sbin, the chart's admission objects, or anything the gate
# webhook touches.
set -uo pipefail
cd "$(dirname "$0")/.."

pinned=$(sed -n 's/^\s*k8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' hack/k8sbin/go.mod | head -n1)
read -r -a versions <<<"${K8S_VERSIONS:-v1.35.5 v1.36.5 $pinned}"
DEFAULT_FILES=(
  test/integration/controller/gate.test.ts
  test/integration/controller/uninstallGates.test.ts
  test/integration/kubelet/gates.test.ts
  test/integration/kubelet/rollout.test.ts
)
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("${DEFAULT_FILES[@]}")
logs=${HEALTHGATE_VERSIONS_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/healthgate-versions-XXXXXX")}
mkdir -p "$logs"

rows=()
failed=0
for version in "${versions[@]}"; do
  build_log="$logs/$version-build.log"
  start=$(date +%s)
  echo "test-versions: $version: building (log: $build_log)" >&2
  # KUBEBUILDER_ASSETS would win over K8S_VERSION; a reused plane would be of another version.
  if ! env -u KUBEBUILDER_ASSETS -u HEALTHGATE_REUSE_PLANE K8S_VERSION="$version" \
    bash hack/build-k8s.sh >"$build_log" 2>&1; then
    rows+=("$version|-|(build)|FAIL|$(($(date +%s) - start))")
    failed=1
    continue
  fi
  for file in "${files[@]}"; do
    log="$logs/$version-$(basename "$file" .ts).log"
    echo "test-versions: $version: $file (log: $log)" >&2
    start=$(date +%s)
    if env -u KUBEBUILDER_ASSETS -u HEALTHGATE_REUSE_PLANE K8S_VERSION="$version" \
      bash hack/test.sh "$file" >"$log" 2>&1; then
      result=PASS
    else
      result=FAIL
      failed=1
    fi
    served=$(sed -n 's/.*control plane \(v[^ ]*\) at .* up in .*/\1/p' "$log" | head -n1)
    rows+=("$version|${served:-?}|$file|$result|$(($(date +%s) - start))")
  done
done

printf '\n%-9s %-9s %-52s %-6s %s\n' VERSION SERVED FILE RESULT SECONDS
for row in "${rows[@]}"; do
  IFS='|' read -r version served file result seconds <<<"$row"
  printf '%-9s %-9s %-52s %-6s %s\n' "$version" "$served" "$file" "$result" "$seconds"
done
echo "logs: $logs"
exit "$failed"
