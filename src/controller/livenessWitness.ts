// The background deep check and its liveness witness, thin (src/policy/guard/liveness.ts
// decides). With spec.rollout.deepCheck.background set, healthgate deep-checks a small sample of
// each governed Deployment's stable pods (the oldest running ones) at a low rate, through the
// same prober as rollouts (its own target keys, cohort "stable"). Reads of the API server happen
// only during an outage (the deep check failing on two or more sampled pods): one list of each
// failing pod's "Unhealthy" Events (field selector on the pod's uid and the reason), at most once
// per background interval. Off without the field: no target, no read.
import type { Pod } from "../api/k8s.ts";
import type { HealthPolicy } from "../api/v1alpha1/index.ts";
import { type KubeClient, resources } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import type { Logger } from "../observability/logger.ts";
import {
  type DeepInPractice,
  isLivenessFailure,
  type LivenessEvent,
  type SampledPod,
  stepWitness,
  type WitnessState,
} from "../policy/guard/liveness.ts";
import type { ProberHandle } from "../prober/handle.ts";
import { deepCheckTarget } from "../prober/targets.ts";
import type { DeepCheckResult, ProbeTarget } from "../prober/types.ts";

/** A background target's key: the pod's uid and this suffix, apart from a rollout's target of the same pod. */
const KEY_SUFFIX = "/background";
/** Events read per pod at most (one page). */
const EVENTS_LIMIT = 50;
/**
 * Events lists per second at most, over every Deployment (a token bucket of EVENT_READ_BURST): an
 * outage of a dependency many Deployments share would otherwise list every failing sampled pod's
 * Events at once. A read over the budget waits for a later look.
 */
export const EVENT_READS_PER_SECOND = 5;
export const EVENT_READ_BURST = 20;

interface Sample {
  uid: string;
  name: string;
  failures: number;
  failingSince?: number;
  restarts: number;
  restartsAtPass?: number;
  events: LivenessEvent[];
  eventsReadAt?: number;
}

interface Watched {
  namespace: string;
  deployment: string;
  samples: Map<string, Sample>;
  state: WitnessState;
  failureThreshold: number;
}

export interface LivenessWitnessOptions {
  client: KubeClient;
  clock: Clock;
  logger: Logger;
  prober: () => ProberHandle | undefined;
  enqueue: (namespace: string, name: string) => void;
  /** Default EVENT_READS_PER_SECOND and EVENT_READ_BURST. */
  eventReads?: { perSecond: number; burst: number };
}

const restartsOf = (pod: Pod) =>
  (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);
const running = (pod: Pod) =>
  pod.status?.phase === "Running" && !pod.metadata.deletionTimestamp && pod.status.podIP !== undefined;
const ready = (pod: Pod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
const created = (pod: Pod) => Date.parse(pod.metadata.creationTimestamp ?? "") || 0;

interface EventItem {
  reason?: string;
  note?: string;
  eventTime?: string | null;
  deprecatedFirstTimestamp?: string | null;
  deprecatedLastTimestamp?: string | null;
  deprecatedCount?: number;
  series?: { count?: number; lastObservedTime?: string };
  metadata: { creationTimestamp?: string };
}

const time = (...candidates: (string | null | undefined)[]) => {
  for (const c of candidates) {
    const t = c ? Date.parse(c) : Number.NaN;
    if (Number.isFinite(t) && t > 0) return t;
  }
  return undefined;
};

export class LivenessWitness {
  private readonly o: LivenessWitnessOptions;
  /** Deployment key → what is watched of it. */
  private readonly watched = new Map<string, Watched>();
  /** Prober key → its Deployment key. */
  private readonly owners = new Map<string, string>();
  /** Event lists made (for the bench and tests). */
  eventReads = 0;
  private readonly budget: { perSecond: number; burst: number; tokens: number; at: number };

  constructor(options: LivenessWitnessOptions) {
    this.o = options;
    const { perSecond, burst } = options.eventReads ?? {
      perSecond: EVENT_READS_PER_SECOND,
      burst: EVENT_READ_BURST,
    };
    this.budget = { perSecond, burst, tokens: burst, at: options.clock.now() };
  }

  /** Takes one Events read from the budget, if there is one left now. */
  private takeRead(now: number): boolean {
    const b = this.budget;
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) / 1000) * b.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Prober results of background targets: count failures; a pod crossing the threshold either way requeues. */
  receive(results: readonly DeepCheckResult[]): void {
    const touched = new Set<string>();
    for (const r of results) {
      const owner = this.owners.get(r.key);
      const watched = owner !== undefined ? this.watched.get(owner) : undefined;
      const sample = watched?.samples.get(r.key.slice(0, -KEY_SUFFIX.length));
      if (!watched || !sample || owner === undefined) continue;
      const before = sample.failures >= watched.failureThreshold;
      if (r.outcome === "fail") {
        // Answered wrongly: the dependency behind the deep endpoint. An unreachable pod ("error")
        // says nothing about dependencies and ends a run of failures as a pass does not: it is ignored.
        sample.failures++;
        sample.failingSince ??= r.startedAt;
      } else if (r.outcome === "pass") {
        sample.failures = 0;
        delete sample.failingSince;
        sample.restartsAtPass = sample.restarts;
      }
      if (before !== sample.failures >= watched.failureThreshold) touched.add(owner);
    }
    for (const key of touched) {
      const w = this.watched.get(key)!;
      this.o.enqueue(w.namespace, w.deployment);
    }
  }

  /** The judgement's state for a Deployment (outage, finding, the last outage liveness held through). */
  stateOf(namespace: string, name: string): WitnessState | undefined {
    return this.watched.get(`${namespace}/${name}`)?.state;
  }

  /** Pods sampled now (names) and the background targets the prober has, for a Deployment. */
  sampled(namespace: string, name: string): string[] {
    return [...(this.watched.get(`${namespace}/${name}`)?.samples.values() ?? [])].map((s) => s.name).sort();
  }

  /** The finding for a Deployment (from its last observe), if any. */
  finding(namespace: string, name: string): DeepInPractice | undefined {
    return this.watched.get(`${namespace}/${name}`)?.state.finding;
  }

  /**
   * The Deployment's reconcile: keeps its sample checked (or none without the field), reads the
   * failing pods' liveness Events during an outage, and steps the judgement. Returns when to look
   * again (ms) while an outage lasts.
   */
  async observe(
    policy: HealthPolicy,
    namespace: string,
    name: string,
    pods: readonly Pod[],
    revision: string | undefined,
    signal: AbortSignal,
  ): Promise<number | undefined> {
    const key = `${namespace}/${name}`;
    const background = policy.spec.rollout?.deepCheck.background;
    if (!background) {
      this.forget(namespace, name);
      return undefined;
    }
    const watched: Watched = this.watched.get(key) ?? {
      namespace,
      deployment: name,
      samples: new Map(),
      state: {},
      failureThreshold: background.failureThreshold,
    };
    watched.failureThreshold = background.failureThreshold;
    this.watched.set(key, watched);
    const byUid = new Map(pods.map((p) => [p.metadata.uid ?? "", p]));
    // Keep the sampled pods while they run (an unready pod stays: an outage makes pods unready);
    // fill up with the oldest Ready ones.
    for (const uid of [...watched.samples.keys()]) {
      const pod = byUid.get(uid);
      if (!pod || !running(pod)) watched.samples.delete(uid);
    }
    const candidates = pods
      .filter((p) => running(p) && ready(p) && !watched.samples.has(p.metadata.uid ?? ""))
      .sort((a, b) => created(a) - created(b) || (a.metadata.name < b.metadata.name ? -1 : 1));
    for (const pod of candidates) {
      if (watched.samples.size >= background.sample) break;
      const uid = pod.metadata.uid ?? "";
      const restarts = restartsOf(pod);
      watched.samples.set(uid, {
        uid,
        name: pod.metadata.name,
        failures: 0,
        restarts,
        restartsAtPass: restarts,
        events: [],
      });
    }
    while (watched.samples.size > background.sample) {
      watched.samples.delete([...watched.samples.keys()].pop()!);
    }
    const targets: ProbeTarget[] = [];
    for (const sample of watched.samples.values()) {
      const pod = byUid.get(sample.uid)!;
      sample.restarts = restartsOf(pod);
      const verdict = deepCheckTarget(policy.spec, pod, "stable");
      if (!("target" in verdict)) continue;
      targets.push({
        ...verdict.target,
        key: sample.uid + KEY_SUFFIX,
        intervalMs: background.intervalSeconds * 1000,
      });
    }
    this.target(key, targets);

    const now = this.o.clock.now();
    const intervalMs = background.intervalSeconds * 1000;
    const config = { failureThreshold: background.failureThreshold, intervalMs };
    const view = (): SampledPod[] =>
      [...watched.samples.values()].map((s) => ({
        uid: s.uid,
        name: s.name,
        failures: s.failures,
        ...(s.failingSince !== undefined ? { failingSince: s.failingSince } : {}),
        restarts: s.restarts,
        ...(s.restartsAtPass !== undefined ? { restartsAtPass: s.restartsAtPass } : {}),
        livenessEvents: s.events,
      }));
    const first = stepWitness(watched.state, view(), now, config, revision);
    for (const uid of first.readEventsOf) {
      const sample = watched.samples.get(uid);
      if (!sample || (sample.eventsReadAt !== undefined && now - sample.eventsReadAt < intervalMs)) continue;
      if (!this.takeRead(now)) continue;
      sample.eventsReadAt = now;
      sample.events = await this.livenessEvents(namespace, uid, signal);
    }
    const { state } = stepWitness(watched.state, view(), now, config, revision);
    if (state.finding && state.finding !== watched.state.finding) {
      this.o.logger.info(
        { namespace, name, kind: "Deployment", pods: state.finding.pods.map((p) => p.pod) },
        "liveness failed together with the background deep check: deep in practice",
      );
    }
    watched.state = state;
    // A read the budget deferred is tried at the next look, one interval on (or sooner, when
    // the pods change): the budget refills perSecond × interval reads by then.
    return state.outage ? intervalMs : undefined;
  }

  /** The kubelet's liveness failures on one pod: a bounded list by field selector (uid, reason). */
  private async livenessEvents(
    namespace: string,
    uid: string,
    signal: AbortSignal,
  ): Promise<LivenessEvent[]> {
    this.eventReads++;
    try {
      const list = await this.o.client.list(
        resources.events,
        namespace,
        { fieldSelector: `regarding.uid=${uid},reason=Unhealthy`, limit: EVENTS_LIMIT },
        signal,
      );
      return (list.items as unknown as EventItem[]).flatMap((e) => {
        if (!isLivenessFailure(e.reason, e.note)) return [];
        const at = time(
          e.series?.lastObservedTime,
          e.deprecatedLastTimestamp,
          e.eventTime,
          e.metadata.creationTimestamp,
        );
        if (at === undefined) return [];
        const firstAt = time(e.deprecatedFirstTimestamp, e.eventTime, e.metadata.creationTimestamp) ?? at;
        return [{ at, firstAt: Math.min(firstAt, at), count: e.series?.count ?? e.deprecatedCount ?? 1 }];
      });
    } catch (err) {
      if (signal.aborted) throw err;
      this.o.logger.warn(
        { namespace, uid, err: (err as Error).message },
        "could not read the pod's liveness Events; the liveness witness waits for the next look",
      );
      return [];
    }
  }

  private target(key: string, targets: readonly ProbeTarget[]): void {
    const wanted = new Set(targets.map((t) => t.key));
    const gone = [...this.owners].filter(([k, owner]) => owner === key && !wanted.has(k)).map(([k]) => k);
    for (const k of gone) this.owners.delete(k);
    for (const t of targets) this.owners.set(t.key, key);
    const prober = this.o.prober();
    if (gone.length > 0) prober?.remove(gone);
    if (targets.length > 0) prober?.upsert(targets);
  }

  /** The Deployment is gone, no longer governed, or its policy has no background check. */
  forget(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    if (!this.watched.has(key)) return;
    this.target(key, []);
    this.watched.delete(key);
  }
}
