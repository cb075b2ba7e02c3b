#!/usr/bin/env bash
# Builds (or reuses) hack/luahealth — Argo CD's Lua health-script interpreter setup
# (gopher-lua, Lua 5.1) that the tests of docs/argocd/*.lua run in — and caches it outside
# the repo by a hash of its source. Prints the binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${HEALTHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthgate}
sum=$(cat "$here/luahealth/main.go" "$here/luahealth/go.mod" "$here/luahealth/go.sum" | sha256sum | cut -c1-16)
out="$cache/bin/luahealth-$sum"
if [ ! -x "$out" ]; then
  command -v go >/dev/null || { echo "build-luahealth: Go is required to build hack/luahealth" >&2; exit 1; }
  mkdir -p "$cache/bin"
  (cd "$here/luahealth" && go build -trimpath -o "$out.tmp" . && mv "$out.tmp" "$out")
fi
echo "$out"
