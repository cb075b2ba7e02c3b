// Events leave the reconcile: a reconcile hands its Events here and goes on; a few senders
// create them in the background, oldest first. A reconcile used to await each Event it raised
// (about two per Deployment when a policy edit flips conditions), so the Events of one edit took
// as many API requests in the workers' path as the status writes themselves, and every
// Deployment's conditions waited behind the Events of those before it. client-go records Events
// the same way (its broadcaster's buffered channel, drained by its own goroutine).
//
// Events also yield to the writes that matter more: at most `perSecond` are created (25 after a
// burst of 100), so a policy edit that flips conditions on 1,000 Deployments spends the API
// server's throughput on their status first and narrates the flips right after (client-go's
// Event sink goes through its client's rate limiter too).
//
// Best effort, as before: a refused or failed Event is logged and counted, never retried, and
// never fails anything. The queue is bounded; an Event over the bound is dropped and counted
// (client-go drops past 1,000 too). An Event of a leadership term that has ended is dropped
// unsent: each carries its term's abort signal.
import type { Logger } from "../observability/logger.ts";
import { apiErrorMessage, isRefused, type KubeObject } from "./client.ts";

export interface EventSinkOptions {
  create: (event: KubeObject, signal: AbortSignal) => Promise<unknown>;
  logger: Logger;
  /** An Event the API server refused (healthgate_writes_refused_total{write="event"}). */
  refused?: () => void;
  /** An Event never sent, and why (healthgate_events_dropped_total). */
  dropped?: (reason: "QueueFull" | "TermEnded") => void;
  /** How many wait or are in flight now (healthgate_events_pending). */
  pending?: (count: number) => void;
  /** Events created at once. Default 2. */
  concurrency?: number;
  /** Events waiting at most; more are dropped. Default 5,000. */
  capacity?: number;
  /** Events created per second at most, after a burst of `burst`. Default 25 and 100. */
  perSecond?: number;
  burst?: number;
  /** Milliseconds now (tests). Default Date.now. */
  now?: () => number;
}

interface Queued {
  event: KubeObject;
  signal: AbortSignal;
}

export class EventSink {
  private readonly queue: Queued[] = [];
  private head = 0;
  private active = 0;
  private idle: (() => void)[] = [];
  private readonly o: EventSinkOptions;
  private readonly concurrency: number;
  private readonly capacity: number;
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private refilledAt: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: EventSinkOptions) {
    this.o = options;
    this.concurrency = options.concurrency ?? 2;
    this.capacity = options.capacity ?? 5_000;
    this.perSecond = options.perSecond ?? 25;
    this.burst = options.burst ?? 100;
    this.now = options.now ?? Date.now;
    this.tokens = this.burst;
    this.refilledAt = this.now();
  }

  /** Takes a token if one is there; else how long until one is (ms). */
  private take(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }

  /** Events waiting to be created, in-flight ones included. */
  get size(): number {
    return this.queue.length - this.head + this.active;
  }

  /** Queues an Event; it is created unless `signal` aborts before its turn. Never throws. */
  record(event: KubeObject, signal: AbortSignal): void {
    if (this.queue.length - this.head >= this.capacity) {
      this.o.dropped?.("QueueFull");
      this.o.logger.warn(
        {
          namespace: event.metadata.namespace,
          reason: (event as { reason?: string }).reason,
          capacity: this.capacity,
        },
        "event dropped: too many events waiting",
      );
      return;
    }
    this.queue.push({ event, signal });
    this.o.pending?.(this.size);
    this.pump();
  }

  /** Resolves once every queued Event was created, failed or dropped (tests, shutdown). */
  drained(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    if (this.timer) return;
    while (this.active < this.concurrency && this.head < this.queue.length) {
      if (!this.queue[this.head]!.signal.aborted) {
        const wait = this.take();
        if (wait > 0) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, wait);
          this.timer.unref();
          return;
        }
      }
      const next = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Queued;
      if (this.head > 1_024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      if (next.signal.aborted) {
        this.o.dropped?.("TermEnded");
        continue;
      }
      this.active++;
      void this.send(next).finally(() => {
        this.active--;
        this.o.pending?.(this.size);
        this.pump();
        if (this.size === 0) for (const resolve of this.idle.splice(0)) resolve();
      });
    }
    if (this.size === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  private async send({ event, signal }: Queued): Promise<void> {
    try {
      await this.o.create(event, signal);
    } catch (err) {
      if (signal.aborted) {
        this.o.dropped?.("TermEnded");
        return;
      }
      if (isRefused(err)) this.o.refused?.();
      const e = event as { regarding?: { kind?: string; name?: string }; reason?: string };
      this.o.logger.warn(
        {
          namespace: event.metadata.namespace,
          name: e.regarding?.name,
          kind: e.regarding?.kind,
          reason: e.reason,
          err: apiErrorMessage(err),
        },
        "could not record event",
      );
    }
  }
}
