// The main thread's side of the prober: starts the worker, hands it target changes, and passes
// its results on — to metrics, and to whoever subscribed (the rollout, later). Thin on purpose:
// everything that must keep time lives in the worker.
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { DeepCheckMetrics } from "./metrics.ts";
import { recordResults } from "./metrics.ts";
import type { FromWorker, ToWorker, WorkerConfig } from "./protocol.ts";
import { COHORTS, type DeepCheckResult, type ProbeTarget } from "./types.ts";

export interface ProberOptions {
  /** Probes in flight at most (default 256). */
  concurrency?: number;
  /** Results arrive in batches at most this often (default 25 ms). */
  batchMs?: number;
  metrics?: DeepCheckMetrics;
}

export type ResultListener = (results: readonly DeepCheckResult[]) => void;

/** Keeps the worker's file type: worker.ts under Node's type stripping and vitest, worker.js when built. */
const workerUrl = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export class ProberHandle {
  private readonly worker: Worker;
  private readonly listeners = new Set<ResultListener>();
  private readonly targets = new Map<string, { target: ProbeTarget; json: string }>();
  private readonly exited: Promise<void>;
  private stopped = false;
  private readonly metrics: DeepCheckMetrics | undefined;

  private constructor(config: WorkerConfig, metrics: DeepCheckMetrics | undefined) {
    this.metrics = metrics;
    this.worker = new Worker(workerUrl, { workerData: config, name: "healthgate-prober" });
    this.worker.on("message", (message: FromWorker) => this.receive(message));
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.on("error", (err) => {
      throw new Error(`the deep-check prober's thread failed: ${err.message}`, { cause: err });
    });
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

  /** Adds targets or changes them; targets equal to what the worker already has cost nothing. */
  upsert(targets: readonly ProbeTarget[]): void {
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
    this.send({ type: "stop" });
    const killer = setTimeout(() => void this.worker.terminate(), 5_000);
    await this.exited;
    clearTimeout(killer);
  }

  private send(message: ToWorker): void {
    if (!this.stopped || message.type === "stop") this.worker.postMessage(message);
  }

  private receive(message: FromWorker): void {
    if (message.type !== "results") return;
    if (this.metrics) {
      recordResults(this.metrics, message.results, message.sent);
      if (message.overruns > 0) this.metrics.overruns.inc(message.overruns);
      this.metrics.inFlight.set(message.inFlight);
    }
    if (message.results.length === 0) return;
    for (const listener of this.listeners) listener(message.results);
  }

  private countTargets(): void {
    if (!this.metrics) return;
    const counts = { new: 0, stable: 0 };
    for (const { target } of this.targets.values()) counts[target.cohort]++;
    for (const cohort of COHORTS) this.metrics.targets.set({ cohort }, counts[cohort]);
  }
}
