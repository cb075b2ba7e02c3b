#!/usr/bin/env bash
# Installs (or reuses) helm v4 from the Go module proxy, cached by version
# outside the repo, and prints the path of the helm binary.
#
#   HELM_VERSION  a helm v4 release such as v4.3.0, or "latest" (default)
#   HELM          an existing helm binary to use instead (printed as is)
#
# "latest" is resolved with `go list -m` once, then the binary is cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/healthgate/bin/helm-<version>/helm, so a
# second run costs one module lookup (or nothing when HELM_VERSION is pinned).
# Offline (e.g. inside `npm test`'s network namespace) "latest" falls back to
# the newest helm v4 already cached; run this script once beforehand.
set -euo pipefail

if [ -n "${HELM:-}" ]; then
  [ -x "$HELM" ] || { echo "ensure-helm: HELM=$HELM is not executable" >&2; exit 1; }
  echo "$HELM"; exit 0
fi

cache=${HEALTHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthgate}
version=${HELM_VERSION:-latest}

command -v go >/dev/null || { echo "ensure-helm: Go is required to install helm (or set HELM=/path/to/helm)" >&2; exit 1; }

if [ "$version" = latest ]; then
  # Offline or proxy down: fall back to the newest helm already cached.
  if ! version=$(GOWORK=off GOFLAGS=-mod=mod go list -m -f '{{.Version}}' helm.sh/helm/v4@latest 2>/dev/null); then
    newest=$(ls -d "$cache"/bin/helm-v4.* 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$newest" ] && [ -x "$newest/helm" ] && { echo "$newest/helm"; exit 0; }
    echo "ensure-helm: cannot resolve helm.sh/helm/v4@latest and no helm is cached" >&2; exit 1
  fi
fi

dir="$cache/bin/helm-$version"
if [ -x "$dir/helm" ]; then echo "$dir/helm"; exit 0; fi

mkdir -p "$dir"
start=$(date +%s)
echo "ensure-helm: installing helm $version with go install ..." >&2
# Install into a temporary GOBIN and move the binary into place, so an
# interrupted build never leaves a half-written helm in the cache.
tmp=$(mktemp -d "$dir/.install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Stamp the full version (an unstamped build reports only "v4.N").
CGO_ENABLED=0 GOWORK=off GOBIN="$tmp" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
  "helm.sh/helm/v4/cmd/helm@$version" >&2
mv "$tmp/helm" "$dir/helm"
echo "ensure-helm: helm $version installed in $(( $(date +%s) - start ))s" >&2
echo "$dir/helm"
