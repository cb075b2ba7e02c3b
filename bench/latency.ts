// How fast healthgate reacts: from a Deployment change to healthgate's write, against the bare
// round-trip of one patch, measured in the same run.
//
//   node_modules/.bin/node bench/latency.ts [--deployments 50] [--samples 300] [--warmup 20]
//     [--pause-ms 100] [--cpu-prof DIR] [--node-flags image|none|"--flag ..."]
//
// Starts etcd + kube-apiserver (no controller manager), one Audit HealthPolicy declaring
// /health/deep a deep path and selecting `--deployments` Deployments, and `healthgate run`
// (compiled, as the image runs it) as a child process. Each sample, one at a time, flips one
// Deployment's liveness path between /healthz and /health/deep with a JSON patch, which flips
// healthgate's `healthgate.io/LivenessShallow` condition (True/Shallow ↔ False/LivenessDeep).
// A watch on the Deployments, in this process, timestamps every event. Per sample:
//   patch round-trip    patch sent → response (the bare round-trip of one write)
//   watch sees patch    patch sent → our watch delivers the patched object (the baseline
//                       measured the way healthgate's write is measured)
//   reaction            patch response → our watch delivers the object with the flipped
//                       condition (healthgate: its watch, queue, reconcile, its status apply,
//                       and our watch again)
// plus a bare round-trip of a server-side apply of a Deployment's status (the kind of write
// healthgate makes), and healthgate's own reconcile and queue figures from its /metrics.
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import type { Deployment } from "../src/api/k8s.ts";
import { loadKubeConfig, resources, type KubeObject, type RawObject } from "../src/kube/client.ts";
import {
  benchClient,
  buildHealthgate,
  imageEnv,
  imageNodeFlags,
  inParallel,
  installCrd,
  latencyPolicy,
  machineLoad,
  percentile,
  say,
  scrape,
  spawnOperator,
  startBenchPlane,
  table,
  waitReady,
} from "./support.ts";

const { values: args } = parseArgs({
  options: {
    deployments: { type: "string", default: "50" },
    samples: { type: "string", default: "300" },
    warmup: { type: "string", default: "20" },
    "pause-ms": { type: "string", default: "100" },
    /** healthgate's Node flags: `image` (the Dockerfile's ENTRYPOINT, default), `none`, or the flags. */
    "node-flags": { type: "string", default: "image" },
    /** Write a CPU profile of healthgate (node --cpu-prof) into this directory. */
    "cpu-prof": { type: "string" },
  },
  strict: true,
});
const DEPLOYMENTS = Number(args.deployments);
const SAMPLES = Number(args.samples);
const WARMUP = Number(args.warmup);
const PAUSE_MS = Number(args["pause-ms"]);
const NS = "bench";
const nodeFlags =
  args["node-flags"] === "image"
    ? await imageNodeFlags()
    : args["node-flags"] === "none"
      ? []
      : args["node-flags"].split(/\s+/).filter(Boolean);
const SHALLOW = "/healthz";
const DEEP = "/health/deep";
const CONDITION = "healthgate.io/LivenessShallow";

function deployment(name: string, labels: Record<string, string>): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS, labels },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: "app",
              image: "registry.example.com/app:1",
              ports: [{ name: "http", containerPort: 8080 }],
              livenessProbe: {
                httpGet: { path: SHALLOW, port: "http" },
                periodSeconds: 10,
                failureThreshold: 3,
              },
              readinessProbe: {
                httpGet: { path: "/readyz", port: "http" },
                periodSeconds: 5,
                failureThreshold: 3,
                successThreshold: 2,
              },
            },
          ],
        },
      },
    },
  } as KubeObject;
}

// ---- a watch that timestamps every event ------------------------------------------------------

interface Seen {
  rv: bigint;
  at: number;
  condition: string | undefined;
}

const seen = new Map<string, Seen[]>();
const waiters = new Set<() => void>();

function record(obj: RawObject): void {
  const d = obj as unknown as Deployment;
  const list = seen.get(d.metadata.name) ?? [];
  list.push({
    rv: BigInt(d.metadata.resourceVersion ?? "0"),
    at: performance.now(),
    condition: d.status?.conditions?.find((c) => c.type === CONDITION)?.status,
  });
  seen.set(d.metadata.name, list);
  for (const wake of waiters) wake();
}

/** The time our watch first delivered an object of `name` matching `match`. */
function seenWhen(name: string, match: (s: Seen) => boolean, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const hit = (seen.get(name) ?? []).find(match);
      if (!hit) return;
      waiters.delete(check);
      clearTimeout(timer);
      resolve(hit.at);
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`no matching event for Deployment ${name} within ${timeoutMs} ms`));
    }, timeoutMs);
    waiters.add(check);
    check();
  });
}

// ---- main -----------------------------------------------------------------------------------

const plane = await startBenchPlane();
const build = await buildHealthgate();
const watchStop = new AbortController();
let operator: Awaited<ReturnType<typeof spawnOperator>> | undefined;
try {
  await installCrd(plane);
  const client = benchClient(plane);
  await loadKubeConfig(plane.kubeconfigPath)
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: NS } } });
  await client.create(latencyPolicy(NS, "bench", { bench: "latency" }));
  const names = Array.from({ length: DEPLOYMENTS }, (_, i) => `app-${i}`);
  await inParallel(names, 16, (name) => client.create(deployment(name, { bench: "latency" })));
  // Not selected by the policy: the target of the bare status-apply round-trips.
  await client.create(deployment("unselected", {}));

  const listed = await client.list(resources.deployments, NS, {});
  void client
    .watch(
      resources.deployments,
      NS,
      { resourceVersion: listed.metadata.resourceVersion, timeoutSeconds: 3600 },
      (event) => {
        if (event.type !== "BOOKMARK") record(event.object);
      },
      watchStop.signal,
    )
    .catch((err: unknown) => {
      if (!watchStop.signal.aborted) say(`watch ended: ${String(err)}`);
    });
  for (const item of listed.items) record(item);

  operator = await spawnOperator({
    main: build.main,
    kubeconfig: plane.kubeconfigPath,
    namespaces: [NS],
    ...(args["node-flags"] === "image" ? { env: await imageEnv() } : {}),
    nodeFlags: [
      ...nodeFlags,
      ...(args["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`] : []),
    ],
  });
  const readyMs = await waitReady(operator);
  say(`healthgate ready in ${(readyMs / 1000).toFixed(1)} s; waiting for its first conditions`);
  await Promise.all(names.map((name) => seenWhen(name, (s) => s.condition === "True", 60_000)));
  await delay(2_000);

  // Bare round-trip of a status apply, the kind of write healthgate makes.
  const statusApply: number[] = [];
  for (let i = 0; i < Math.min(SAMPLES, 200); i++) {
    const t0 = performance.now();
    await client.applyObject(
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "unselected", namespace: NS },
        status: {
          conditions: [
            {
              type: "bench.example/Probe",
              status: i % 2 === 0 ? "True" : "False",
              reason: "Bench",
              message: `sample ${i}`,
              lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
            },
          ],
        },
      } as KubeObject,
      { fieldManager: "bench", force: true, subresource: "status" },
    );
    statusApply.push(performance.now() - t0);
  }
  await delay(1_000);

  const loadBefore = machineLoad();
  const before = {
    reconciles: await scrape(operator.port, "healthgate_reconcile_total"),
    reconcileSeconds: await scrape(operator.port, "healthgate_reconcile_duration_seconds_sum"),
    adds: await scrape(operator.port, "healthgate_workqueue_adds_total"),
  };
  const rtt: number[] = [];
  const watchSeesPatch: number[] = [];
  const reaction: number[] = [];
  const total: number[] = [];
  const deepNow = new Set<string>();
  say(`sampling: ${WARMUP} warm-up + ${SAMPLES} flips over ${DEPLOYMENTS} Deployments, ${PAUSE_MS} ms apart`);
  for (let s = 0; s < WARMUP + SAMPLES; s++) {
    const name = names[s % names.length]!;
    const toDeep = !deepNow.has(name);
    const want = toDeep ? "False" : "True";
    const t0 = performance.now();
    const patched = await client.jsonPatch<KubeObject>(resources.deployments, { namespace: NS, name }, [
      {
        op: "replace",
        path: "/spec/template/spec/containers/0/livenessProbe/httpGet/path",
        value: toDeep ? DEEP : SHALLOW,
      },
    ]);
    const t1 = performance.now();
    if (toDeep) deepNow.add(name);
    else deepNow.delete(name);
    const rv = BigInt(patched.metadata.resourceVersion!);
    const [t2, t3] = await Promise.all([
      seenWhen(name, (e) => e.rv === rv),
      seenWhen(name, (e) => e.rv > rv && e.condition === want),
    ]);
    if (s >= WARMUP) {
      rtt.push(t1 - t0);
      watchSeesPatch.push(t2 - t0);
      reaction.push(t3 - t1);
      total.push(t3 - t0);
    }
    await delay(PAUSE_MS);
  }
  const after = {
    reconciles: await scrape(operator.port, "healthgate_reconcile_total"),
    reconcileSeconds: await scrape(operator.port, "healthgate_reconcile_duration_seconds_sum"),
    adds: await scrape(operator.port, "healthgate_workqueue_adds_total"),
  };

  const f = (n: number) => n.toFixed(1);
  const row = (what: string, values: number[]) => [
    what,
    f(percentile(values, 50)),
    f(percentile(values, 90)),
    f(percentile(values, 99)),
    f(Math.max(...values)),
  ];
  const flips = WARMUP + SAMPLES;
  console.log(
    `\nhealthgate reaction latency — ${SAMPLES} samples (after ${WARMUP} warm-up), one policy selecting ` +
      `${DEPLOYMENTS} Deployments, ${PAUSE_MS} ms between samples, healthgate on node ${nodeFlags.join(" ") || "(no flags)"}; Kubernetes ${plane.version}, Node ${process.version}; ` +
      `${loadBefore} before sampling, ${machineLoad()} after\n`,
  );
  console.log(
    table(
      ["ms", "p50", "p90", "p99", "max"],
      [
        row("patch round-trip (baseline)", rtt),
        row("status apply round-trip", statusApply),
        row("patch sent -> watch sees patch", watchSeesPatch),
        row("reaction: patch response -> watch sees healthgate's condition", reaction),
        row("patch sent -> watch sees healthgate's condition", total),
      ],
    ),
  );
  const ratio = (p: number) => (percentile(reaction, p) / percentile(rtt, p)).toFixed(2);
  console.log(`\nreaction / patch round-trip: p50 ${ratio(50)}x, p90 ${ratio(90)}x, p99 ${ratio(99)}x`);
  const reconciles = after.reconciles - before.reconciles;
  console.log(
    `healthgate during sampling: ${reconciles} reconciles (${(reconciles / flips).toFixed(1)} per flip), ` +
      `${((after.adds - before.adds) / flips).toFixed(1)} queue adds per flip, ` +
      `mean reconcile ${(((after.reconcileSeconds - before.reconcileSeconds) / reconciles) * 1000).toFixed(2)} ms`,
  );
} finally {
  watchStop.abort();
  await operator?.stop();
  await build.remove();
  await plane.stop();
}
