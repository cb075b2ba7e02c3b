// How long one policy edit takes to reach every Deployment it governs.
//
//   node_modules/.bin/node bench/policy-edit.ts [--deployments 1000] [--concurrency N] [--cpu-prof DIR]
//     [--apiserver-profile FILE [--apiserver-profile-seconds 12]]
//
// Starts etcd, kube-apiserver and kube-controller-manager (the real Deployment and ReplicaSet
// controllers, so each new template brings a new ReplicaSet and its events, as on a cluster; no
// scheduler or kubelet: pods stay Pending) with Enforce's MutatingAdmissionPolicies installed as
// the chart installs them, creates `--deployments` Deployments and one Enforce
// HealthPolicy selecting them all, waits until kube-controller-manager has created every
// ReplicaSet and pod (it writes at most 20 requests a second: minutes for 1,000 Deployments),
// runs `healthgate run` (compiled, the image's Node flags) and
// waits until every Deployment carries the policy's preStop drain and healthgate has created
// the Events of that first enforcement (25 a second). Then it edits the policy once
// (shutdown.drainSeconds 5 → 8) and measures the time until every Deployment's template carries
// the new drain and healthgate's queue is empty, with healthgate's writes per second, beside
// the bare throughput of patching the same Deployments (32 in flight) measured in the same run,
// and the requests healthgate made during the edit by verb and resource, and the CPU seconds
// each process (kube-apiserver, etcd, kube-controller-manager, healthgate, the bench) used until
// the edit showed everywhere.
//
// `--mode audit`: the same with an Audit policy whose edit declares the Deployments' liveness path
// (/healthz) deep, which flips every Deployment's LivenessShallow condition (no release write, no admission): healthgate's own throughput.
//
// Reaction under load (`--samples`, default on): 20 more Deployments, selected by an Audit policy
// that declares /health/deep a deep path, are flipped one at a time (liveness path /healthz ↔
// /health/deep, which flips healthgate's LivenessShallow condition), 100 ms apart: first while
// nothing else happens (the idle baseline), then for as long as the edit runs. Reaction = the
// patch's response → our watch delivers the Deployment with the flipped condition.
import { writeFile } from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import type { Deployment } from "../src/api/k8s.ts";
import { defaultBinDir, startControlPlane } from "../src/devcluster/controlPlane.ts";
import {
  apiErrorMessage,
  loadKubeConfig,
  resources,
  type KubeObject,
  type RawObject,
} from "../src/kube/client.ts";
import { KubeClient } from "../src/kube/client.ts";
import { createMetrics } from "../src/observability/metrics.ts";
import {
  benchDeployment,
  buildHealthgate,
  cpuByProcess,
  percentile,
  table,
  imageEnv,
  imageNodeFlags,
  inParallel,
  installAdmission,
  latencyPolicy,
  installCrd,
  machineLoad,
  say,
  scrape,
  spawnOperator,
  waitReady,
} from "./support.ts";

const { values: args } = parseArgs({
  options: {
    deployments: { type: "string", default: "1000" },
    /** healthgate's `--concurrency`; omitted: its default. */
    concurrency: { type: "string" },
    /** Write a CPU profile of healthgate (node --cpu-prof) into this directory. */
    "cpu-prof": { type: "string" },
    /**
     * Write kube-apiserver's CPU profile of the edit (pprof, `--profiling=true`, the first
     * `--apiserver-profile-seconds`) to this file; read it with `go tool pprof -top FILE`.
     */
    "apiserver-profile": { type: "string" },
    "apiserver-profile-seconds": { type: "string", default: "12" },
    /** Reaction samples while idle before the edit (then as many as fit in the edit). 0: none. */
    samples: { type: "string", default: "50" },
    /**
     * enforce (default): the edit changes drainSeconds 5 → 8 and must reach every template
     * (through the release write and admission). audit: the edit declares the Deployments'
     * liveness path (/healthz) a deep path, which flips LivenessShallow to False on every one:
     * healthgate's own throughput, no admission on the way.
     */
    mode: { type: "string", default: "enforce" },
  },
  strict: true,
});
const N = Number(args.deployments);
const IDLE_SAMPLES = Number(args.samples);
const ENFORCE = args.mode !== "audit";
if (!["audit", "enforce"].includes(args.mode)) throw new Error("--mode is audit or enforce");
const NS = "bench";
const LATENCY_DEPLOYMENTS = 20;
const SHALLOW = "/healthz";
const DEEP = "/health/deep";
const CONDITION = "healthgate.io/LivenessShallow";

/** kube-apiserver's CPU profile (pprof) of the next `seconds`, fetched as the admin. */
async function apiServerCpuProfile(seconds: number): Promise<Buffer> {
  const url = new URL(`${plane.server}/debug/pprof/profile?seconds=${seconds}`);
  const options: https.RequestOptions = { method: "GET" };
  await loadKubeConfig(plane.kubeconfigPath).applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = https.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks))
          : reject(new Error(`kube-apiserver's profile: HTTP ${res.statusCode}`)),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** healthgate's requests by verb and resource (and with `byCode`, by response code too). */
async function requestsByKind(port: number, byCode = false): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^healthgate_api_requests_total\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const label = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(m[1]!)?.[1] ?? "";
    const key = `${label("verb")} ${label("resource")}${byCode ? ` ${label("code")}` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(m[2]));
  }
  return counts;
}

function diffCounts(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, v]) => v > 0));
}

/**
 * Lists, then watches the Deployments a selector picks, calling `seen` with each version; lists
 * and watches again after every end (a loaded API server ends watches early, and a
 * resourceVersion it compacted away answers 410) until stop().
 */
class WatchedDeployments {
  private readonly stopper = new AbortController();
  private readonly client: KubeClient;
  private readonly namespace: string;
  private readonly labelSelector: string;
  private readonly seen: (d: Deployment) => void;

  constructor(client: KubeClient, namespace: string, labelSelector: string, seen: (d: Deployment) => void) {
    this.client = client;
    this.namespace = namespace;
    this.labelSelector = labelSelector;
    this.seen = seen;
  }

  async watch(): Promise<void> {
    const list = async () => {
      let resourceVersion: string | undefined;
      let continueToken: string | undefined;
      do {
        const page = await this.client.list(resources.deployments, this.namespace, {
          labelSelector: this.labelSelector,
          limit: 500,
          continue: continueToken,
        });
        for (const item of page.items) this.seen(item as unknown as Deployment);
        resourceVersion = page.metadata.resourceVersion;
        continueToken = page.metadata.continue || undefined;
      } while (continueToken);
      return resourceVersion;
    };
    let resourceVersion = await list();
    void (async () => {
      while (!this.stopper.signal.aborted) {
        try {
          await this.client.watch(
            resources.deployments,
            this.namespace,
            { labelSelector: this.labelSelector, resourceVersion, timeoutSeconds: 3600 },
            (event) => {
              if (event.type === "BOOKMARK" || event.type === "DELETED") return;
              resourceVersion = event.object.metadata.resourceVersion ?? resourceVersion;
              this.seen(event.object as unknown as Deployment);
            },
            this.stopper.signal,
          );
        } catch (err) {
          if (this.stopper.signal.aborted) return;
          say(`watch ended (${apiErrorMessage(err)}); listing and watching again`);
          await delay(200);
          resourceVersion = await list().catch(() => resourceVersion);
        }
      }
    })();
  }

  stop(): void {
    this.stopper.abort();
  }
}

/**
 * Flips the latency Deployments' liveness path one at a time and times healthgate's reaction:
 * the patch's response → our watch (label tier=latency) delivers the flipped condition.
 */
class ReactionSampler {
  private readonly seen = new Map<string, { rv: bigint; at: number; condition: string | undefined }[]>();
  private readonly waiters = new Set<() => void>();
  private readonly deep = new Set<string>();
  private next = 0;
  count = 0;

  private readonly client: KubeClient;
  private readonly namespace: string;
  private readonly names: readonly string[];

  constructor(client: KubeClient, namespace: string, names: readonly string[]) {
    this.client = client;
    this.namespace = namespace;
    this.names = names;
  }

  private watcher: WatchedDeployments | undefined;

  /** Follows the latency Deployments (tier=latency) with a list and watch until stop(). */
  async watch(): Promise<void> {
    this.watcher = new WatchedDeployments(this.client, this.namespace, "tier=latency", (d) =>
      this.record(d as unknown as RawObject),
    );
    await this.watcher.watch();
  }

  stop(): void {
    this.watcher?.stop();
  }

  untilConditions(status: string): Promise<unknown> {
    return Promise.all(this.names.map((name) => this.when(name, (s) => s.condition === status, 300_000)));
  }

  /** Flips one Deployment at a time, 100 ms apart, until `done()`; resolves with the reactions (ms). */
  async run(done: () => boolean): Promise<number[]> {
    const reactions: number[] = [];
    while (!done()) {
      const name = this.names[this.next++ % this.names.length]!;
      const toDeep = !this.deep.has(name);
      const patched = await this.client.jsonPatch<KubeObject>(
        resources.deployments,
        { namespace: this.namespace, name },
        [
          {
            op: "replace",
            path: "/spec/template/spec/containers/0/livenessProbe/httpGet/path",
            value: toDeep ? DEEP : SHALLOW,
          },
        ],
      );
      const sent = performance.now();
      if (toDeep) this.deep.add(name);
      else this.deep.delete(name);
      const rv = BigInt(patched.metadata.resourceVersion!);
      const want = toDeep ? "False" : "True";
      const at = await this.when(name, (s) => s.rv > rv && s.condition === want, 600_000);
      reactions.push(at - sent);
      this.count++;
      await delay(100);
    }
    return reactions;
  }

  private record(obj: RawObject): void {
    const d = obj as unknown as Deployment;
    const list = this.seen.get(d.metadata.name) ?? [];
    list.push({
      rv: BigInt(d.metadata.resourceVersion ?? "0"),
      at: performance.now(),
      condition: d.status?.conditions?.find((c) => c.type === CONDITION)?.status,
    });
    // Only the latest few matter.
    this.seen.set(d.metadata.name, list.slice(-20));
    for (const wake of this.waiters) wake();
  }

  private when(
    name: string,
    match: (s: { rv: bigint; condition: string | undefined }) => boolean,
    timeoutMs: number,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = (this.seen.get(name) ?? []).find(match);
        if (!hit) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(hit.at);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching event for Deployment ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

const plane = await startControlPlane({
  binDir: defaultBinDir(),
  log: say,
  ...(args["apiserver-profile"] ? { extraApiServerArgs: ["--profiling=true"] } : {}),
});
const client = new KubeClient(loadKubeConfig(plane.kubeconfigPath), { metrics: createMetrics() });
const build = await buildHealthgate();
const cleanups: (() => Promise<unknown>)[] = [() => plane.stop(), () => build.remove()];
try {
  await installCrd(plane);
  // Enforce acts at admission: without the chart's MutatingAdmissionPolicies no template changes.
  await installAdmission(plane, "healthgate");
  await loadKubeConfig(plane.kubeconfigPath)
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: NS } } });
  const names = Array.from({ length: N }, (_, i) => `web-${String(i).padStart(4, "0")}`);
  const deployment = (name: string, tier: string, liveness?: string) =>
    benchDeployment(name, NS, { tier }, liveness);
  say(`creating ${N} Deployments`);
  await inParallel(names, 32, (name) =>
    client.create(deployment(name, "bench", ENFORCE ? undefined : SHALLOW)),
  );
  const latencyNames = Array.from({ length: LATENCY_DEPLOYMENTS }, (_, i) => `latency-${i}`);
  await inParallel(latencyNames, 8, (name) => client.create(deployment(name, "latency", SHALLOW)));
  await client.applyObject(latencyPolicy(NS, "latency", { tier: "latency" }), { fieldManager: "bench" });
  const sampler = new ReactionSampler(client, NS, latencyNames);
  cleanups.unshift(async () => sampler.stop());
  await sampler.watch();

  /** The policy before (0) and after (1) the edit. */
  const policy = (phase: 0 | 1) => ({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "bench", namespace: NS },
    spec: {
      selector: { matchLabels: { tier: "bench" } },
      mode: ENFORCE ? "Enforce" : "Audit",
      endpoints: {
        port: "http",
        // Audit's edit: the Deployments' own liveness path (/healthz) becomes a declared deep
        // path (the policy's own liveness path must stay shallow, so it moves to /livez).
        liveness: { path: !ENFORCE && phase === 1 ? "/livez" : SHALLOW },
        readiness: { path: "/readyz" },
        ...(!ENFORCE && phase === 1 ? { deep: { paths: [SHALLOW] } } : {}),
      },
      shutdown: { drainSeconds: ENFORCE && phase === 1 ? 8 : 5, maxInFlightSeconds: 10 },
    },
  });
  /** Whether a Deployment shows what the policy of `phase` asks for. */
  const reached = (d: Deployment, phase: 0 | 1) =>
    ENFORCE
      ? d.spec.template.spec.containers[0]?.lifecycle?.preStop?.sleep?.seconds === (phase === 1 ? 8 : 5)
      : d.status?.conditions?.find((c) => c.type === CONDITION)?.status === (phase === 1 ? "False" : "True");
  // What each bench Deployment shows, kept current by a watch: the edit is timed without
  // listing 1,000 Deployments every 200 ms (that polling cost the API server as much as the
  // edit's own writes).
  const shown = new Map<string, { 0: boolean; 1: boolean; settled: boolean }>();
  const tracker = new WatchedDeployments(client, NS, "tier=bench", (d) =>
    shown.set(d.metadata.name, {
      0: reached(d, 0),
      1: reached(d, 1),
      // The Deployment controller saw this generation, and its pods exist.
      settled:
        d.status?.observedGeneration === d.metadata.generation && d.status?.replicas === d.spec.replicas,
    }),
  );
  await tracker.watch();
  cleanups.unshift(() => Promise.resolve(tracker.stop()));

  // The edit starts on a settled cluster. kube-controller-manager's client makes at most 20
  // requests a second, so creating the 1,020 ReplicaSets and pods and writing the Deployments'
  // status takes it minutes; each of those writes also requeues the Deployment in healthgate.
  // An edit made meanwhile competed with that churn (the rows before 2026-12-04 21:50).
  say("waiting for kube-controller-manager to create every ReplicaSet and pod");
  const settleStart = performance.now();
  for (let done = 0; ; await delay(500)) {
    done = [...shown.values()].filter((state) => state.settled).length;
    if (done === N) break;
    if (performance.now() - settleStart > 900_000)
      throw new Error(`after 900 s kube-controller-manager has settled ${done} of ${N} Deployments`);
  }
  const settleSeconds = (performance.now() - settleStart) / 1000;
  say(`settled in ${settleSeconds.toFixed(0)} s`);
  // The bare write throughput of this plane: one merge patch per Deployment, 32 in flight.
  const patchStart = performance.now();
  await inParallel(names, 32, (name) =>
    client.jsonPatch(resources.deployments, { namespace: NS, name }, [
      { op: "add", path: "/metadata/annotations", value: { "bench.healthgate.io/touched": "1" } },
    ]),
  );
  const patchesPerSecond = N / ((performance.now() - patchStart) / 1000);
  await client.applyObject(policy(0) as KubeObject, { fieldManager: "bench" });
  const operator = await spawnOperator({
    main: build.main,
    kubeconfig: plane.kubeconfigPath,
    nodeFlags: [
      ...(await imageNodeFlags()),
      ...(args["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`] : []),
    ],
    env: await imageEnv(),
    namespaces: [NS],
    // Pacing off: this bench times decisions, conditions and releases, not the rollout queue
    // (docs/enforce.md, "Release pacing"; test/integration/controller/pacing.test.ts tests pacing).
    extraArgs: [
      "--max-concurrent-rollouts=0",
      ...(args.concurrency ? [`--concurrency=${args.concurrency}`] : []),
    ],
  });
  cleanups.unshift(() => operator.stop());
  await waitReady(operator);

  const untilAll = async (phase: 0 | 1) => {
    const deadline = performance.now() + 900_000;
    for (;;) {
      let done = 0;
      for (const state of shown.values()) if (state[phase]) done++;
      if (done === N && (await scrape(operator.port, "healthgate_workqueue_depth")) === 0) return;
      if (performance.now() > deadline)
        throw new Error(`after 900 s only ${done} of ${N} Deployments show the policy's phase ${phase}`);
      await delay(100);
    }
  };
  say("waiting for healthgate to enforce the policy on every Deployment");
  const firstStart = performance.now();
  await untilAll(0);
  const firstSeconds = (performance.now() - firstStart) / 1000;
  // The first enforcement's Events (a few per Deployment) trail it at 25 a second: the edit
  // starts once they are all created, on a settled cluster, not beside their creation.
  say("waiting for the first enforcement's Events to be created");
  while ((await scrape(operator.port, "healthgate_events_pending")) > 0) await delay(200);
  const firstEventsSeconds = (performance.now() - firstStart) / 1000;

  await sampler.untilConditions("True");
  say(`reaction while idle: ${IDLE_SAMPLES} flips`);
  const idle = await sampler.run(() => sampler.count >= IDLE_SAMPLES);
  const idleLoad = machineLoad();

  const requestsBefore = await requestsByKind(operator.port);
  const codesBefore = await requestsByKind(operator.port, true);
  const reconcileKinds = ["Deployment", "HealthPolicy"] as const;
  const reconcilesNow = async () =>
    Promise.all(reconcileKinds.map((kind) => scrape(operator.port, "healthgate_reconcile_total", { kind })));
  const reconcilesBefore = await reconcilesNow();
  let reconcilesAtEdit: number[] = [];
  let requestsAtEdit = new Map<string, number>();
  // Who spends the machine's CPUs during the edit: the plane's processes, healthgate, this bench.
  const cpuPids = {
    "kube-apiserver": plane.pids.kubeApiServer,
    etcd: plane.pids.etcd,
    "kube-controller-manager": plane.pids.kubeControllerManager,
    healthgate: operator.pid,
  };
  const cpuBefore = await cpuByProcess(cpuPids);
  let cpuAtEdit = new Map<string, number>();
  say(ENFORCE ? "editing the policy: shutdown.drainSeconds 5 -> 8" : "editing the policy: /healthz is deep");
  const profiling = args["apiserver-profile"]
    ? {
        file: args["apiserver-profile"],
        profile: apiServerCpuProfile(Number(args["apiserver-profile-seconds"])),
      }
    : undefined;
  const editStart = performance.now();
  const editStartedAt = Date.now();
  await client.applyObject(policy(1) as KubeObject, { fieldManager: "bench" });
  let editDone = false;
  const [, underEdit] = await Promise.all([
    untilAll(1).then(async () => {
      editDone = true;
      cpuAtEdit = await cpuByProcess(cpuPids);
      [reconcilesAtEdit, requestsAtEdit] = await Promise.all([
        reconcilesNow(),
        requestsByKind(operator.port),
      ]);
    }),
    IDLE_SAMPLES > 0 ? sampler.run(() => editDone) : Promise.resolve([]),
  ]);
  const editSeconds = (performance.now() - editStart) / 1000;
  if (profiling) {
    await writeFile(profiling.file, await profiling.profile);
    say(`kube-apiserver's CPU profile of the edit: ${profiling.file}`);
  }
  // Events leave the reconcile (src/kube/eventSink.ts): they trail the conditions.
  while ((await scrape(operator.port, "healthgate_events_pending")) > 0) await delay(100);
  const eventsSeconds = (performance.now() - editStart) / 1000;
  const requests = diffCounts(await requestsByKind(operator.port), requestsBefore);
  const requestsUntilShown = diffCounts(requestsAtEdit, requestsBefore);
  // Writes by response code: refusals and throttling show here.
  const writeCodes = new Map(
    [...diffCounts(await requestsByKind(operator.port, true), codesBefore)].filter(([k]) =>
      /^(apply|patch|create|update|delete) /.test(k),
    ),
  );
  // Events since the edit in every namespace, by who reported them and why (the reaction
  // samples' own flips included); the namespace too when it is not the bench's.
  const eventReasons = new Map<string, number>();
  for (const e of (await client.list(resources.events, undefined, {})).items as unknown as {
    reason?: string;
    reportingController?: string;
    eventTime?: string;
    metadata: { namespace?: string; creationTimestamp?: string };
  }[]) {
    const at = Date.parse(e.eventTime ?? e.metadata.creationTimestamp ?? "");
    if (at < editStartedAt - 1_000) continue;
    const who = e.reportingController === "healthgate.io/healthgate" ? "healthgate" : "others";
    const where = e.metadata.namespace === NS ? "" : ` (namespace ${e.metadata.namespace})`;
    const key = `${who} ${e.reason ?? ""}${where}`;
    eventReasons.set(key, (eventReasons.get(key) ?? 0) + 1);
  }
  const reconcilesAfter = await reconcilesNow();
  const reconciles = (upTo: number[]) =>
    reconcileKinds.map((kind, i) => `${kind} ${upTo[i]! - reconcilesBefore[i]!}`).join(", ");
  const writes = [...requests].filter(([k]) => k.startsWith("apply ")).reduce((a, [, v]) => a + v, 0);

  console.log(
    `\nhealthgate policy edit — ${N} Deployments governed by one ${ENFORCE ? "Enforce" : "Audit"} policy, kube-controller-manager running`,
  );
  console.log(`Finished at ${machineLoad()}.`);
  console.log(
    `kube-controller-manager created every ReplicaSet and pod ${settleSeconds.toFixed(0)} s after the Deployments (healthgate started then)`,
  );
  console.log(
    `first enforcement of all ${N}: ${firstSeconds.toFixed(1)} s; its Events all created: ${firstEventsSeconds.toFixed(1)} s (the edit started after them)`,
  );
  console.log(
    `policy edit → all ${N} carry ${ENFORCE ? "the new template" : "LivenessShallow=False"}, queue empty: ${editSeconds.toFixed(1)} s; ` +
      `healthgate's applies ${writes} (${(writes / editSeconds).toFixed(0)}/s)`,
  );
  console.log(
    `the edit's Events all created (they are sent in the background): ${eventsSeconds.toFixed(1)} s`,
  );
  console.log(`bare patch throughput of the same plane (32 in flight): ${patchesPerSecond.toFixed(0)}/s`);
  const cpuUsed = [...cpuAtEdit].map(([name, at]) => [name, at - (cpuBefore.get(name) ?? at)] as const);
  console.log(
    `CPU seconds until the edit showed everywhere (${os.availableParallelism()} CPUs × ${editSeconds.toFixed(1)} s = ` +
      `${(os.availableParallelism() * editSeconds).toFixed(1)}): ` +
      cpuUsed
        .sort((a, b) => b[1] - a[1])
        .map(
          ([name, seconds]) =>
            `${name === "self" ? "this bench (watch, reaction sampler)" : name} ${seconds.toFixed(1)}`,
        )
        .join(", "),
  );
  console.log(
    `reconciles until the edit showed everywhere: ${reconciles(reconcilesAtEdit)}; until its Events were created: ${reconciles(reconcilesAfter)}`,
  );
  const byCount = (counts: Map<string, number>) =>
    [...counts]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
  console.log(
    `until the edit showed everywhere: writes: ` +
      byCount(
        new Map([...requestsUntilShown].filter(([k]) => /^(apply|patch|create|update|delete) /.test(k))),
      ),
  );
  console.log(`Events since the edit by reason: ${byCount(eventReasons)}`);
  console.log(`during the edit and its Events: writes by response code: ${byCount(writeCodes)}`);
  console.log(
    `during the edit and its Events: requests: ` +
      [...requests]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(", "),
  );
  if (IDLE_SAMPLES > 0) {
    const f = (n: number) => n.toFixed(0);
    const row = (what: string, values: number[]) => [
      what,
      String(values.length),
      f(percentile(values, 50)),
      f(percentile(values, 99)),
      f(Math.max(...values)),
    ];
    console.log(`\nreaction of single changes (ms; idle at ${idleLoad}):`);
    console.log(
      table(
        ["ms", "samples", "p50", "p99", "max"],
        [row("reaction, idle", idle), row("reaction, while the edit runs", underEdit)],
      ),
    );
  }
} finally {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
}
