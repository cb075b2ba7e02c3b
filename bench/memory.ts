// How much memory healthgate needs for a cluster of 1,000 Deployments and 10,000 Pods.
//
//   node_modules/.bin/node bench/memory.ts [--deployments 1000] [--pods-per-deployment 10]
//     [--namespaces 20] [--nodes 50] [--steady-seconds 30] [--variants default,semi2,...]
//     [--data-dir DIR] [--skip-priming] [--first-start] [--repeat 3]
//
// --data-dir keeps etcd's data in DIR (not removed afterwards); a later run with the same DIR
// and sizes skips the creation (about 2 minutes on 2 CPUs).
//
// Starts etcd + kube-apiserver (no controller manager: nothing else touches the objects),
// creates the objects with realistic specs and statuses (pods of ~5 KB as the API server
// serves them, managedFields included), one Audit HealthPolicy per namespace selecting its
// Deployments, then runs `healthgate run` (compiled, as the image runs it) once per variant of
// Node flags, each a fresh process against the same objects:
//   - time from spawn to /readyz (every informer listed and synced),
//   - RSS when /readyz passes, and the peak RSS (VmHWM: the kernel's high-water mark),
//   - steady RSS: median of the last 10 s of `--steady-seconds` after the reconciles settled,
//     while /metrics is read every 10 s (how long one read takes, and its size, is reported),
//   - V8 heap used and committed at the end (nodejs_heap_size_used_bytes, _total_bytes).
// The first run is a priming run with the image's flags (`image`: the Dockerfile's ENTRYPOINT):
// it writes healthgate's conditions onto every Deployment (what a first install does); the
// variants after it find them there and write nothing. With --first-start every run is a first
// start: before each, the bench removes healthgate's conditions from every Deployment (what it
// wrote before), so each run writes all 1,000 again and raises their Events.
//
// Each run also reports when its peak came (seconds after spawn) and the V8 heap then: RSS is
// sampled every 100 ms from /proc, the heap from the bench's one read of /metrics a second.
import { createHash } from "node:crypto";
import os from "node:os";
import v8 from "node:v8";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import { loadKubeConfig, resources, type KubeClient, type KubeObject } from "../src/kube/client.ts";
import { freePort } from "../src/devcluster/net.ts";
import { sumSamples } from "../test/support/promText.ts";
import {
  benchClient,
  buildHealthgate,
  imageEnv,
  imageNodeFlags,
  inParallel,
  installCrd,
  machineLoad,
  percentile,
  procMemory,
  say,
  scrape,
  spawnOperator,
  startBenchPlane,
  table,
  waitReady,
} from "./support.ts";

interface Variant {
  flags?: string[];
  env?: Record<string, string>;
  /** Runs the gate webhook as the chart does by default (webhook.enabled: its own thread and certificates). */
  webhook?: boolean;
}

/** glibc malloc: serve blocks of 64 KiB and more with mmap and trim freed memory sooner. */
const MALLOC_TRIM = { MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "65536" };

// Node sizes V8's heap from the memory it may use, the cgroup limit included: old generation
// ≈ half of it (V8 heap.cc, 64-bit), semi-space ≈ old / 128. Unconstrained on this machine that
// is a 4 GiB old generation; under the chart's 512Mi limit V8 would pick about
// --max-old-space-size=256 --max-semi-space-size=2 by itself, which `pod-512Mi` reproduces.
const IMAGE_FLAGS = await imageNodeFlags();
/** The image's runtime environment: glibc's malloc tunables (the Dockerfile's ENV). */
const IMAGE_ENV = await imageEnv();
const VARIANTS: Record<string, Variant> = {
  /** What the image runs: its Node flags and its environment. */
  image: { flags: IMAGE_FLAGS, env: IMAGE_ENV },
  /** The image's Node flags with glibc's malloc defaults (what the image ran before its ENV). */
  "image-glibc-defaults": { flags: IMAGE_FLAGS },
  /** What the chart runs by default: the image with the gate webhook on (healthgate issues its certificates). */
  chart: { flags: IMAGE_FLAGS, env: IMAGE_ENV, webhook: true },
  /** The chart under its own 512Mi limit (V8's sizing reproduced, as in `image-512Mi`). */
  "chart-512Mi": {
    flags: [...IMAGE_FLAGS, "--max-semi-space-size=2", "--max-old-space-size=256"],
    env: IMAGE_ENV,
    webhook: true,
  },
  /** The image under the chart's 512Mi memory limit: V8 sizes its heap from the cgroup limit. */
  "image-512Mi": {
    flags: [...IMAGE_FLAGS, "--max-semi-space-size=2", "--max-old-space-size=256"],
    env: IMAGE_ENV,
  },
  "image-glibc-defaults+malloc-trim": { flags: IMAGE_FLAGS, env: MALLOC_TRIM },
  "image-glibc-defaults+arena2": { flags: IMAGE_FLAGS, env: { MALLOC_ARENA_MAX: "2" } },
  default: {},
  "pod-512Mi": { flags: ["--max-semi-space-size=2", "--max-old-space-size=256"] },
  "semi2+old128": { flags: ["--max-semi-space-size=2", "--max-old-space-size=128"] },
  "optimize-for-size": { flags: ["--optimize-for-size"] },
  "pod-512Mi+malloc-trim": {
    flags: ["--max-semi-space-size=2", "--max-old-space-size=256"],
    env: MALLOC_TRIM,
  },
  "optimize-for-size+malloc-trim": { flags: ["--optimize-for-size"], env: MALLOC_TRIM },
};

const { values: args } = parseArgs({
  options: {
    deployments: { type: "string", default: "1000" },
    "pods-per-deployment": { type: "string", default: "10" },
    namespaces: { type: "string", default: "20" },
    nodes: { type: "string", default: "50" },
    "steady-seconds": { type: "string", default: "30" },
    repeat: { type: "string", default: "3" },
    concurrency: { type: "string", default: "32" },
    variants: { type: "string", default: Object.keys(VARIANTS).join(",") },
    "data-dir": { type: "string" },
    "skip-priming": { type: "boolean", default: false },
    "first-start": { type: "boolean", default: false },
  },
  strict: true,
});
const DEPLOYMENTS = Number(args.deployments);
const PODS_PER_DEPLOYMENT = Number(args["pods-per-deployment"]);
const NAMESPACES = Number(args.namespaces);
const NODES = Number(args.nodes);
const STEADY_MS = Number(args["steady-seconds"]) * 1000;
const CONCURRENCY = Number(args.concurrency);
const REPEAT = Number(args.repeat);
/** A ConfigMap recording what was created, so that --data-dir can reuse the objects. */
const MARKER = "healthgate-bench-memory";
const variantNames = args.variants.split(",").filter(Boolean);
for (const name of variantNames) {
  if (!VARIANTS[name]) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(", ")}`);
}

// ---- realistic objects ----------------------------------------------------------------------

/** Deterministic hex of `length` digits, different for every seed (image digests, container IDs, hashes). */
const hex = (seed: number, length: number) => {
  let out = "";
  for (let round = 0; out.length < length; round++) {
    out += createHash("sha256").update(`${seed}/${round}`).digest("hex");
  }
  return out.slice(0, length);
};
const zones = ["zone-a", "zone-b", "zone-c"];

function appLabels(app: string, ns: string) {
  return {
    "app.kubernetes.io/name": app,
    "app.kubernetes.io/instance": `${app}-${ns}`,
    "app.kubernetes.io/version": "1.42.3",
    "app.kubernetes.io/component": "backend",
    "app.kubernetes.io/part-of": ns,
    "app.kubernetes.io/managed-by": "Helm",
    team: "payments",
  };
}

function podTemplate(app: string, ns: string, seed: number) {
  const labels = appLabels(app, ns);
  return {
    metadata: {
      labels,
      annotations: {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "checksum/config": hex(seed, 64),
        "kubectl.kubernetes.io/restartedAt": "2026-11-01T08:00:00Z",
      },
    },
    spec: {
      serviceAccountName: app,
      terminationGracePeriodSeconds: 45,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 10001,
        fsGroup: 10001,
        seccompProfile: { type: "RuntimeDefault" },
      },
      containers: [
        {
          name: "app",
          image: `registry.example.com/${ns}/${app}:1.42.3@sha256:${hex(seed + 2, 64)}`,
          args: ["--config=/etc/app/config.yaml", "--log-format=json", "--listen=:8080"],
          ports: [
            { name: "http", containerPort: 8080, protocol: "TCP" },
            { name: "metrics", containerPort: 9090, protocol: "TCP" },
          ],
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
            { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
            { name: "GOMEMLIMIT", valueFrom: { resourceFieldRef: { resource: "limits.memory" } } },
            { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: `${app}-db`, key: "url" } } },
            { name: "REDIS_ADDR", value: `redis-master.${ns}.svc.cluster.local:6379` },
            { name: "OTEL_EXPORTER_OTLP_ENDPOINT", value: "http://otel-collector.observability:4317" },
            { name: "OTEL_SERVICE_NAME", value: app },
            { name: "LOG_LEVEL", value: "info" },
            { name: "FEATURE_FLAGS", value: "checkout-v2,fast-path,batch-writes" },
          ],
          resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "512Mi" } },
          livenessProbe: {
            httpGet: { path: "/healthz", port: "http", scheme: "HTTP" },
            periodSeconds: 10,
            timeoutSeconds: 1,
            failureThreshold: 3,
          },
          readinessProbe: {
            httpGet: { path: "/readyz", port: "http", scheme: "HTTP" },
            periodSeconds: 5,
            timeoutSeconds: 1,
            failureThreshold: 3,
            successThreshold: 2,
          },
          startupProbe: {
            httpGet: { path: "/healthz", port: "http", scheme: "HTTP" },
            periodSeconds: 5,
            failureThreshold: 24,
          },
          lifecycle: { preStop: { sleep: { seconds: 10 } } },
          volumeMounts: [
            { name: "config", mountPath: "/etc/app", readOnly: true },
            { name: "tmp", mountPath: "/tmp" },
          ],
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
          },
        },
        {
          name: "proxy",
          image: `registry.example.com/mesh/proxy:1.31.0@sha256:${hex(seed + 3, 64)}`,
          args: ["proxy", "sidecar", "--concurrency=2", "--log-level=warning"],
          ports: [{ name: "proxy-admin", containerPort: 15000, protocol: "TCP" }],
          resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
          readinessProbe: {
            httpGet: { path: "/ready", port: 15021 },
            periodSeconds: 2,
            failureThreshold: 30,
          },
        },
      ],
      volumes: [
        { name: "config", configMap: { name: `${app}-config` } },
        { name: "tmp", emptyDir: { sizeLimit: "64Mi" } },
      ],
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: "topology.kubernetes.io/zone",
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels: { "app.kubernetes.io/name": app } },
        },
      ],
    },
  };
}

const at = (minutes: number) => new Date(Date.UTC(2026, 10, 1, 8, minutes)).toISOString().replace(".000", "");

function podStatus(seed: number, node: number) {
  const ip = `10.${(seed >> 16) & 255}.${(seed >> 8) & 255}.${seed & 255}`;
  const started = at(seed % 60);
  const running = (name: string, image: string, restartCount: number) => ({
    name,
    ready: true,
    started: true,
    restartCount,
    image,
    imageID: `${image.split("@")[0]}@sha256:${hex(seed + name.length, 64)}`,
    containerID: `containerd://${hex(seed + 7 * name.length, 64)}`,
    state: { running: { startedAt: started } },
    ...(restartCount > 0
      ? {
          lastState: {
            terminated: { exitCode: 137, reason: "OOMKilled", startedAt: at(0), finishedAt: at(1) },
          },
        }
      : {}),
  });
  return {
    phase: "Running",
    qosClass: "Burstable",
    hostIP: `192.168.${node >> 8}.${node & 255}`,
    hostIPs: [{ ip: `192.168.${node >> 8}.${node & 255}` }],
    podIP: ip,
    podIPs: [{ ip }],
    startTime: started,
    conditions: ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"].map(
      (type) => ({ type, status: "True", lastProbeTime: null, lastTransitionTime: started }),
    ),
    containerStatuses: [
      running("app", "registry.example.com/app:1.42.3", seed % 7 === 0 ? 1 : 0),
      running("proxy", "registry.example.com/mesh/proxy:1.31.0", 0),
    ],
  };
}

// ---- creating them --------------------------------------------------------------------------

interface Created {
  namespaces: number;
  nodes: number;
  deployments: number;
  replicaSets: number;
  pods: number;
  policies: number;
  podBytes: number;
  /** Without metadata.managedFields. */
  podSpecStatusBytes: number;
  seconds: number;
}

async function createObjects(client: KubeClient, kubeconfig: string): Promise<Created> {
  const began = performance.now();
  const core = loadKubeConfig(kubeconfig).makeApiClient(CoreV1Api);
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `shop-${i}`);
  for (const name of namespaces) await core.createNamespace({ body: { metadata: { name } } });

  await inParallel(
    Array.from({ length: NODES }, (_, i) => i),
    CONCURRENCY,
    (i) =>
      client.create({
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: `node-${i}`,
          labels: {
            "kubernetes.io/hostname": `node-${i}`,
            "topology.kubernetes.io/zone": zones[i % zones.length]!,
            "node.kubernetes.io/instance-type": "m6i.2xlarge",
          },
        },
      } as KubeObject),
  );

  for (const ns of namespaces) {
    await client.create({
      apiVersion: "healthgate.io/v1alpha1",
      kind: "HealthPolicy",
      metadata: { name: "backend", namespace: ns },
      spec: {
        selector: { matchLabels: { "app.kubernetes.io/part-of": ns } },
        mode: "Audit",
        endpoints: { port: "http", liveness: { path: "/healthz" }, readiness: { path: "/readyz" } },
      },
    } as KubeObject);
  }

  say(`creating ${DEPLOYMENTS} Deployments and ReplicaSets (${CONCURRENCY} requests in flight)`);
  const deployments = Array.from({ length: DEPLOYMENTS }, (_, i) => ({
    ns: namespaces[i % namespaces.length]!,
    app: `svc-${i}`,
    seed: i * 7919,
  }));
  const replicaSetUids: string[] = [];
  await inParallel(deployments, CONCURRENCY, async ({ ns, app, seed }, i) => {
    const template = podTemplate(app, ns, seed);
    const selector = { matchLabels: { "app.kubernetes.io/name": app } };
    const deployment = await client.create({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: {
        name: app,
        namespace: ns,
        labels: appLabels(app, ns),
        annotations: { "deployment.kubernetes.io/revision": "3" },
      },
      spec: {
        replicas: PODS_PER_DEPLOYMENT,
        selector,
        strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: 0 } },
        template,
      },
    } as KubeObject);
    const conditions = [
      {
        type: "Available",
        status: "True",
        reason: "MinimumReplicasAvailable",
        message: "Deployment has minimum availability.",
      },
      {
        type: "Progressing",
        status: "True",
        reason: "NewReplicaSetAvailable",
        message: `ReplicaSet "${app}-${hex(seed, 10)}" has successfully progressed.`,
      },
    ].map((c) => ({ ...c, lastUpdateTime: at(5), lastTransitionTime: at(5) }));
    const n = PODS_PER_DEPLOYMENT;
    await client.mergePatchStatus(
      { apiVersion: "apps/v1", kind: "Deployment", namespace: ns, name: app },
      {
        observedGeneration: 1,
        replicas: n,
        updatedReplicas: n,
        readyReplicas: n,
        availableReplicas: n,
        conditions,
      },
    );
    const hash = hex(seed, 10);
    const rs = await client.create({
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      metadata: {
        name: `${app}-${hash}`,
        namespace: ns,
        labels: { ...template.metadata.labels, "pod-template-hash": hash },
        annotations: {
          "deployment.kubernetes.io/desired-replicas": String(n),
          "deployment.kubernetes.io/max-replicas": String(n + Math.ceil(n / 4)),
          "deployment.kubernetes.io/revision": "3",
        },
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            name: app,
            uid: deployment.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        replicas: n,
        selector: { matchLabels: { ...selector.matchLabels, "pod-template-hash": hash } },
        template: {
          ...template,
          metadata: {
            ...template.metadata,
            labels: { ...template.metadata.labels, "pod-template-hash": hash },
          },
        },
      },
    } as KubeObject);
    await client.mergePatchStatus(
      { apiVersion: "apps/v1", kind: "ReplicaSet", namespace: ns, name: rs.metadata.name },
      {
        observedGeneration: 1,
        replicas: n,
        fullyLabeledReplicas: n,
        readyReplicas: n,
        availableReplicas: n,
      },
    );
    replicaSetUids[i] = rs.metadata.uid!;
  });

  const pods = deployments.flatMap((d, i) =>
    Array.from({ length: PODS_PER_DEPLOYMENT }, (_, k) => ({
      ...d,
      rsUid: replicaSetUids[i]!,
      hash: hex(d.seed, 10),
      podSeed: d.seed * 31 + k,
    })),
  );
  say(`creating ${pods.length} Pods and their statuses (${CONCURRENCY} requests in flight)`);
  let done = 0;
  await inParallel(pods, CONCURRENCY, async ({ ns, app, seed, hash, rsUid, podSeed }) => {
    const template = podTemplate(app, ns, seed);
    const name = `${app}-${hash}-${hex(podSeed, 5)}`;
    const node = podSeed % NODES;
    await client.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: ns,
        labels: { ...template.metadata.labels, "pod-template-hash": hash },
        annotations: template.metadata.annotations,
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: "ReplicaSet",
            name: `${app}-${hash}`,
            uid: rsUid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: { ...template.spec, nodeName: `node-${node}` },
    } as KubeObject);
    await client.mergePatchStatus(
      { apiVersion: "v1", kind: "Pod", namespace: ns, name },
      podStatus(podSeed, node),
    );
    if (++done % 2000 === 0) say(`  ${done} pods`);
  });

  // What a pod weighs as the API server serves it (a list of one namespace, JSON).
  const sample = await client.list(
    { group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true },
    namespaces[0],
    { limit: 50 },
  );
  const podBytes = JSON.stringify(sample.items).length / sample.items.length;
  const podSpecStatusBytes =
    JSON.stringify(
      sample.items.map(({ metadata: { managedFields: _m, ...metadata }, ...rest }) => ({
        ...rest,
        metadata,
      })),
    ).length / sample.items.length;
  const created: Created = {
    namespaces: NAMESPACES,
    nodes: NODES,
    deployments: DEPLOYMENTS,
    replicaSets: DEPLOYMENTS,
    pods: pods.length,
    policies: NAMESPACES,
    podBytes,
    podSpecStatusBytes,
    seconds: (performance.now() - began) / 1000,
  };
  await core.createNamespacedConfigMap({
    namespace: "default",
    body: { metadata: { name: MARKER }, data: { created: JSON.stringify(created) } },
  });
  return created;
}

/** With --data-dir, a previous run's objects (same sizes) are reused rather than created again. */
async function recordedObjects(kubeconfig: string): Promise<Created | undefined> {
  const core = loadKubeConfig(kubeconfig).makeApiClient(CoreV1Api);
  try {
    const marker = await core.readNamespacedConfigMap({ namespace: "default", name: MARKER });
    const created = JSON.parse(marker.data?.created ?? "{}") as Created;
    if (
      created.deployments !== DEPLOYMENTS ||
      created.pods !== DEPLOYMENTS * PODS_PER_DEPLOYMENT ||
      created.namespaces !== NAMESPACES ||
      created.nodes !== NODES
    ) {
      throw new Error(
        `${args["data-dir"]} holds objects of other sizes (${JSON.stringify(created)}); use another --data-dir`,
      );
    }
    say(`reusing the objects in ${args["data-dir"]}`);
    return created;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

// ---- running healthgate ---------------------------------------------------------------------

interface RunFigures {
  variant: string;
  flags: string;
  readySeconds: number;
  /** RSS when /readyz first passed: every informer has listed. */
  readyRssMiB: number;
  hwmMiB: number;
  /** When RSS was highest, and how it was made up then. */
  peakAt: PeakFigures;
  /** One read of /metrics in the steady window: median duration, and size. */
  scrapeMs: number;
  scrapeKiB: number;
  settledSeconds: number;
  steadyRssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  reconciles: number;
  writes: number;
}

const WRITE_VERBS = ["apply", "create", "update", "patch", "delete"];
/** Where the `chart` variants' webhook keeps its certificate Secret, as the chart's release namespace. */
const WEBHOOK_NAMESPACE = "healthgate-system";

/** The release namespace and the empty Secret the chart creates for healthgate to fill. */
async function ensureWebhookNamespace(kubeconfig: string, name: string): Promise<void> {
  const core = loadKubeConfig(kubeconfig).makeApiClient(CoreV1Api);
  const exists = (err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  };
  await core.createNamespace({ body: { metadata: { name } } }).catch(exists);
  await core
    .createNamespacedSecret({ namespace: name, body: { metadata: { name: "healthgate-webhook-tls" } } })
    .catch(exists);
}

async function runVariant(
  main: string,
  kubeconfig: string,
  variant: string,
  { flags = [], env = {}, webhook = false }: Variant,
): Promise<RunFigures> {
  const extraArgs = webhook
    ? [
        `--webhook-port=${await freePort("127.0.0.1")}`,
        `--webhook-namespace=${WEBHOOK_NAMESPACE}`,
        "--webhook-service=healthgate-webhook",
        "--webhook-secret=healthgate-webhook-tls",
        "--webhook-certificates=self",
      ]
    : [];
  if (webhook) await ensureWebhookNamespace(kubeconfig, WEBHOOK_NAMESPACE);
  const op = await spawnOperator({ main, kubeconfig, nodeFlags: flags, env, extraArgs });
  const peak = followPeak(op.pid, op.startedAt);
  try {
    const readyMs = await waitReady(op);
    say(`  ready in ${(readyMs / 1000).toFixed(1)} s (${machineLoad()})`);
    const atReady = (await procMemory(op.pid))!;
    // Settled: no reconcile for 3 s and an empty queue. One read of /metrics a second: with
    // 1,000 Deployments each read renders about 10,000 series, and reading it 8 times a second
    // (as this loop did) made most of the garbage of the first start it measured.
    let last = -1;
    let quietSince = performance.now();
    for (;;) {
      const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
      peak.heap(text);
      const reconciles = sumSamples(text, "healthgate_reconcile_total", {});
      const depth = sumSamples(text, "healthgate_workqueue_depth", {});
      if (reconciles !== last || depth > 0) {
        last = reconciles;
        quietSince = performance.now();
      } else if (reconciles > 0 && performance.now() - quietSince > 3_000) break;
      await delay(1_000);
    }
    const settledMs = performance.now() - op.startedAt;
    // Steady: RSS every second, and /metrics read every 10 s as a Prometheus would scrape it
    // (kube-prometheus scrapes every 30 s); the read's duration and size are reported.
    const rss: number[] = [];
    const scrapes: { ms: number; bytes: number }[] = [];
    const steadyEnd = performance.now() + STEADY_MS;
    for (let i = 0; performance.now() < steadyEnd; i++) {
      if (i % 10 === 0) {
        const started = performance.now();
        const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
        scrapes.push({ ms: performance.now() - started, bytes: Buffer.byteLength(text) });
      }
      const m = await procMemory(op.pid);
      if (m) rss.push(m.rssMiB);
      await delay(1_000);
    }
    const mem = (await procMemory(op.pid))!;
    const peakFigures = await peak.stop();
    let writes = 0;
    for (const verb of WRITE_VERBS)
      writes += await scrape(op.port, "healthgate_api_requests_total", { verb });
    return {
      variant,
      flags:
        [
          ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
          ...flags,
          ...(webhook ? ["+ gate webhook"] : []),
        ].join(" ") || "(none)",
      readySeconds: readyMs / 1000,
      readyRssMiB: atReady.rssMiB,
      hwmMiB: mem.hwmMiB,
      peakAt: peakFigures,
      scrapeMs: percentile(
        scrapes.map((x) => x.ms),
        50,
      ),
      scrapeKiB: (scrapes[0]?.bytes ?? NaN) / 1024,
      settledSeconds: settledMs / 1000,
      steadyRssMiB: percentile(rss.slice(-10), 50),
      heapUsedMiB: (await scrape(op.port, "nodejs_heap_size_used_bytes")) / 2 ** 20,
      heapTotalMiB: (await scrape(op.port, "nodejs_heap_size_total_bytes")) / 2 ** 20,
      reconciles: await scrape(op.port, "healthgate_reconcile_total"),
      writes,
    };
  } finally {
    await peak.stop();
    await op.stop();
  }
}

/**
 * Follows a process's RSS every 100 ms (from /proc: nothing asked of the process): when the
 * highest RSS came (ms after `startedAt`), and the V8 heap at the /metrics read nearest it
 * (`heap`, from the reads the settle loop makes anyway).
 */
function followPeak(pid: number, startedAt: number) {
  let maxRss = 0;
  let atMs = 0;
  let anonMiB = 0;
  const heap: { ms: number; usedMiB: number; totalMiB: number; externalMiB: number }[] = [];
  let stopped = false;
  const rssLoop = (async () => {
    while (!stopped) {
      const m = await procMemory(pid);
      if (m && m.rssMiB > maxRss) {
        maxRss = m.rssMiB;
        anonMiB = m.anonMiB;
        atMs = performance.now() - startedAt;
      }
      await delay(100);
    }
  })();
  let result: Promise<PeakFigures> | undefined;
  return {
    heap(metricsText: string): void {
      const mib = (name: string) => sumSamples(metricsText, name, {}) / 2 ** 20;
      heap.push({
        ms: performance.now() - startedAt,
        usedMiB: mib("nodejs_heap_size_used_bytes"),
        totalMiB: mib("nodejs_heap_size_total_bytes"),
        externalMiB: mib("nodejs_external_memory_bytes"),
      });
    },
    stop(): Promise<PeakFigures> {
      stopped = true;
      result ??= rssLoop.then(() => {
        const nearest = heap.reduce<(typeof heap)[number] | undefined>(
          (best, h) => (!best || Math.abs(h.ms - atMs) < Math.abs(best.ms - atMs) ? h : best),
          undefined,
        );
        return {
          atMs,
          anonMiB,
          heapUsedMiB: nearest?.usedMiB ?? NaN,
          heapTotalMiB: nearest?.totalMiB ?? NaN,
          externalMiB: nearest?.externalMiB ?? NaN,
        };
      });
      return result;
    },
  };
}

interface PeakFigures {
  /** When RSS was highest, ms after spawn, and its anonymous part (RssAnon) then. */
  atMs: number;
  anonMiB: number;
  /** V8's heap used and committed, and external memory (ArrayBuffers, Buffers), at the heap sample nearest the peak. */
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

/**
 * Removes healthgate's conditions (type `healthgate.io/…`) from every Deployment, so the next
 * run is a first start: it writes every condition again and raises their Events.
 */
async function forgetConditions(client: KubeClient): Promise<number> {
  const stale: KubeObject[] = [];
  let _continue: string | undefined;
  do {
    const page = await client.list(resources.deployments, undefined, { limit: 500, continue: _continue });
    for (const d of page.items) {
      const conditions = (d as { status?: { conditions?: { type: string }[] } }).status?.conditions ?? [];
      if (conditions.some((c) => c.type.startsWith("healthgate.io/"))) stale.push(d);
    }
    _continue = page.metadata?.continue || undefined;
  } while (_continue);
  await inParallel(stale, CONCURRENCY, async (d) => {
    const conditions = (d as { status?: { conditions?: { type: string }[] } }).status!.conditions!;
    await client.jsonPatch(
      resources.deployments,
      { namespace: d.metadata.namespace, name: d.metadata.name!, subresource: "status" },
      [
        { op: "test", path: "/metadata/resourceVersion", value: d.metadata.resourceVersion },
        {
          op: "replace",
          path: "/status/conditions",
          value: conditions.filter((c) => !c.type.startsWith("healthgate.io/")),
        },
      ],
    );
  });
  return stale.length;
}

// ---- main -----------------------------------------------------------------------------------

const plane = await startBenchPlane(args["data-dir"]);
const build = await buildHealthgate();
try {
  await installCrd(plane);
  const created =
    (await recordedObjects(plane.kubeconfigPath)) ??
    (await createObjects(benchClient(plane), plane.kubeconfigPath));
  say(`created in ${created.seconds.toFixed(1)} s`);
  const runs: RunFigures[][] = [];
  if (!args["skip-priming"]) {
    say("priming run (the image's flags): writes healthgate's conditions on every Deployment");
    runs.push([await runVariant(build.main, plane.kubeconfigPath, "first start (image)", VARIANTS.image!)]);
  }
  for (const name of variantNames) {
    const repeats: RunFigures[] = [];
    for (let i = 0; i < REPEAT; i++) {
      if (args["first-start"]) {
        say(
          `  removed healthgate's conditions from ${await forgetConditions(benchClient(plane))} Deployments (--first-start)`,
        );
      }
      say(`variant ${name} (${i + 1}/${REPEAT})`);
      repeats.push(await runVariant(build.main, plane.kubeconfigPath, name, VARIANTS[name]!));
    }
    runs.push(repeats);
  }
  const f1 = (n: number) => n.toFixed(1);
  const f0 = (n: number) => n.toFixed(0);
  const median = (rs: RunFigures[], pick: (r: RunFigures) => number) => percentile(rs.map(pick), 50);
  const max = (rs: RunFigures[], pick: (r: RunFigures) => number) => Math.max(...rs.map(pick));
  const min = (rs: RunFigures[], pick: (r: RunFigures) => number) => Math.min(...rs.map(pick));
  const spread = (rs: RunFigures[], pick: (r: RunFigures) => number) =>
    rs.length === 1
      ? f0(pick(rs[0]!))
      : `${f0(median(rs, pick))} (${f0(min(rs, pick))}-${f0(max(rs, pick))})`;
  console.log(
    `\nhealthgate memory — ${created.namespaces} namespaces, ${created.nodes} Nodes, ${created.deployments} Deployments, ` +
      `${created.replicaSets} ReplicaSets, ${created.pods} Pods (~${(created.podBytes / 1024).toFixed(1)} KB each as served, ` +
      `${(created.podSpecStatusBytes / 1024).toFixed(1)} KB without managedFields), ` +
      `${created.policies} HealthPolicies; Kubernetes ${plane.version}, Node ${process.version}, ${os.cpus().length} CPUs, ` +
      `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB (V8's default heap limit follows it: ${f0(v8.getHeapStatistics().heap_size_limit / 2 ** 20)} MiB here).\n` +
      `Each variant ran ${REPEAT} time(s): median (min-max). Steady = median RSS over the last 10 s of ` +
      `${STEADY_MS / 1000} s after the reconciles settled. Finished at ${machineLoad()}.\n`,
  );
  console.log(
    table(
      [
        "variant",
        "environment / node flags",
        "ready s",
        "settled s",
        "RSS at ready MiB",
        "peak RSS (VmHWM) MiB",
        "peak at s: anon / heap used, committed / external MiB",
        "steady RSS MiB",
        "V8 heap used/total MiB",
        "/metrics ms (KiB)",
        "reconciles",
        "writes",
      ],
      runs.map((rs) => [
        rs[0]!.variant,
        rs[0]!.flags,
        f1(median(rs, (r) => r.readySeconds)),
        f1(median(rs, (r) => r.settledSeconds)),
        spread(rs, (r) => r.readyRssMiB),
        spread(rs, (r) => r.hwmMiB),
        rs
          .map(
            ({ peakAt: p }) =>
              `${f1(p.atMs / 1000)}: ${f0(p.anonMiB)} / ${f0(p.heapUsedMiB)}, ${f0(p.heapTotalMiB)} / ${f0(p.externalMiB)}`,
          )
          .join("; "),
        spread(rs, (r) => r.steadyRssMiB),
        `${f0(median(rs, (r) => r.heapUsedMiB))}/${f0(median(rs, (r) => r.heapTotalMiB))}`,
        `${f0(median(rs, (r) => r.scrapeMs))} (${f0(median(rs, (r) => r.scrapeKiB))})`,
        f0(median(rs, (r) => r.reconciles)),
        f0(median(rs, (r) => r.writes)),
      ]),
    ),
  );
} finally {
  await build.remove();
  await plane.stop();
}
