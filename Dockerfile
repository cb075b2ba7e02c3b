# The healthgate operator image.
#
#   docker build -t healthgate:0.1.0 .
#   podman build --build-arg NODE_IMAGE=<a Node 24 image> -t healthgate:0.1.0 .
#
# NODE_IMAGE is any Debian-based image with Node 24 and npm on PATH (used to
# build and to install production dependencies); RUNTIME_IMAGE is the base of
# the final image and needs only `node`. hack/image-smoke.sh builds this file
# with podman and no container registry, from a base assembled out of Debian
# packages and the npm `node` package.
#
# Behind a TLS-inspecting proxy, hand npm the proxy's CA as a build secret
# (it never lands in a layer):
#   docker build --secret id=extra-ca-certs,src="$NODE_EXTRA_CA_CERTS" .
#
# The image runs as the numeric non-root user 65532 and writes nothing at
# runtime, so it works with a read-only root filesystem (the chart sets
# readOnlyRootFilesystem: true).
ARG NODE_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=${NODE_IMAGE}

# Compile TypeScript to dist/ with the full (dev) dependency set.
FROM ${NODE_IMAGE} AS build
ENV npm_config_update_notifier=false
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: nothing the build needs has an install script, and the
# `node` devDependency would otherwise download a second Node binary.
RUN --mount=type=secret,id=extra-ca-certs \
    if [ -s /run/secrets/extra-ca-certs ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra-ca-certs; fi; \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only, installed apart from the build so that no dev
# package and no npm cache reach the final image.
FROM ${NODE_IMAGE} AS deps
ENV npm_config_update_notifier=false
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=secret,id=extra-ca-certs \
    if [ -s /run/secrets/extra-ca-certs ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra-ca-certs; fi; \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${RUNTIME_IMAGE} AS runtime
ENV NODE_ENV=production
# glibc malloc: two arenas (not 8 per core), blocks of 64 KiB and more served by mmap and
# returned on free, the heap's top trimmed from 64 KiB. The list pages and API bodies parsed at
# start-up otherwise stay resident: with 1,000 Deployments and 10,000 pods, steady RSS 164 -> 138
# MiB and peak 216 -> 152 MiB (bench/memory.ts, bench/README.md "Memory: glibc malloc tunables").
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=65536
WORKDIR /app
# Owned by root and not writable by the runtime user: the code cannot be
# changed by the process that runs it.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
USER 65532:65532
EXPOSE 8080
# --optimize-for-size: V8 keeps its young generation and heap growth small. With 1,000
# Deployments and 10,000 Pods cached, steady RSS falls from about 400 MiB to under 200 MiB for a
# few percent more CPU (bench/memory.ts; figures in bench/README.md). Not allowed in NODE_OPTIONS.
ENTRYPOINT ["node", "--optimize-for-size", "dist/cli/main.js"]
CMD ["run"]
