// The reconcile contract (kube-rs): `reconcile(key) → Action`, `errorPolicy(key, err) → Action`.
// A reconcile is level-triggered and never told why it runs; it reads the world for its key,
// converges it and says when to look again. `nextAction` below is the one place that decides
// between "done", "requeue after" and "back off".
import type { Clock } from "../kube/clock.ts";
import type { BackoffPolicy } from "../kube/backoff.ts";
import { splitKey } from "../kube/keys.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import { WorkQueue } from "./workqueue.ts";

/** What to do with a key after a reconcile: nothing until the next event, or look again later. */
export interface Action {
  requeueAfterMs?: number;
}

export const awaitChange = (): Action => ({});
export const requeueAfter = (ms: number): Action => ({ requeueAfterMs: ms });

export interface Reconciler {
  /** `signal` aborts when this replica stops leading: stop writing at once. */
  reconcile(key: string, signal: AbortSignal): Promise<Action>;
  /**
   * What a failed reconcile does next. `backoffMs` is the queue's per-key exponential delay;
   * without an errorPolicy the key is retried after it. Permanent errors (a bad spec) are
   * better reported in status by `reconcile` itself, returning normally.
   */
  errorPolicy?(key: string, err: unknown, backoffMs: number): Action;
}

export interface ReconcileLoopOptions {
  name: string;
  concurrency: number;
  backoff?: BackoffPolicy;
  retryRate?: { perSecond: number; burst: number };
  metrics: HealthgateMetrics;
  logger: Logger;
  clock?: Clock;
}

type Result = "success" | "requeue" | "error";

export class ReconcileLoop {
  private readonly reconciler: Reconciler;
  private readonly options: ReconcileLoopOptions;
  private queue: WorkQueue | undefined;

  constructor(reconciler: Reconciler, options: ReconcileLoopOptions) {
    this.reconciler = reconciler;
    this.options = options;
  }

  /**
   * Queues a reconcile of `key` (informer handlers call this). Ignored while not running:
   * a standby keeps its caches warm but queues nothing, and `run` starts from every key.
   */
  enqueue(key: string, options?: { low?: boolean }): void {
    this.queue?.add(key, options);
  }

  /** Queues a reconcile of `key` that runs at most once per `intervalMs` (WorkQueue.addPaced). */
  enqueuePaced(key: string, intervalMs: number, options?: { low?: boolean }): void {
    this.queue?.addPaced(key, intervalMs, options);
  }

  /**
   * Reconciles until `signal` aborts (leadership lost or shutdown), then waits for the
   * reconciles in flight. Each run starts with a fresh queue: no backoff carries over.
   */
  async run(signal: AbortSignal, initialKeys: Iterable<string>): Promise<void> {
    if (this.queue) throw new Error(`reconcile loop ${this.options.name} is already running`);
    const { name, concurrency, backoff, retryRate, metrics, logger, clock } = this.options;
    const queue: WorkQueue = new WorkQueue((key) => this.reconcileOne(queue, key, signal), {
      name,
      concurrency,
      backoff,
      retryRate,
      metrics,
      logger,
      clock,
    });
    this.queue = queue;
    for (const key of initialKeys) queue.add(key);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    this.queue = undefined;
    await queue.shutdown();
  }

  private async reconcileOne(queue: WorkQueue, key: string, signal: AbortSignal): Promise<void> {
    const startedAt = performance.now();
    let result: Result;
    let action: Action;
    try {
      action = await this.reconciler.reconcile(key, signal);
      queue.forget(key);
      result = action.requeueAfterMs === undefined ? "success" : "requeue";
    } catch (err) {
      result = "error";
      action = this.nextAction(queue, key, err, signal);
    }
    if (action.requeueAfterMs !== undefined) queue.addAfter(key, action.requeueAfterMs);
    const { metrics } = this.options;
    const ms = performance.now() - startedAt;
    this.options.logger.debug(
      { key, result, ms: Math.round(ms), requeueAfterMs: action.requeueAfterMs },
      "reconciled",
    );
    // Keys are `Kind/namespace/name`.
    const kind = key.slice(0, key.indexOf("/"));
    metrics.reconcileTotal.inc({ kind, result });
    metrics.reconcileDuration.observe({ kind, result }, ms / 1000);
  }

  private nextAction(queue: WorkQueue, key: string, err: unknown, signal: AbortSignal): Action {
    const backoffMs = queue.backoff(key);
    const action = this.reconciler.errorPolicy?.(key, err, backoffMs) ?? requeueAfter(backoffMs);
    // A reconcile cut short by losing leadership is not worth an error line.
    if (!signal.aborted) {
      this.options.logger.warn(
        { ...describeKey(key), err, retryInMs: action.requeueAfterMs },
        "reconcile failed",
      );
    }
    return action;
  }
}

/** Log keys for a work-queue key: `namespace/name`, or `Kind/namespace/name` as the operator's keys are. */
function describeKey(key: string): { kind?: string; namespace?: string; name: string } {
  const parts = key.split("/");
  if (parts.length === 3) return { kind: parts[0]!, namespace: parts[1]!, name: parts[2]! };
  return splitKey(key);
}
