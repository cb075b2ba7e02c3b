// One prom-client Registry per process, created by `healthgate run` and handed to every
// component. Names are `healthgate_*` with base units (`_seconds`, `_total`).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export type RelistReason = "initial" | "gone" | "watchdog" | "error" | "resync" | "filter";

export interface HealthgateMetrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<"kind" | "result">;
  readonly reconcileDuration: Histogram<"kind" | "result">;
  readonly workqueueDepth: Gauge<"queue">;
  readonly workqueueAdds: Counter<"queue">;
  readonly workqueueRetries: Counter<"queue">;
  readonly workqueueWorkDuration: Histogram<"queue">;
  readonly apiRequests: Counter<"verb" | "resource" | "code">;
  readonly watchRestarts: Counter<"resource">;
  readonly watchRelists: Counter<"resource" | "reason">;
  /** Objects a watchdog or resync relist found changed: events the watch never delivered. */
  readonly watchSilentChanges: Counter<"resource">;
  readonly leader: Gauge<"lease">;
  /** Writes the API server refused (400, 403, 422): the ones that cannot report themselves in status too. */
  readonly writesRefused: Counter<"write" | "resource">;
  readonly eventsDropped: Counter<"reason">;
  readonly eventsPending: Gauge;
  /**
   * Reports, at scrape time, the seconds since a watch last showed life (an event or a
   * bookmark). Several informers of one resource (one per namespace) report their oldest.
   * Returns a function that stops tracking.
   */
  trackWatchActivity(resource: string, secondsSinceActivity: () => number): () => void;
}

export interface MetricsOptions {
  /** Also export Node's process metrics (`process_*`, `nodejs_*`, unprefixed as dashboards expect). */
  processMetrics?: boolean;
}

export function createMetrics({ processMetrics = false }: MetricsOptions = {}): HealthgateMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (processMetrics) collectDefaultMetrics({ register: registry });

  const activity = new Map<symbol, { resource: string; secondsSinceActivity: () => number }>();
  new Gauge({
    name: "healthgate_watch_last_event_age_seconds",
    help: "Seconds since the watch of a resource last delivered an event or bookmark.",
    labelNames: ["resource"],
    registers,
    collect() {
      this.reset();
      const oldest = new Map<string, number>();
      for (const { resource, secondsSinceActivity } of activity.values()) {
        oldest.set(resource, Math.max(oldest.get(resource) ?? 0, secondsSinceActivity()));
      }
      for (const [resource, seconds] of oldest) this.set({ resource }, seconds);
    },
  });

  return {
    registry,
    reconcileTotal: new Counter({
      name: "healthgate_reconcile_total",
      help: "Reconciles by what was reconciled (Deployment, HealthPolicy) and result (success, requeue, error).",
      labelNames: ["kind", "result"],
      registers,
    }),
    reconcileDuration: new Histogram({
      name: "healthgate_reconcile_duration_seconds",
      help: "Time one reconcile took, by what was reconciled and result.",
      labelNames: ["kind", "result"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    workqueueDepth: new Gauge({
      name: "healthgate_workqueue_depth",
      help: "Keys ready to be processed and waiting for a worker.",
      labelNames: ["queue"],
      registers,
    }),
    workqueueAdds: new Counter({
      name: "healthgate_workqueue_adds_total",
      help: "Keys added to the work queue (before deduplication).",
      labelNames: ["queue"],
      registers,
    }),
    workqueueRetries: new Counter({
      name: "healthgate_workqueue_retries_total",
      help: "Keys scheduled for a retry after a failure.",
      labelNames: ["queue"],
      registers,
    }),
    workqueueWorkDuration: new Histogram({
      name: "healthgate_workqueue_work_duration_seconds",
      help: "Time a worker spent on one key.",
      labelNames: ["queue"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    apiRequests: new Counter({
      name: "healthgate_api_requests_total",
      help: "Requests to the Kubernetes API by verb, resource and HTTP code ('error' when no response came).",
      labelNames: ["verb", "resource", "code"],
      registers,
    }),
    watchRestarts: new Counter({
      name: "healthgate_watch_restarts_total",
      help: "Watches restarted after an error or an early close (routine server-side timeouts excluded).",
      labelNames: ["resource"],
      registers,
    }),
    watchRelists: new Counter({
      name: "healthgate_watch_relists_total",
      help: "Full relists by reason (initial, gone, watchdog, error, resync, filter).",
      labelNames: ["resource", "reason"],
      registers,
    }),
    watchSilentChanges: new Counter({
      name: "healthgate_watch_silent_changes_total",
      help: "Objects a watchdog or resync relist found changed although the watch never said so.",
      labelNames: ["resource"],
      registers,
    }),
    leader: new Gauge({
      name: "healthgate_leader",
      help: "1 while this replica holds the leader lease, else 0.",
      labelNames: ["lease"],
      registers,
    }),
    writesRefused: new Counter({
      name: "healthgate_writes_refused_total",
      help:
        "Writes of healthgate's that the API server refused (400, 403 or 422: invalid, or forbidden by RBAC or an " +
        "admission policy), by write (status, event, owned-object, release) and resource. A refused status or Event write " +
        "cannot say so in status: this and a log line are its only trace.",
      labelNames: ["write", "resource"],
      registers,
    }),
    eventsDropped: new Counter({
      name: "healthgate_events_dropped_total",
      help:
        "Events healthgate never created, by reason: QueueFull (more than 5,000 waiting to be sent) or TermEnded " +
        "(raised in a leadership term that ended before its turn).",
      labelNames: ["reason"],
      registers,
    }),
    eventsPending: new Gauge({
      name: "healthgate_events_pending",
      help: "Events raised by reconciles and not yet created (sent in the background, oldest first, at most 25 per second after a burst of 100).",
      registers,
    }),
    trackWatchActivity(resource, secondsSinceActivity) {
      const id = Symbol(resource);
      activity.set(id, { resource, secondsSinceActivity });
      return () => activity.delete(id);
    },
  };
}

/** For concerns that export their own gauges; the type keeps the `healthgate_` prefix. */
export function defineGauge<L extends string>(
  metrics: HealthgateMetrics,
  config: { name: `healthgate_${string}`; help: string; labelNames?: readonly L[] },
): Gauge<L> {
  return new Gauge<L>({ ...config, registers: [metrics.registry] });
}
