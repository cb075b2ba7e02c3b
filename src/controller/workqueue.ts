// The one work queue (client-go's workqueue semantics). A key is a `namespace/name`:
//   - dedupe: a key waiting in the queue is there once, however often it was added;
//   - one at a time: a key added while a worker has it runs again after that worker is done;
//   - addAfter keeps only the earliest pending deadline of a key, and a key taken by a worker
//     loses its deadline: the run about to start decides when the key is next due;
//   - backoff(key) is the retry delay after a failure: per-key exponential, never faster than
//     a token bucket shared by all keys; forget(key) resets it after a success;
//   - at most `concurrency` keys are processed at once;
//   - add(key, { low: true }) queues behind every key added without it (controller-runtime's
//     priority queue): the fan-out of one policy edit to 1,000 Deployments waits behind a single
//     change someone just made, instead of that change waiting behind all 1,000. A low key added
//     again without it moves up;
//   - addPaced(key, ms) runs a key at most once per `ms` (from the start of one run to the next)
//     however often it is added: an aggregate over many objects (a policy's status over its
//     Deployments) is recomputed once per interval while they churn, not once per change.
import { exponentialDelay, TokenBucket, type BackoffPolicy } from "../kube/backoff.ts";
import { systemClock, type Clock, type TimerHandle } from "../kube/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";

export type KeyHandler = (key: string) => Promise<void>;

export interface WorkQueueOptions {
  /** Label value in the workqueue metrics. */
  name: string;
  concurrency: number;
  /** Per-key retry delays: base × 2^failures, capped. */
  backoff?: BackoffPolicy;
  /** Retries of all keys together, per second after `burst`. */
  retryRate?: { perSecond: number; burst: number };
  metrics: HealthgateMetrics;
  logger: Logger;
  clock?: Clock;
}

export class WorkQueue {
  private readonly handler: KeyHandler;
  private readonly options: WorkQueueOptions;
  private readonly clock: Clock;
  private readonly backoffPolicy: BackoffPolicy;
  private readonly retryBucket: TokenBucket;
  /** Waiting for a worker, in arrival order (a Set keeps insertion order and dedupes). */
  private readonly ready = new Set<string>();
  /** Waiting at low priority: taken only when `ready` is empty. */
  private readonly readyLow = new Set<string>();
  private readonly processing = new Set<string>();
  /** Added while being processed: run again once the current run ends. */
  private readonly addedWhileProcessing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: TimerHandle }>();
  private readonly failures = new Map<string, number>();
  /** Keys added with addPaced: when their last run started, and their interval. */
  private readonly paced = new Map<string, { startedAt: number; intervalMs: number }>();
  private closed = false;
  private idle: PromiseWithResolvers<void> | undefined;

  constructor(handler: KeyHandler, options: WorkQueueOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new Error(`work queue ${options.name}: concurrency must be a positive integer`);
    }
    this.handler = handler;
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.backoffPolicy = options.backoff ?? { baseMs: 5, capMs: 300_000 };
    const rate = options.retryRate ?? { perSecond: 10, burst: 100 };
    this.retryBucket = new TokenBucket(rate.perSecond, rate.burst, this.clock);
  }

  get depth(): number {
    return this.ready.size + this.readyLow.size;
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  add(key: string, { low = false }: { low?: boolean } = {}): void {
    if (this.closed) return;
    this.options.metrics.workqueueAdds.inc({ queue: this.options.name });
    if (this.processing.has(key)) {
      this.addedWhileProcessing.add(key);
      return;
    }
    if (low) {
      if (!this.ready.has(key)) this.readyLow.add(key);
    } else {
      this.readyLow.delete(key);
      this.ready.add(key);
    }
    this.pump();
  }

  /** Adds `key` once `delayMs` have passed, unless an earlier deadline is already pending. */
  addAfter(key: string, delayMs: number, options: { low?: boolean } = {}): void {
    if (this.closed) return;
    if (delayMs <= 0) return this.add(key, options);
    // A key about to run needs no later reminder: the run decides its next requeue itself.
    if (this.ready.has(key) || this.readyLow.has(key)) return;
    const at = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.clock.clearTimeout(pending.timer);
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key, options);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /**
   * Adds `key` so that it runs at most once per `intervalMs`: at once when its last run started
   * at least that long ago (or it never ran), else when the interval since that start is over.
   */
  addPaced(key: string, intervalMs: number, options: { low?: boolean } = {}): void {
    if (this.closed || this.ready.has(key) || this.readyLow.has(key)) return;
    const now = this.clock.now();
    // Forget paces that are over: only keys added this way in the last interval stay here.
    for (const [k, pace] of this.paced) {
      if (now - pace.startedAt >= pace.intervalMs && !this.processing.has(k)) this.paced.delete(k);
    }
    const last = this.paced.get(key);
    if (last) last.intervalMs = intervalMs;
    else this.paced.set(key, { startedAt: Number.NEGATIVE_INFINITY, intervalMs });
    const wait = last ? last.startedAt + intervalMs - now : 0;
    if (wait > 0) this.addAfter(key, wait, options);
    else this.add(key, options);
  }

  /** Records a failure of `key` and returns how long to wait before retrying it (ms). */
  backoff(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.options.metrics.workqueueRetries.inc({ queue: this.options.name });
    return Math.max(exponentialDelay(failures, this.backoffPolicy), this.retryBucket.reserve());
  }

  /** Forgets the failures of `key`, so its next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /**
   * Stops taking keys. With `drain`, keys already waiting are still processed; without, they are
   * dropped. Either way pending delays are cancelled, and the promise resolves once no worker
   * is busy any more.
   */
  shutdown({ drain = false }: { drain?: boolean } = {}): Promise<void> {
    this.closed = true;
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer);
    this.delayed.clear();
    this.paced.clear();
    if (!drain) {
      this.ready.clear();
      this.readyLow.clear();
      this.addedWhileProcessing.clear();
    }
    this.updateDepth();
    this.idle ??= Promise.withResolvers<void>();
    this.settleIfIdle();
    return this.idle.promise;
  }

  private pump(): void {
    while (this.processing.size < this.options.concurrency) {
      const key = this.ready.values().next().value ?? this.readyLow.values().next().value;
      if (key === undefined) break;
      this.ready.delete(key);
      this.readyLow.delete(key);
      this.cancelDelayed(key);
      this.processing.add(key);
      const pace = this.paced.get(key);
      if (pace) pace.startedAt = this.clock.now();
      void this.process(key);
    }
    this.updateDepth();
  }

  private async process(key: string): Promise<void> {
    const startedAt = this.clock.now();
    try {
      await this.handler(key);
    } catch (err) {
      // The reconcile loop handles its own errors; this only guards the queue's bookkeeping.
      this.options.logger.error({ err, key }, "work queue handler threw");
    }
    this.options.metrics.workqueueWorkDuration.observe(
      { queue: this.options.name },
      (this.clock.now() - startedAt) / 1000,
    );
    this.processing.delete(key);
    if (this.addedWhileProcessing.delete(key)) this.ready.add(key);
    this.pump();
    this.settleIfIdle();
  }

  private cancelDelayed(key: string): void {
    const pending = this.delayed.get(key);
    if (!pending) return;
    this.clock.clearTimeout(pending.timer);
    this.delayed.delete(key);
  }

  private updateDepth(): void {
    this.options.metrics.workqueueDepth.set({ queue: this.options.name }, this.depth);
  }

  private settleIfIdle(): void {
    if (this.idle && this.processing.size === 0 && this.depth === 0) this.idle.resolve();
  }
}
