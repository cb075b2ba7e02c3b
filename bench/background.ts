// The background deep check's cost (spec.rollout.deepCheck.background), no control plane:
//   1. the prober: `--deployments` Deployments × `--sample` pods each, every `--interval-seconds`,
//      against loopback servers (test/support/loopbackTargets.ts, a child process): probes/s and
//      the prober thread's CPU seconds (from /proc) over `--seconds`, beside the same process idle;
//   2. the API server: the liveness witness (src/controller/livenessWitness.ts) driven over the
//      same Deployments with a client that counts its requests — in steady state (every deep
//      check passing) and during an outage (every sampled pod failing), each Deployment
//      reconciled every second (far more often than the operator does): the witness's requests
//      per second. It reads the API server only during an outage: one Events list per failing
//      sampled pod per background interval, at most EVENT_READS_PER_SECOND over all Deployments.
//
//   node_modules/.bin/node bench/background.ts [--deployments 1000] [--sample 2]
//     [--interval-seconds 60] [--seconds 60] [--quick]
//
// Prints figures; asserts nothing. --quick is a toy size for the smoke test.
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import type { Pod } from "../src/api/k8s.ts";
import { parseHealthPolicy } from "../src/api/v1alpha1/parse.ts";
import type { KubeClient } from "../src/kube/client.ts";
import { systemClock } from "../src/kube/clock.ts";
import {
  EVENT_READ_BURST,
  EVENT_READS_PER_SECOND,
  LivenessWitness,
} from "../src/controller/livenessWitness.ts";
import { ProberHandle } from "../src/prober/handle.ts";
import type { DeepCheckResult, ProbeTarget } from "../src/prober/types.ts";
import { spawnLoopbackServers } from "../test/support/loopbackTargets.ts";
import { machineLoad, say, table } from "./support.ts";

const { values: args } = parseArgs({
  options: {
    deployments: { type: "string", default: "1000" },
    sample: { type: "string", default: "2" },
    "interval-seconds": { type: "string", default: "60" },
    seconds: { type: "string", default: "60" },
    quick: { type: "boolean", default: false },
  },
});
const quick = args.quick;
const DEPLOYMENTS = quick ? 20 : Number(args.deployments);
const SAMPLE = Number(args.sample);
const INTERVAL_S = quick ? 2 : Number(args["interval-seconds"]);
const SECONDS = quick ? 4 : Number(args.seconds);

const PROBER_THREAD = "healthgate-prob";
function threadCpuSeconds(comm: string): number {
  for (const tid of readdirSync("/proc/self/task")) {
    if (readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() !== comm) continue;
    const fields = readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }
  return 0;
}
const processCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// ---- 1. the prober ----------------------------------------------------------------------------

say(`starting loopback servers for ${DEPLOYMENTS} Deployments × ${SAMPLE} sampled pods`);
const farm = await spawnLoopbackServers(
  { healthy: Math.min(200, DEPLOYMENTS * SAMPLE) },
  { firstIp: "127.31.0.1" },
);
const targets: ProbeTarget[] = Array.from({ length: DEPLOYMENTS * SAMPLE }, (_, i) => {
  const server = farm.servers[i % farm.servers.length]!;
  return {
    key: `uid-${i}/background`,
    namespace: "bench",
    pod: `web-${Math.floor(i / SAMPLE)}-${i % SAMPLE}`,
    revision: "stable",
    cohort: "stable",
    ip: server.ip,
    port: server.port,
    scheme: server.scheme,
    path: "/health/deep",
    intervalMs: INTERVAL_S * 1000,
    timeoutMs: 1000,
    expect: { statuses: [200] },
  };
});

const idleCpu0 = processCpuSeconds();
await delay(Math.min(SECONDS, 10) * 1000);
const idleCpuPerS = (processCpuSeconds() - idleCpu0) / Math.min(SECONDS, 10);

const prober = ProberHandle.start();
let results = 0;
let passes = 0;
prober.subscribe((batch: readonly DeepCheckResult[]) => {
  results += batch.length;
  passes += batch.filter((r) => r.outcome === "pass").length;
});
prober.upsert(targets);
// The first checks spread over one interval; measure after it.
await delay(INTERVAL_S * 1000);
const r0 = results;
const cpu0 = threadCpuSeconds(PROBER_THREAD);
const proc0 = processCpuSeconds();
await delay(SECONDS * 1000);
const probesPerS = (results - r0) / SECONDS;
const proberCpuPerS = (threadCpuSeconds(PROBER_THREAD) - cpu0) / SECONDS;
const processCpuPerS = (processCpuSeconds() - proc0) / SECONDS;
await prober.stop();
await farm.close();

// ---- 2. the API server: the witness's requests -------------------------------------------------

let lists = 0;
const countingClient = {
  list: async () => {
    lists++;
    return { apiVersion: "events.k8s.io/v1", kind: "EventList", metadata: {}, items: [] };
  },
} as unknown as KubeClient;
const parsed = parseHealthPolicy({
  apiVersion: "healthgate.io/v1alpha1",
  kind: "HealthPolicy",
  metadata: { name: "web", namespace: "bench" },
  spec: {
    selector: { matchLabels: { app: "web" } },
    endpoints: { port: 8080 },
    rollout: {
      steps: [{ weight: 100 }],
      deepCheck: {
        path: "/health/deep",
        timeoutSeconds: 1,
        background: { intervalSeconds: INTERVAL_S, sample: SAMPLE, failureThreshold: 2 },
      },
    },
  },
});
if (!parsed.ok) throw new Error(`bench policy does not parse: ${JSON.stringify(parsed)}`);
const silentLogger = { info: () => {}, warn: () => {} } as unknown as ConstructorParameters<
  typeof LivenessWitness
>[0]["logger"];
const stubProber = { upsert: () => {}, remove: () => {} } as unknown as ProberHandle;
const witness = new LivenessWitness({
  client: countingClient,
  clock: systemClock,
  logger: silentLogger,
  prober: () => stubProber,
  enqueue: () => {},
});
const podsOf = (d: number): Pod[] =>
  Array.from({ length: SAMPLE + 1 }, (_, i) => ({
    metadata: {
      name: `web-${d}-${i}`,
      namespace: "bench",
      uid: `uid-${d * SAMPLE + i}`,
      creationTimestamp: "2026-01-01T00:00:00Z",
    },
    spec: { containers: [{ name: "web", ports: [{ containerPort: 8080 }] }] },
    status: {
      phase: "Running",
      podIP: `10.0.${Math.floor(d / 250)}.${d % 250}`,
      conditions: [{ type: "Ready", status: "True" }],
      containerStatuses: [{ name: "web", ready: true, restartCount: 0 }],
    },
  })) as unknown as Pod[];
const signal = new AbortController().signal;
const reconcileAll = async () => {
  for (let d = 0; d < DEPLOYMENTS; d++)
    await witness.observe(parsed.policy, "bench", `web-${d}`, podsOf(d), "stable", signal);
};
const feed = (outcome: "pass" | "fail") =>
  witness.receive(
    Array.from(
      { length: DEPLOYMENTS * SAMPLE },
      (_, i) => ({ key: `uid-${i}/background`, outcome, startedAt: Date.now() }) as DeepCheckResult,
    ),
  );
/**
 * The witness's requests per second in a state: the first look after the deep checks turn
 * (counted apart: an outage's first look lists every failing sampled pod's Events at once), then
 * `intervals` whole background intervals, counted from half an interval after that first look.
 */
async function requestsPerSecond(
  outcome: "pass" | "fail",
  intervals: number,
): Promise<{ firstLook: number; perSecond: number }> {
  await reconcileAll();
  feed(outcome);
  feed(outcome);
  const before = lists;
  await reconcileAll();
  const firstLook = lists - before;
  const until = async (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      await reconcileAll();
      await delay(Math.min(1000, Math.max(0, end - Date.now())));
    }
  };
  await until((INTERVAL_S * 1000) / 2);
  const l0 = lists;
  const t0 = Date.now();
  await until(intervals * INTERVAL_S * 1000);
  return { firstLook, perSecond: (lists - l0) / ((Date.now() - t0) / 1000) };
}
const INTERVALS = quick ? 1 : 2;
const steady = await requestsPerSecond("pass", INTERVALS);
const outage = await requestsPerSecond("fail", INTERVALS);

const f = (n: number, d = 2) => n.toFixed(d);
process.stdout.write(
  [
    `background deep check: ${DEPLOYMENTS} Deployments × ${SAMPLE} sampled pods every ${INTERVAL_S}s (${DEPLOYMENTS * SAMPLE} targets), measured over ${SECONDS}s`,
    table(
      ["figure", "value"],
      [
        [
          "probes/s (expected targets ÷ interval)",
          `${f(probesPerS)} (${f((DEPLOYMENTS * SAMPLE) / INTERVAL_S)}); passes ${passes} of ${results}`,
        ],
        [
          "prober thread CPU",
          `${f(proberCpuPerS * 1000, 1)} ms per second (${f(proberCpuPerS * 100, 2)} % of a core)`,
        ],
        [
          "whole process CPU, probing / idle",
          `${f(processCpuPerS * 1000, 1)} / ${f(idleCpuPerS * 1000, 1)} ms per second`,
        ],
        ["API requests/s, steady state (deep checks pass)", f(steady.perSecond, 3)],
        [
          `API requests at the first look of an outage on every Deployment (Events lists at once; burst ${EVENT_READ_BURST})`,
          String(outage.firstLook),
        ],
        [
          `API requests/s, outage on every Deployment (Events lists; bound min(${DEPLOYMENTS * SAMPLE} ÷ ${INTERVAL_S}s, ${EVENT_READS_PER_SECOND}/s))`,
          f(outage.perSecond, 3),
        ],
      ],
    ),
    machineLoad(),
  ].join("\n") + "\n",
);
