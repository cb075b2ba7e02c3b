// A short memory of metrics.k8s.io. The API answers only each pod's latest sample, while the
// headroom concern's Metrics source wants the peak over a window (default 1h), so this polls
// the namespaces that have a Metrics-source policy and keeps each pod's samples for as long as
// the longest window asked there. In memory only: a restarted or newly elected operator starts
// with an empty history and reports the peak of what it has seen since.
import type { PodUsageSample } from "../api/k8s.ts";
import { durationSeconds } from "../api/v1alpha1/common.ts";
import type { HealthPolicy } from "../api/v1alpha1/index.ts";
import type { Logger } from "../observability/logger.ts";
import { apiErrorMessage, resources, statusCodeOf, type KubeClient } from "./client.ts";
import { sleep, type Clock } from "./clock.ts";

/** The longest history kept, whatever window a policy asks for. */
export const MAX_RETENTION_SECONDS = 24 * 3600;
const DEFAULT_INTERVAL_MS = 30_000;
/** 24 h at the default interval; bounds memory when metrics-server samples faster than we poll. */
const DEFAULT_MAX_SAMPLES_PER_POD = 2880;

/** The window a Metrics-source policy looks back over, in seconds (the headroom concern's default: 1h). */
export function metricsWindowSeconds(policy: HealthPolicy): number {
  return durationSeconds(policy.spec.headroom?.window ?? "1h") || 3600;
}

/** One item of a PodMetricsList (metrics.k8s.io/v1beta1). */
interface PodMetrics {
  metadata: { name: string; namespace?: string };
  timestamp?: string;
  containers?: { name: string; usage?: { cpu?: string; memory?: string } }[];
}

export interface PodMetricsHistoryOptions {
  /** Only `list` is used (unit tests pass a stub). */
  client: Pick<KubeClient, "list">;
  /** Namespace → longest window (seconds) its Metrics-source policies ask; read on every poll. */
  targets: () => ReadonlyMap<string, number>;
  clock: Clock;
  logger: Logger;
  /** Called after a poll that brought new samples (or dropped pods) in a namespace. */
  onChange?: (namespace: string) => void;
  /** Default 30 s. */
  intervalMs?: number;
  maxSamplesPerPod?: number;
}

interface NamespaceHistory {
  /** Whether the last answer said metrics.k8s.io is not there (404, 503). */
  unavailable: boolean;
  /** Whether any poll succeeded: before that there is nothing to judge. */
  collected: boolean;
  byPod: Map<string, PodUsageSample[]>;
}

export class PodMetricsHistory {
  private readonly o: PodMetricsHistoryOptions;
  private readonly namespaces = new Map<string, NamespaceHistory>();
  private running: { controller: AbortController; done: Promise<void> } | undefined;

  constructor(options: PodMetricsHistoryOptions) {
    this.o = options;
  }

  /**
   * The samples of `podNames` taken in the `windowSeconds` before `now`; "unavailable" when
   * metrics.k8s.io is not served or nothing was collected in the namespace yet. An empty
   * array means it answered, with no sample of these pods.
   */
  samples(
    namespace: string,
    podNames: readonly string[],
    windowSeconds: number,
    now: Date,
  ): PodUsageSample[] | "unavailable" {
    const history = this.namespaces.get(namespace);
    if (!history?.collected || history.unavailable) return "unavailable";
    const since = now.getTime() - windowSeconds * 1000;
    return podNames.flatMap((pod) =>
      (history.byPod.get(pod) ?? []).filter((s) => {
        const at = Date.parse(s.timestamp);
        return at >= since && at <= now.getTime();
      }),
    );
  }

  /** Polls every interval until `signal` aborts or stop() is called. Never rejects. */
  start(signal: AbortSignal): void {
    if (this.running) return;
    const controller = new AbortController();
    signal.addEventListener("abort", () => controller.abort(), { once: true });
    const done = (async () => {
      while (!controller.signal.aborted) {
        await this.poll(controller.signal);
        await sleep(this.o.clock, this.o.intervalMs ?? DEFAULT_INTERVAL_MS, controller.signal).catch(
          () => undefined,
        );
      }
    })();
    this.running = { controller, done };
  }

  async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    running?.controller.abort();
    await running?.done;
  }

  /** One round over every target namespace; forgets namespaces no longer targeted. */
  async poll(signal?: AbortSignal): Promise<void> {
    const targets = this.o.targets();
    for (const namespace of this.namespaces.keys()) {
      if (!targets.has(namespace)) this.namespaces.delete(namespace);
    }
    for (const [namespace, windowSeconds] of targets) {
      if (signal?.aborted) return;
      const changed = await this.pollNamespace(namespace, windowSeconds, signal);
      if (changed) this.o.onChange?.(namespace);
    }
  }

  /** Whether the namespace's history changed. */
  private async pollNamespace(
    namespace: string,
    windowSeconds: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const history = this.namespaces.get(namespace) ?? {
      unavailable: false,
      collected: false,
      byPod: new Map<string, PodUsageSample[]>(),
    };
    this.namespaces.set(namespace, history);
    let items: PodMetrics[];
    try {
      items = (await this.o.client.list(resources.podMetrics, namespace, {}, signal)).items as PodMetrics[];
    } catch (err) {
      if (signal?.aborted) return false;
      const code = statusCodeOf(err);
      const wasUnavailable = history.unavailable;
      // 404: no APIService for metrics.k8s.io; 503: registered but its backend is not answering.
      // Other failures are transient: keep the history and the verdict, try again next tick.
      if (code === 404 || code === 503) history.unavailable = true;
      this.o.logger.warn(
        { namespace, kind: resources.podMetrics.kind, reason: apiErrorMessage(err) },
        "listing pod metrics failed",
      );
      return history.unavailable !== wasUnavailable;
    }
    let changed = history.unavailable || !history.collected;
    history.unavailable = false;
    history.collected = true;

    const retentionMs = Math.min(windowSeconds, MAX_RETENTION_SECONDS) * 1000;
    const oldest = this.o.clock.now() - retentionMs;
    const maxSamples = this.o.maxSamplesPerPod ?? DEFAULT_MAX_SAMPLES_PER_POD;
    const seen = new Set<string>();
    for (const item of items) {
      const pod = item.metadata.name;
      seen.add(pod);
      const kept = (history.byPod.get(pod) ?? []).filter((s) => Date.parse(s.timestamp) >= oldest);
      const sample = toSample(item);
      // metrics-server answers the same sample until its next scrape.
      if (sample && kept.at(-1)?.timestamp !== sample.timestamp) {
        kept.push(sample);
        changed = true;
      }
      history.byPod.set(pod, kept.slice(-maxSamples));
    }
    for (const pod of history.byPod.keys()) {
      if (!seen.has(pod)) {
        history.byPod.delete(pod);
        changed = true;
      }
    }
    return changed;
  }
}

function toSample(item: PodMetrics): PodUsageSample | undefined {
  if (!item.timestamp || Number.isNaN(Date.parse(item.timestamp))) return undefined;
  return {
    pod: item.metadata.name,
    timestamp: item.timestamp,
    containers: (item.containers ?? []).map((c) => ({
      name: c.name,
      ...(c.usage?.cpu !== undefined ? { cpu: c.usage.cpu } : {}),
      ...(c.usage?.memory !== undefined ? { memory: c.usage.memory } : {}),
    })),
  };
}
