// The runtime proof that liveness is shallow (or is not). A linter reads a liveness probe's path;
// only a controller watching both signals sees what it does. healthgate deep-checks a sample of
// stable pods in the background (spec.rollout.deepCheck.background); when the deep check fails
// on two or more of them together (a dependency is down), it reads whether those pods' liveness
// kept passing: the kubelet's "Liveness probe failed" Events and their containers' restarts.
// Liveness failing together with the deep check, and restarting the pods, is evidence that
// liveness is deep in practice, whatever its path says. Pure: the controller passes what it saw and the time.

/** A "Liveness probe failed" Event the kubelet recorded on a pod (reason Unhealthy). */
export interface LivenessEvent {
  /** When it was last seen (epoch ms). */
  at: number;
  /** When it was first seen (epoch ms); the kubelet aggregates repeats into one Event. */
  firstAt: number;
  /** Occurrences. */
  count: number;
}

/** One sampled stable pod as the background check saw it. */
export interface SampledPod {
  uid: string;
  name: string;
  /** Consecutive failed background deep checks (answered wrongly) up to now. */
  failures: number;
  /** When the current run of failures began (epoch ms). */
  failingSince?: number;
  /** Container restarts now (all containers). */
  restarts: number;
  /** Container restarts at the pod's last passing deep check; undefined before one. */
  restartsAtPass?: number;
  /** The kubelet's liveness failures on the pod read so far (any time). */
  livenessEvents: readonly LivenessEvent[];
}

export interface WitnessConfig {
  /** background.failureThreshold: consecutive failures before a pod's deep check counts as failing. */
  failureThreshold: number;
  /** background.intervalSeconds in ms: the dependency may have failed up to one interval before the first failed check. */
  intervalMs: number;
}

/** What one pod's liveness did during the outage. */
export interface PodLivenessEvidence {
  pod: string;
  /** Container restarts since its last passing deep check. */
  restarts: number;
  /** "Liveness probe failed" occurrences during the outage. */
  livenessFailures: number;
  /** First and last liveness failure during the outage (epoch ms). */
  firstAt?: number;
  lastAt?: number;
}

/** LivenessShallow=False, reason DeepInPractice: liveness failed together with the deep check. */
export interface DeepInPractice {
  /** When the deep check began failing on the sampled pods (epoch ms). */
  outageSince: number;
  /** When the evidence was last updated (epoch ms). */
  seenAt: number;
  /** The pod-template-hash the pods ran: a new revision may have fixed liveness. */
  revision?: string;
  /** Sampled pods whose deep check failed. */
  deepFailing: readonly string[];
  /** Those of them whose liveness failed too, with the evidence. */
  pods: readonly PodLivenessEvidence[];
}

/** An outage in which liveness held: no finding. */
export interface LivenessHeld {
  outageSince: number;
  endedAt: number;
  deepFailing: readonly string[];
}

export interface WitnessState {
  /** The outage going on now: the deep check fails on two or more sampled pods. */
  outage?: { since: number; pods: readonly string[] };
  finding?: DeepInPractice;
  /** The last outage that ended with liveness holding. */
  held?: LivenessHeld;
}

export interface WitnessStep {
  state: WitnessState;
  /** Uids of the pods whose liveness Events the controller should read (during an outage only). */
  readEventsOf: readonly string[];
}

/** Two pods at least: one pod failing alone is a sick pod, which liveness rightly restarts. */
export const MIN_FAILING_PODS = 2;

const failing = (p: SampledPod, config: WitnessConfig) =>
  p.failures >= config.failureThreshold && p.failingSince !== undefined;

/** The evidence of one pod's liveness during the outage that began at `since`. */
export function podEvidence(p: SampledPod, since: number, config: WitnessConfig): PodLivenessEvidence {
  const from = since - config.intervalMs;
  const during = p.livenessEvents.filter((e) => e.at >= from);
  const firsts = during.map((e) => Math.max(e.firstAt, from));
  const lasts = during.map((e) => e.at);
  return {
    pod: p.name,
    restarts: Math.max(0, p.restarts - (p.restartsAtPass ?? p.restarts)),
    livenessFailures: during.reduce((n, e) => n + Math.max(1, e.count), 0),
    ...(during.length > 0 ? { firstAt: Math.min(...firsts), lastAt: Math.max(...lasts) } : {}),
  };
}

/**
 * One look: an outage starts when two or more sampled pods' deep checks fail, lasts while they
 * do, and ends when fewer do. During it, a pod whose liveness failed too (a "Liveness probe
 * failed" Event since the outage began) and whose container restarted since its last passing
 * deep check makes the finding.
 * The finding stays after the outage (it is about the probe, not the moment) until a later
 * outage ends with liveness holding, or the pods run another revision.
 */
export function stepWitness(
  state: WitnessState,
  pods: readonly SampledPod[],
  now: number,
  config: WitnessConfig,
  revision?: string,
): WitnessStep {
  const stale = state.finding?.revision !== undefined && state.finding.revision !== revision;
  const kept: WitnessState = {
    ...(state.outage ? { outage: state.outage } : {}),
    ...(state.finding && !stale ? { finding: state.finding } : {}),
    ...(state.held ? { held: state.held } : {}),
  };
  const down = pods.filter((p) => failing(p, config));
  if (down.length < MIN_FAILING_PODS) {
    if (!kept.outage) return { state: kept, readEventsOf: [] };
    const { outage, ...rest } = kept;
    // The outage is over: liveness held through it unless it made the finding.
    if (rest.finding?.outageSince === outage.since) return { state: rest, readEventsOf: [] };
    const { finding: _older, ...withoutFinding } = rest;
    return {
      state: {
        ...withoutFinding,
        held: { outageSince: outage.since, endedAt: now, deepFailing: outage.pods },
      },
      readEventsOf: [],
    };
  }
  const since = kept.outage?.since ?? Math.min(...down.map((p) => p.failingSince!));
  const names = [...new Set([...(kept.outage?.pods ?? []), ...down.map((p) => p.name)])].sort();
  const evidence = down.map((p) => podEvidence(p, since, config));
  // Liveness acted: it failed during the outage and the kubelet restarted the container. A lone
  // failed probe (a timeout on a busy node) restarts nothing; a restart without a liveness
  // failure is a crash.
  const failed = evidence.filter((e) => e.livenessFailures > 0 && e.restarts > 0);
  const previous = kept.finding?.outageSince === since ? kept.finding : undefined;
  const finding: DeepInPractice | undefined =
    failed.length > 0
      ? {
          outageSince: since,
          seenAt: now,
          ...(revision !== undefined ? { revision } : {}),
          deepFailing: names,
          pods: mergeEvidence(previous?.pods ?? [], failed),
        }
      : (previous ?? kept.finding);
  return {
    state: {
      outage: { since, pods: names },
      ...(finding ? { finding } : {}),
      ...(kept.held ? { held: kept.held } : {}),
    },
    readEventsOf: down.map((p) => p.uid),
  };
}

/** Evidence seen earlier in the same outage stays (a pod may leave the sample by being recreated). */
function mergeEvidence(
  before: readonly PodLivenessEvidence[],
  now: readonly PodLivenessEvidence[],
): PodLivenessEvidence[] {
  const byPod = new Map(before.map((e) => [e.pod, e]));
  for (const e of now) byPod.set(e.pod, e);
  return [...byPod.values()].sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
}

/** A kubelet Event that reports a failed liveness probe (reason Unhealthy). */
export const isLivenessFailure = (reason: string | undefined, message: string | undefined) =>
  reason === "Unhealthy" && (message ?? "").startsWith("Liveness probe failed");

const at = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** The evidence, for the LivenessShallow condition and its Event. */
export function deepInPracticeMessage(f: DeepInPractice): string {
  const pods = f.pods
    .map(
      (e) =>
        `pod ${e.pod}: ${plural(e.livenessFailures, "liveness failure")}` +
        (e.firstAt !== undefined && e.lastAt !== undefined
          ? ` from ${at(e.firstAt)} to ${at(e.lastAt)}`
          : "") +
        `, ${plural(e.restarts, "restart")}`,
    )
    .join("; ");
  return (
    `liveness is deep in practice: during the outage from ${at(f.outageSince)} (the background deep check ` +
    `failing on stable pods ${f.deepFailing.join(", ")}), their liveness failed too — ${pods} (seen ` +
    `${at(f.seenAt)}). A liveness probe that fails when a dependency fails restarts every pod in an outage, ` +
    `whatever its path says. Fix: make the liveness endpoint answer from the process alone, without checking ` +
    `dependencies.`
  );
}
