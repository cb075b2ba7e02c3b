// The deep-check prober at scale, on loopback: 10,000 targets checked every 10 s while the main
// thread does what the operator's relist of 10,000 pods does (parse the list, diff it against
// the cache), and the prober's ceiling beside a bare Node GET on a fresh connection.
//
//   node_modules/.bin/node bench/prober.ts [--targets 10000] [--hostile 100] [--servers 500]
//     [--interval-seconds 10] [--seconds 30] [--pods 10000] [--concurrency 256] [--quick]
//
// The targets are real servers (test/support/loopbackTargets.ts) on many 127.x addresses, in a
// child process of their own so the busy main thread here cannot slow them: healthy ones (HTTP,
// and some HTTPS with an untrusted certificate), and `--hostile` of the hostile kinds (never
// answers, drips a byte a second, 10 MiB body, reset mid-header, garbage, redirect to another
// host, TLS that never completes, 503). Prints, and asserts nothing:
//   1. start lateness p50/p99/p99.9 of every check over `--seconds`, with the relist loop running;
//   2. results of healthy targets that were not a pass (false failures), and per hostile kind
//      the worst duration and bytes read (bounded by the timeout and the 64 KiB cap);
//   3. probes per second at saturation: the prober's worker (one thread) against a bare
//      http.get with agent: false on the main thread, same plain-HTTP targets, same concurrency,
//      each also per CPU second of its own thread (from /proc): what one core does, even when
//      the machine is shared;
//   4. RSS of this process, and of a child process running only the prober over the same targets
//      (the prober's own footprint: before it starts, steady, peak).
// --quick is a toy size for the smoke test (test/integration/bench.test.ts).
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { slim } from "../src/controller/world.ts";
import type { KubeObject } from "../src/kube/client.ts";
import { ProberHandle } from "../src/prober/handle.ts";
import type { DeepCheckResult, ProbeTarget } from "../src/prober/types.ts";
import {
  spawnLoopbackServers,
  TARGET_KINDS,
  type LoopbackServer,
  type TargetKind,
} from "../test/support/loopbackTargets.ts";
import { imageNodeFlags, machineLoad, percentile, procMemory, say, table } from "./support.ts";

const { values: args } = parseArgs({
  options: {
    targets: { type: "string", default: "10000" },
    hostile: { type: "string", default: "100" },
    servers: { type: "string", default: "500" },
    "interval-seconds": { type: "string", default: "10" },
    seconds: { type: "string", default: "30" },
    pods: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "256" },
    "saturation-seconds": { type: "string", default: "5" },
    quick: { type: "boolean", default: false },
    /** Internal: run only the prober over the targets on stdin for N seconds and print its RSS. */
    "rss-child": { type: "string" },
  },
});

if (args["rss-child"]) {
  const input: Buffer[] = [];
  for await (const chunk of process.stdin) input.push(chunk as Buffer);
  const childTargets = JSON.parse(Buffer.concat(input).toString()) as ProbeTarget[];
  const baseline = (await procMemory(process.pid))!.rssMiB;
  const child = ProberHandle.start({ concurrency: Number(args.concurrency) });
  let childResults = 0;
  child.subscribe((batch) => (childResults += batch.length));
  child.sync(childTargets);
  const samples: number[] = [];
  const end = Date.now() + Number(args["rss-child"]) * 1000;
  while (Date.now() < end) {
    await delay(500);
    samples.push((await procMemory(process.pid))!.rssMiB);
  }
  await child.stop();
  const peak = (await procMemory(process.pid))!.hwmMiB;
  const steady = percentile(samples.slice(Math.floor(samples.length / 2)), 50);
  process.stdout.write(`${JSON.stringify({ baseline, steady, peak, results: childResults })}\n`);
  process.exit(0);
}
const quick = args.quick;
const TARGETS = quick ? 200 : Number(args.targets);
const HOSTILE = quick ? 16 : Number(args.hostile);
const SERVERS = quick ? 10 : Number(args.servers);
const INTERVAL_MS = (quick ? 1 : Number(args["interval-seconds"])) * 1000;
const RUN_MS = (quick ? 3 : Number(args.seconds)) * 1000;
const PODS = quick ? 500 : Number(args.pods);
const CONCURRENCY = Number(args.concurrency);
const SATURATION_MS = (quick ? 1 : Number(args["saturation-seconds"])) * 1000;
const TIMEOUT_MS = quick ? 500 : 2_000;

// Every kind the loopback servers play but the two that answer well.
const HOSTILE_KINDS: TargetKind[] = TARGET_KINDS.filter((k) => k !== "healthy" && k !== "tls-healthy");

// ---- targets ------------------------------------------------------------------------------

const tlsServers = Math.max(1, Math.floor(SERVERS / 10));
say(`starting ${SERVERS} healthy servers (${tlsServers} HTTPS) and ${HOSTILE_KINDS.length} hostile ones`);
const farm = await spawnLoopbackServers(
  {
    healthy: SERVERS - tlsServers,
    "tls-healthy": tlsServers,
    ...Object.fromEntries(HOSTILE_KINDS.map((k) => [k, 1])),
  },
  { firstIp: "127.30.0.1" },
);
const healthyServers = farm.servers.filter((s) => s.kind === "healthy" || s.kind === "tls-healthy");
const hostileServers = farm.servers.filter((s) => HOSTILE_KINDS.includes(s.kind));

function target(i: number, server: LoopbackServer, intervalMs: number): ProbeTarget {
  return {
    key: `uid-${i}`,
    namespace: `ns-${i % 20}`,
    pod: `web-${i}`,
    revision: i % 10 === 0 ? "new" : "stable",
    cohort: i % 10 === 0 ? "new" : "stable",
    ip: server.ip,
    port: server.port,
    scheme: server.scheme,
    path: "/health/deep",
    intervalMs,
    timeoutMs: TIMEOUT_MS,
    expect: { statuses: [200], bodyContains: "deep ok" },
  };
}

/** The kind of server behind each target of the lateness run. */
const kindOf = new Map<string, TargetKind>();
function targets(intervalMs: number, withHostile: boolean): ProbeTarget[] {
  const stride = Math.max(1, Math.floor(TARGETS / Math.max(1, HOSTILE)));
  let hostile = 0;
  return Array.from({ length: TARGETS }, (_, i) => {
    const isHostile = withHostile && i % stride === 0 && hostile < HOSTILE;
    const server = isHostile
      ? hostileServers[hostile++ % hostileServers.length]!
      : healthyServers[i % healthyServers.length]!;
    if (withHostile) kindOf.set(`uid-${i}`, server.kind);
    return target(i, server, intervalMs);
  });
}

// ---- CPU time of one thread (Linux: /proc/self/task/<tid>/stat, utime + stime) ------------

const PROBER_THREAD = "healthgate-prob"; // the worker's name, as the kernel keeps it (15 chars)
const MAIN_THREAD = "MainThread";
const TICKS_PER_SECOND = 100;
function threadCpuSeconds(comm: string): number {
  for (const tid of readdirSync("/proc/self/task")) {
    if (readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() !== comm) continue;
    const fields = readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  }
  return Number.NaN;
}

// ---- the operator's relist, simulated on the main thread -----------------------------------

function podJson(i: number, rv: number): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `web-${i}`,
      namespace: `ns-${i % 20}`,
      uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
      resourceVersion: String(rv),
      labels: { app: `app-${i % 1000}`, "pod-template-hash": "5d9f8c7b6" },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: `app-${i % 1000}-5d9f8c7b6`,
          uid: "rs",
          controller: true,
        },
      ],
      managedFields: [
        { manager: "kube-controller-manager", operation: "Update", fieldsV1: { "f:metadata": {} } },
      ],
    },
    spec: {
      nodeName: `node-${i % 50}`,
      containers: ["app", "sidecar"].map((name) => ({
        name,
        image: `registry.invalid/${name}:1.2.3`,
        ports: [{ name: "http", containerPort: 8080 }],
        env: Array.from({ length: 8 }, (_, e) => ({ name: `VAR_${e}`, value: `value-${e}-${i}` })),
        resources: { requests: { cpu: "100m", memory: "128Mi" } },
        readinessProbe: { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 5 },
      })),
    },
    status: {
      phase: "Running",
      podIP: `198.18.${(i >> 8) & 255}.${i & 255}`,
      conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map((type) => ({
        type,
        status: "True",
        lastTransitionTime: "2026-12-04T00:00:00Z",
      })),
      containerStatuses: ["app", "sidecar"].map((name) => ({
        name,
        ready: true,
        restartCount: 0,
        image: name,
      })),
    },
  } as unknown as KubeObject;
}

say(`building a ${PODS}-pod list for the relist loop`);
const lists = [0, 1].map((variant) =>
  JSON.stringify({
    kind: "PodList",
    items: Array.from({ length: PODS }, (_, i) => podJson(i, 1000 + (i % 10 === 0 ? variant : 0))),
  }),
);
say(`pod list: ${(lists[0]!.length / 1024 / 1024).toFixed(1)} MiB of JSON`);

/** One relist as an informer does it: parse, slim, diff against the cache. */
const cache = new Map<string, { rv: string; pod: unknown }>();
function relist(variant: number): number {
  const list = JSON.parse(lists[variant]!) as { items: KubeObject[] };
  let changed = 0;
  const seen = new Set<string>();
  for (const item of list.items) {
    const key = `${item.metadata.namespace}/${item.metadata.name}`;
    seen.add(key);
    const rv = item.metadata.resourceVersion ?? "";
    if (cache.get(key)?.rv === rv) continue;
    cache.set(key, { rv, pod: slim.pod(item as unknown as Parameters<typeof slim.pod>[0]) });
    changed++;
  }
  for (const key of cache.keys()) if (!seen.has(key)) cache.delete(key);
  return changed;
}

// ---- 1 and 2: lateness under relist load, false failures, hostile bounds -------------------

const rssBefore = (await procMemory(process.pid))!;
const prober = ProberHandle.start({ concurrency: CONCURRENCY });
const results: DeepCheckResult[] = [];
prober.subscribe((batch) => results.push(...batch));
prober.sync(targets(INTERVAL_MS, true));
say(
  `${TARGETS} targets, ${HOSTILE} hostile, every ${INTERVAL_MS / 1000} s; relisting ${PODS} pods for ${RUN_MS / 1000} s`,
);

// Let the first interval pass (every target gets its first phase), then measure.
const relistMs: number[] = [];
let runCpu = Number.NaN;
const warmupEnd = Date.now() + Math.min(INTERVAL_MS, RUN_MS / 3);
const runEnd = warmupEnd + RUN_MS;
let variant = 0;
let rssPeakDuringRun = 0;
let warm = false;
while (Date.now() < runEnd) {
  if (!warm && Date.now() >= warmupEnd) {
    warm = true;
    runCpu = threadCpuSeconds(PROBER_THREAD);
  }
  const t0 = performance.now();
  relist(variant);
  variant ^= 1;
  relistMs.push(performance.now() - t0);
  rssPeakDuringRun = Math.max(rssPeakDuringRun, (await procMemory(process.pid))?.rssMiB ?? 0);
  await delay(1); // the loop yields, as the operator's does between events
}
runCpu = threadCpuSeconds(PROBER_THREAD) - runCpu;
const rssSteady = (await procMemory(process.pid))!;
await delay(TIMEOUT_MS + 200); // the last checks finish
const measured = results.filter((r) => r.startedAt >= warmupEnd && r.startedAt < runEnd);
const lateness = measured.map((r) => r.latenessMs);
const isHealthy = (r: DeepCheckResult) => {
  const kind = kindOf.get(r.key);
  return kind === "healthy" || kind === "tls-healthy";
};
const healthyResults = measured.filter(isHealthy);
const falseFailures = healthyResults.filter((r) => r.outcome !== "pass");

// ---- 3: saturation ---------------------------------------------------------------------

// Plain HTTP healthy targets only (as the bare GET below), at an interval short enough that the
// demand (5,000 checks/s) exceeds what one thread does here; far more demand would mostly
// measure the bookkeeping of skipped checks (overruns).
const plain = healthyServers.filter((s) => s.kind === "healthy");
prober.sync(
  Array.from({ length: TARGETS }, (_, i) => target(i, plain[i % plain.length]!, Math.max(1, TARGETS / 5))),
);
await delay(500);
const satStart = Date.now();
const satFrom = results.length;
const cpu0 = threadCpuSeconds(PROBER_THREAD);
await delay(SATURATION_MS);
const proberRate = ((results.length - satFrom) * 1000) / (Date.now() - satStart);
const proberCpu = threadCpuSeconds(PROBER_THREAD) - cpu0;
const proberPerCpu = (results.length - satFrom) / proberCpu;
const satFailures = results.slice(satFrom).filter((r) => r.outcome !== "pass").length;
await prober.stop();
const rssAfter = (await procMemory(process.pid))!;

function bareGet(server: LoopbackServer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: server.ip, port: server.port, path: "/health/deep", agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode === 200));
        res.on("error", () => resolve(false));
      },
    );
    req.on("error", () => resolve(false));
  });
}
let bareCount = 0;
let bareFailures = 0;
const bareEnd = Date.now() + SATURATION_MS;
const bareStart = Date.now();
const mainCpu0 = threadCpuSeconds(MAIN_THREAD);
await Promise.all(
  Array.from({ length: CONCURRENCY }, async (_, w) => {
    for (let i = w; Date.now() < bareEnd; i += CONCURRENCY) {
      if (await bareGet(plain[i % plain.length]!)) bareCount++;
      else bareFailures++;
    }
  }),
);
const bareRate = (bareCount * 1000) / (Date.now() - bareStart);
const bareCpu = threadCpuSeconds(MAIN_THREAD) - mainCpu0;
const barePerCpu = (bareCount + bareFailures) / bareCpu;

// ---- 4: the prober's own memory, in a process that does nothing else ---------------------

const rssSeconds = quick ? 2 : Math.max(15, (INTERVAL_MS / 1000) * 1.5);
say(`measuring the prober's RSS alone: ${TARGETS} targets for ${rssSeconds} s in a child process`);
// With the image's Node flags (the Dockerfile's ENTRYPOINT), as the operator runs.
const rssChild = spawn(
  process.execPath,
  [
    ...(await imageNodeFlags()),
    import.meta.filename,
    "--rss-child",
    String(rssSeconds),
    "--concurrency",
    String(CONCURRENCY),
  ],
  {
    stdio: ["pipe", "pipe", "inherit"],
  },
);
rssChild.stdin.end(JSON.stringify(targets(INTERVAL_MS, true)));
let rssOut = "";
rssChild.stdout.on("data", (chunk: Buffer) => (rssOut += chunk.toString()));
await new Promise((resolve) => rssChild.once("exit", resolve));
const proberAlone = JSON.parse(rssOut) as { baseline: number; steady: number; peak: number; results: number };

// ---- report ----------------------------------------------------------------------------

const f1 = (n: number) => n.toFixed(1);
const f0 = (n: number) => Math.round(n).toLocaleString("en-US");
const lines: string[] = [];
lines.push(
  `prober bench: ${TARGETS} targets (${TARGETS - HOSTILE} healthy over ${healthyServers.length} servers, ${HOSTILE} hostile), ` +
    `interval ${INTERVAL_MS / 1000} s, timeout ${TIMEOUT_MS / 1000} s, concurrency ${CONCURRENCY}, ${RUN_MS / 1000} s measured; ` +
    `main thread relisting ${PODS} pods (${(lists[0]!.length / 1024 / 1024).toFixed(1)} MiB JSON)`,
);
lines.push("");
lines.push(
  table(
    ["start lateness ms", "checks", "p50", "p99", "p99.9", "max"],
    [["all checks", String(lateness.length), ...[50, 99, 99.9, 100].map((p) => f1(percentile(lateness, p)))]],
  ),
);
lines.push(
  `main thread relist: ${relistMs.length} relists, p50 ${f0(percentile(relistMs, 50))} ms, max ${f0(Math.max(...relistMs))} ms ` +
    `(the main thread was blocked about ${Math.round((relistMs.reduce((a, b) => a + b, 0) / RUN_MS) * 100)} % of the run)`,
);
lines.push(
  `prober thread during the run: ${f1(runCpu)} CPU s for ${measured.length} checks ` +
    `(${f0(measured.length / (RUN_MS / 1000))} checks/s, ${f0(measured.length / runCpu)} per CPU second; hostile ones included)`,
);
lines.push(
  `healthy targets: ${healthyResults.length} results, false failures ${falseFailures.length}` +
    (falseFailures.length > 0
      ? ` (${[...new Set(falseFailures.map((r) => r.errorClass ?? `status ${r.statusCode}`))].join(", ")})`
      : ""),
);
lines.push("");
const hostileRows = HOSTILE_KINDS.map((kind) => {
  const rs = measured.filter((r) => kindOf.get(r.key) === kind);
  const classes = [...new Set(rs.map((r) => `${r.outcome}/${r.errorClass ?? r.statusCode}`))].join(" ");
  return [
    kind,
    String(rs.length),
    classes,
    rs.length ? f0(Math.max(...rs.map((r) => r.durationMs))) : "-",
    rs.length ? f0(Math.max(...rs.map((r) => r.bytesRead))) : "-",
  ];
});
lines.push(table(["hostile kind", "results", "outcome/class", "max ms", "max bytes"], hostileRows));
lines.push(`redirects followed: ${await closeFarm()}`);
lines.push("");
lines.push(
  table(
    ["probes/s, saturated, plain HTTP", "probes/s", "thread CPU s", "per CPU second", "not pass"],
    [
      ["prober (its worker thread)", f0(proberRate), f1(proberCpu), f0(proberPerCpu), String(satFailures)],
      [
        "bare http.get, agent: false (main thread)",
        f0(bareRate),
        f1(bareCpu),
        f0(barePerCpu),
        String(bareFailures),
      ],
    ],
  ),
);
lines.push(
  `prober / bare: ${Math.round((proberRate / bareRate) * 100)} % of probes/s, ` +
    `${Math.round((proberPerCpu / barePerCpu) * 100)} % per CPU second of its thread`,
);
lines.push(
  `RSS MiB (this process: prober + relist simulation): before the prober ${f0(rssBefore.rssMiB)}, ` +
    `during the run ${f0(rssSteady.rssMiB)}, peak during the run ${f0(rssPeakDuringRun)}, ` +
    `process peak (VmHWM) ${f0(rssAfter.hwmMiB)}`,
);
lines.push(
  `RSS MiB, the prober alone with ${TARGETS} targets (a child process doing nothing else, image flags, ${rssSeconds} s, ` +
    `${proberAlone.results} results): before it starts ${f0(proberAlone.baseline)}, steady ${f0(proberAlone.steady)}, ` +
    `peak (VmHWM) ${f0(proberAlone.peak)}; the prober's share ${f0(proberAlone.steady - proberAlone.baseline)}`,
);
lines.push(machineLoad());
process.stdout.write(`${lines.join("\n")}\n`);

async function closeFarm(): Promise<number> {
  await farm.close();
  return farm.redirectFollowed();
}
