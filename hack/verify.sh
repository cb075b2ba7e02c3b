#!/usr/bin/env bash
# Fails when a committed generated file differs from what the generators write
# (run by `npm run verify`, and in CI). Every generator lives in hack/generate.ts:
# --check regenerates all of them into a temporary directory and prints a diff
# for each file that differs. Add new generated files there, not here.
set -euo pipefail
cd "$(dirname "$0")/.."
node=node_modules/.bin/node
[ -x "$node" ] || node=node
"$node" hack/generate.ts --check
