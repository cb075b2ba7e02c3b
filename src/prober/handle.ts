// The main thread's side of the prober: starts the worker, hands it target changes, and passes
// its results on — to metrics, and to whoever subscribed (the rollout, later). It also keeps
// each pod's latest result (for `healthgate rollout status`, served from memory) and the pods it
// was handed but does not check, with the reason (a metric by reason; never silently). Thin on
// purpose: everything that must keep time lives in the worker.
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { DeepCheckMetrics } from "./metrics.ts";
import { recordResults } from "./metrics.ts";
import type { FromWorker, ToWorker, WorkerConfig } from "./protocol.ts";
import { UNCHECKED_REASONS, type TargetVerdict, type UncheckedReason } from "./targets.ts";
import { COHORTS, type Cohort, type DeepCheckResult, type ProbeTarget } from "./types.ts";

export interface ProberOptions {
  /** Probes in flight at most (default 256). */
  concurrency?: number;
  /** Results arrive in batches at most this often (default 25 ms). */
  batchMs?: number;
  metrics?: DeepCheckMetrics;
}

export type ResultListener = (results: readonly DeepCheckResult[]) => void;

/** A pod handed to the prober that it does not check, and why (deepCheckTarget's verdict). */
export interface UncheckedPod {
  /** The pod's uid (as a target's key). */
  key: string;
  namespace: string;
  pod: string;
  cohort: Cohort;
  reason: UncheckedReason;
  message: string;
}

/** Keeps the worker's file type: worker.ts under Node's type stripping and vitest, worker.js when built. */
const workerUrl = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export class ProberHandle {
  /**
   * The prober's thread, started with the first target: an idle thread is a V8 isolate of its own
   * (about 30 MiB of RSS), and most operators check no pod most of the time.
   */
  private worker: Worker | undefined;
  private readonly config: WorkerConfig;
  private readonly listeners = new Set<ResultListener>();
  private readonly targets = new Map<string, { target: ProbeTarget; json: string }>();
  /** Each checked pod's latest result, until it stops being checked. */
  private readonly latestResults = new Map<string, DeepCheckResult>();
  private readonly uncheckedPods = new Map<string, UncheckedPod>();
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly metrics: DeepCheckMetrics | undefined;

  private constructor(config: WorkerConfig, metrics: DeepCheckMetrics | undefined) {
    this.config = config;
    this.metrics = metrics;
  }

  /** Whether the prober's thread runs (from the first target until stop). */
  get threadStarted(): boolean {
    return this.worker !== undefined && !this.stopped;
  }

  private startWorker(): Worker {
    const worker = new Worker(workerUrl, { workerData: this.config, name: "healthgate-prober" });
    worker.on("message", (message: FromWorker) => this.receive(message));
    this.exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    worker.on("error", (err) => {
      throw new Error(`the deep-check prober's thread failed: ${err.message}`, { cause: err });
    });
    return worker;
  }

  static start(options: ProberOptions = {}): ProberHandle {
    return new ProberHandle(
      { concurrency: options.concurrency ?? 256, batchMs: options.batchMs ?? 25 },
      options.metrics,
    );
  }

  /** Calls `listener` with every batch of results; returns a function that unsubscribes. */
  subscribe(listener: ResultListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Targets checked now. */
  get size(): number {
    return this.targets.size;
  }

  /**
   * Hands the prober one pod with deepCheckTarget's verdict on it: a target is checked from now
   * on; a pod that is not checked (hostNetwork, no IP, …) stops being checked and is kept, with
   * its reason, in `unchecked()` and the healthgate_deep_check_unchecked_pods metric.
   */
  track(pod: { key: string; namespace: string; pod: string; cohort: Cohort }, verdict: TargetVerdict): void {
    if ("target" in verdict) {
      this.upsert([verdict.target]);
      return;
    }
    if (this.targets.delete(pod.key)) this.send({ type: "remove", keys: [pod.key] });
    this.latestResults.delete(pod.key);
    this.uncheckedPods.set(pod.key, { ...pod, ...verdict.unchecked });
    this.countTargets();
  }

  /** Pods handed over with `track` that are not checked, and why. */
  unchecked(namespace?: string): UncheckedPod[] {
    return [...this.uncheckedPods.values()].filter(
      (p) => namespace === undefined || p.namespace === namespace,
    );
  }

  /** The latest result of a checked pod (by its key), if one arrived since it became a target. */
  latest(key: string): DeepCheckResult | undefined {
    return this.latestResults.get(key);
  }

  /** The latest result of every checked pod (of one namespace, or all) that has one. */
  latestAll(namespace?: string): DeepCheckResult[] {
    return [...this.latestResults.values()].filter(
      (r) => namespace === undefined || r.namespace === namespace,
    );
  }

  /** Adds targets or changes them; targets equal to what the worker already has cost nothing. */
  upsert(targets: readonly ProbeTarget[]): void {
    for (const target of targets) this.uncheckedPods.delete(target.key);
    const changed = targets.filter((target) => {
      const json = JSON.stringify(target);
      if (this.targets.get(target.key)?.json === json) return false;
      this.targets.set(target.key, { target, json });
      return true;
    });
    if (changed.length > 0) this.send({ type: "upsert", targets: changed });
    this.countTargets();
  }

  /** Stops checking these pods; a probe of one of them that is running now gives no result. */
  remove(keys: readonly string[]): void {
    for (const key of keys) {
      this.latestResults.delete(key);
      this.uncheckedPods.delete(key);
    }
    const gone = keys.filter((key) => this.targets.delete(key));
    if (gone.length > 0) this.send({ type: "remove", keys: gone });
    this.countTargets();
  }

  /** Makes the checked set exactly `targets` (after a relist): sends only the differences. */
  sync(targets: readonly ProbeTarget[]): void {
    const wanted = new Set(targets.map((t) => t.key));
    this.remove([...this.targets.keys()].filter((key) => !wanted.has(key)));
    this.upsert(targets);
  }

  /** Stops the worker (in-flight probes are aborted and give no result). */
  async stop(): Promise<void> {
    if (this.stopped) return this.exited;
    this.stopped = true;
    const worker = this.worker;
    if (!worker) return;
    worker.postMessage({ type: "stop" } satisfies ToWorker);
    const killer = setTimeout(() => void worker.terminate(), 5_000);
    await this.exited;
    clearTimeout(killer);
  }

  private send(message: ToWorker): void {
    if (this.stopped) return;
    // Removals need no thread; the first target starts it.
    if (!this.worker && message.type !== "upsert") return;
    this.worker ??= this.startWorker();
    this.worker.postMessage(message);
  }

  private receive(message: FromWorker): void {
    if (message.type !== "results") return;
    if (this.metrics) {
      recordResults(this.metrics, message.results, message.sent);
      if (message.overruns > 0) this.metrics.overruns.inc(message.overruns);
      this.metrics.inFlight.set(message.inFlight);
    }
    if (message.results.length === 0) return;
    for (const result of message.results) {
      // A result that crossed a remove on the way is not kept: the pod is no longer checked.
      if (this.targets.has(result.key)) this.latestResults.set(result.key, result);
    }
    for (const listener of this.listeners) listener(message.results);
  }

  private countTargets(): void {
    if (!this.metrics) return;
    const counts = { new: 0, stable: 0 };
    for (const { target } of this.targets.values()) counts[target.cohort]++;
    for (const cohort of COHORTS) this.metrics.targets.set({ cohort }, counts[cohort]);
    const unchecked = new Map<UncheckedReason, number>(UNCHECKED_REASONS.map((r) => [r, 0]));
    for (const { reason } of this.uncheckedPods.values())
      unchecked.set(reason, (unchecked.get(reason) ?? 0) + 1);
    for (const [reason, n] of unchecked) this.metrics.unchecked.set({ reason }, n);
  }
}
