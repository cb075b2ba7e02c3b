#!/usr/bin/env bash
# Builds (or reuses) etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl at K8S_VERSION from the Go module proxy through the
# wrapper module hack/k8sbin, version-stamped, and caches them by version
# outside the repo; likewise healthgate-node (hack/k8sbin/cmd/healthgate-node:
# the real kubelet on a fake container runtime, the test clusters' nodes), which
# is rebuilt whenever its source or the module's go.sum changes.
# Prints the directory that holds the binaries.
#
# K8S_VERSION defaults to the version hack/k8sbin/go.mod pins, built through
# that committed module. Any other version (e.g. K8S_VERSION=v1.36.5) is built
# through its own module: a copy of hack/k8sbin's sources in the version's cache
# directory, with go.mod and go.sum generated there by gen-gomod.sh (network
# needed once). healthgate-node is built with the tag k8s1.<minor>, for the few
# files that differ between minors (see cmd/healthgate-node).
#
# When KUBEBUILDER_ASSETS holds etcd and kube-apiserver (controller-runtime
# convention) it prints that directory; kube-scheduler and healthgate-node are
# then still built into the cache unless the assets hold them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pinned() { sed -n 's/^\s*k8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$1/go.mod" 2>/dev/null | head -n1; }
version=${K8S_VERSION:-$(pinned "$here/k8sbin")}
[[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "build-k8s: K8S_VERSION=$version is not v1.MINOR.PATCH" >&2; exit 1; }
minor=${version#v1.}; minor=${minor%%.*}
cache=${HEALTHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthgate}
out="$cache/k8s/$version"
# The wrapper module that builds $version: the committed one, or a per-version
# copy of its sources (refreshed on every call; go.mod generated when missing).
mod=$here/k8sbin
if [ "$version" != "$(pinned "$mod")" ]; then
  mod=$out/k8sbin
  mkdir -p "$mod"
  rm -rf "$mod/cmd"
  cp -R "$here/k8sbin/cmd" "$here/k8sbin/tools.go" "$mod/"
fi
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl healthgate-node)
print=$out
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  print=$KUBEBUILDER_ASSETS
  bins=()
  for b in kube-scheduler healthgate-node; do [ -x "$KUBEBUILDER_ASSETS/$b" ] || bins+=("$b"); done
fi

# healthgate-node is our own code: its cached copy is valid for one source.
node_sum() { cat "$here/k8sbin/cmd/healthgate-node/"*.go "$mod/go.sum" 2>/dev/null | sha256sum | cut -c1-16; }
node_sum=$(node_sum)
missing=()
for b in "${bins[@]}"; do
  if [ "$b" = healthgate-node ] && [ "$(cat "$out/$b.sum" 2>/dev/null)" != "$node_sum" ]; then missing+=("$b"); continue; fi
  [ -x "$out/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then echo "$print"; exit 0; fi

command -v go >/dev/null || { echo "build-k8s: Go is required to build the control plane (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
mkdir -p "$out"
if [ "$(pinned "$mod")" != "$version" ] || [ ! -s "$mod/go.sum" ]; then
  echo "build-k8s: generating the wrapper module for $version in $mod ..." >&2
  bash "$here/k8sbin/gen-gomod.sh" "$version" "$mod" >&2
  node_sum=$(node_sum)
fi
cd "$mod"
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
  tags=()
  [ "$b" != healthgate-node ] || tags=(-tags "k8s1.$minor")
  CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath -pgo=off "${tags[@]}" -ldflags "$ld" -o "$out/$b.tmp" "${main[$b]}" >&2
  mv "$out/$b.tmp" "$out/$b"
  [ "$b" != healthgate-node ] || echo "$node_sum" >"$out/$b.sum"
  echo "build-k8s: $b built in $(( $(date +%s) - start ))s" >&2
done
echo "$print"
