#!/usr/bin/env bash
# Builds (or reuses) etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl at K8S_VERSION from the Go module proxy through the
# committed wrapper module hack/k8sbin, version-stamped, and caches them by
# version outside the repo; likewise healthgate-node (hack/k8sbin/cmd/healthgate-node:
# the real kubelet on a fake container runtime, the test clusters' nodes), which
# is rebuilt whenever its source or the module's go.sum changes.
# Prints the directory that holds the binaries.
#
# When KUBEBUILDER_ASSETS holds etcd and kube-apiserver (controller-runtime
# convention) it prints that directory; kube-scheduler and healthgate-node are
# then still built into the cache unless the assets hold them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${K8S_VERSION:-$(sed -n 's/^\s*k8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$here/k8sbin/go.mod" | head -n1)}
minor=${version#v1.}; minor=${minor%%.*}
cache=${HEALTHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthgate}
out="$cache/k8s/$version"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl healthgate-node)
print=$out
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  print=$KUBEBUILDER_ASSETS
  bins=()
  for b in kube-scheduler healthgate-node; do [ -x "$KUBEBUILDER_ASSETS/$b" ] || bins+=("$b"); done
fi

# healthgate-node is our own code: its cached copy is valid for one source.
node_sum=$(cat "$here/k8sbin/cmd/healthgate-node/"*.go "$here/k8sbin/go.sum" | sha256sum | cut -c1-16)
missing=()
for b in "${bins[@]}"; do
  if [ "$b" = healthgate-node ] && [ "$(cat "$out/$b.sum" 2>/dev/null)" != "$node_sum" ]; then missing+=("$b"); continue; fi
  [ -x "$out/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then echo "$print"; exit 0; fi

command -v go >/dev/null || { echo "build-k8s: Go is required to build the control plane (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
mkdir -p "$out"
cd "$here/k8sbin"
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
declare -A main=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [healthgate-node]=./cmd/healthgate-node
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
)
for b in "${missing[@]}"; do
  start=$(date +%s)
  echo "build-k8s: building $b $version ..." >&2
  CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath -pgo=off -ldflags "$ld" -o "$out/$b.tmp" "${main[$b]}" >&2
  mv "$out/$b.tmp" "$out/$b"
  [ "$b" != healthgate-node ] || echo "$node_sum" >"$out/$b.sum"
  echo "build-k8s: $b built in $(( $(date +%s) - start ))s" >&2
done
echo "$print"
