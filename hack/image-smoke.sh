#!/usr/bin/env bash
# Builds the operator image from ./Dockerfile with podman and runs it the way
# the chart does: read-only root filesystem, numeric user 65532, no
# capabilities, no network. Needs no container registry.
#
# The Node 24 base image (NODE_IMAGE) is assembled locally, once, and cached:
#   - a Debian bookworm minbase rootfs from debootstrap, using the Debian
#     mirror this machine's apt is already configured with;
#   - the Node 24 binary of the npm `node` package (node_modules/node/bin/node,
#     installed by `npm ci`);
#   - npm itself, fetched with `npm pack npm@11`;
# then `podman import`ed as localhost/healthgate-node-base:<node version>.
# Set NODE_IMAGE to use an existing Node 24 image instead.
#
# Requirements: root (debootstrap, rootful podman), podman, runc, debootstrap
# (Debian: apt-get install -y podman buildah runc debootstrap). podman runs
# with Debian's runc and explicit ulimits: its default crun fails on hosts with
# hybrid cgroups.
#
# Usage: bash hack/image-smoke.sh         build, then run it three ways (below)
#        IMAGE=healthgate:dev bash hack/image-smoke.sh
# Exits non-zero when any step fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${HEALTHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthgate}/image
image=${IMAGE:-localhost/healthgate:smoke}

for tool in podman runc; do
  command -v "$tool" >/dev/null || { echo "image-smoke: $tool is required (apt-get install -y podman buildah runc debootstrap)" >&2; exit 1; }
done
runtime=(--runtime "$(command -v runc)")
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
log() { echo "image-smoke: $*" >&2; }
seconds() { echo $(( $(date +%s) - $1 )); }

node_bin="$repo/node_modules/node/bin/node"
build_base() {
  local ref=$1 tmp mirror
  [ "$(id -u)" = 0 ] || { log "building the base needs root (debootstrap); or set NODE_IMAGE"; exit 1; }
  command -v debootstrap >/dev/null || { log "debootstrap is required (or set NODE_IMAGE)"; exit 1; }
  [ -x "$node_bin" ] || { log "$node_bin is missing: run npm ci first"; exit 1; }
  # The Debian mirror apt already uses (no mirror is written in this repo).
  mirror=${DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' |
    awk '$2 == "bookworm" && $3 == "main" { print $1; exit }')}
  [ -n "$mirror" ] || { log "no Debian bookworm mirror found in apt's sources; set DEBIAN_MIRROR"; exit 1; }

  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.base.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  local rootfs="$tmp/rootfs" start
  start=$(date +%s)
  log "debootstrap bookworm (minbase) ..."
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -n 20 "$tmp/debootstrap.log" >&2; exit 1; }
  # A base image carries no package lists or caches.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  log "debootstrap done in $(seconds "$start")s"

  install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  if command -v strip >/dev/null; then strip --strip-debug "$rootfs/usr/local/bin/node"; fi
  (cd "$tmp" && npm pack --silent npm@11 >/dev/null 2>&1)
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$tmp"/npm-*.tgz -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

  tar -C "$rootfs" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' - "$ref" >/dev/null
  log "base image $ref built in $(seconds "$start")s"
}

if [ -z "${NODE_IMAGE:-}" ]; then
  [ -x "$node_bin" ] || { log "$node_bin is missing: run npm ci first (or set NODE_IMAGE)"; exit 1; }
  NODE_IMAGE="localhost/healthgate-node-base:$("$node_bin" --version | tr -d v)"
  if podman image exists "$NODE_IMAGE"; then log "reusing base image $NODE_IMAGE"; else build_base "$NODE_IMAGE"; fi
fi
podman "${runtime[@]}" run --rm "${limits[@]}" --network none "$NODE_IMAGE" node --version |
  grep -q '^v24\.' || { log "$NODE_IMAGE does not run Node 24"; exit 1; }

start=$(date +%s)
log "building $image from Dockerfile (NODE_IMAGE=$NODE_IMAGE) ..."
# Host network for the npm ci steps only; the smoke run below has none.
# Behind a TLS-inspecting proxy Node trusts its CA through NODE_EXTRA_CA_CERTS;
# the build gets the same file as a secret (never stored in a layer).
secret=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -s "$NODE_EXTRA_CA_CERTS" ]; then
  secret=(--secret "id=extra-ca-certs,src=$NODE_EXTRA_CA_CERTS")
fi
podman build "${runtime[@]}" "${limits[@]}" --network host --layers "${secret[@]}" \
  --build-arg "NODE_IMAGE=$NODE_IMAGE" -t "$image" -f "$repo/Dockerfile" "$repo" >&2
log "image built in $(seconds "$start")s, $(podman image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"

# Run as the chart runs it: read-only root filesystem, user 65532, no
# capabilities, no privilege escalation, no network.
secure=(--rm --read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges --network none)
hg() { podman "${runtime[@]}" run "${secure[@]}" "${limits[@]}" "$@"; }
note="(read-only rootfs, user 65532, no capabilities, no network)"

echo "\$ healthgate --help   $note"
hg "$image" --help

# healthgate audits its own chart, inside its own image: zero findings, even at info.
helm=$(bash "$here/ensure-helm.sh")
echo "\$ helm template charts/healthgate | healthgate lint --fail-on info -   $note"
"$helm" template healthgate "$repo/charts/healthgate" | hg -i "$image" lint --fail-on info -

# The operator's own code path loads (client-node, pino, prom-client) and
# fails with a clear message when there is no cluster to talk to.
echo "\$ healthgate run   $note, no cluster: must exit non-zero saying why"
if out=$(hg -e POD_NAME=smoke -e POD_NAMESPACE=smoke "$image" run 2>&1); then
  echo "$out"; log "healthgate run exited 0 without a cluster"; exit 1
fi
echo "$out" | grep -m1 -E "^(Error|healthgate run): .*(no Kubernetes configuration found|kubeconfig)" ||
  { echo "$out" | tail -n 20; log "healthgate run failed for an unexpected reason"; exit 1; }

echo "image: $image  user: $(podman image inspect --format '{{.Config.User}}' "$image")" \
  "entrypoint: $(podman image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$image")"
