// The guard's whole judgement of one Deployment at one moment: the correlated
// failure episode and the flapping pods, from the pods as the guard sees them
// (pods.ts) and the state kept since the last look. Pure: the controller keeps
// the state in memory between reconciles and passes the time.
import type { GuardrailsSpec } from "../../api/v1alpha1/index.ts";
import { type CorrelatedConfig, type CorrelatedEpisode, serving, stepCorrelated } from "./correlated.ts";
import { type FlapConfig, type FlappingPod, type FlapRecord, stepFlaps } from "./flapping.ts";
import type { PodView } from "./pods.ts";

/** What the guard remembers of a Deployment between looks. */
export interface GuardState {
  episode?: CorrelatedEpisode;
  flaps: Readonly<Record<string, FlapRecord>>;
}

export const emptyGuardState = (): GuardState => ({ flaps: {} });

export interface RevisionCount {
  revision: string;
  serving: number;
  unready: number;
}

export interface GuardAssessment {
  readonly guardrails: GuardrailsSpec;
  /** Present while a correlated failure is active. */
  readonly correlated?: CorrelatedEpisode & {
    /** Unready and serving pods now. */
    unready: number;
    serving: number;
    /** When it clears if nothing gets worse (epoch ms), while clearing. */
    clearsAt?: number;
  };
  readonly counts: { serving: number; unready: number; heldByGate: number; neverReady: number };
  /** Serving and unready pods per revision (pod-template-hash), most unready first. */
  readonly byRevision: readonly RevisionCount[];
  readonly flapping: readonly FlappingPod[];
  /** Flapping pods reported at this look (Event, metric); empty when the look is not committed. */
  readonly reports: readonly FlappingPod[];
  /** When the assessment changes by time alone (epoch ms). */
  readonly nextChangeAt?: number;
}

export const correlatedConfig = (g: GuardrailsSpec): CorrelatedConfig => ({
  maxUnreadyPercent: g.maxUnreadyPercent,
  windowMs: g.windowSeconds * 1000,
  clearAfterMs: g.clearAfterSeconds * 1000,
});

export const flapConfig = (g: GuardrailsSpec): FlapConfig => ({
  maxTransitions: g.flapping.maxTransitions,
  windowMs: g.flapping.windowSeconds * 1000,
  backoffMs: g.flapping.reportBackoffSeconds * 1000,
  maxBackoffMs: g.flapping.maxReportBackoffSeconds * 1000,
});

/** How long the controller must keep a pod's readiness changes for these guardrails. */
export const historyHorizonMs = (g: GuardrailsSpec) => g.flapping.windowSeconds * 1000;

export function assessGuard(
  state: GuardState,
  pods: readonly PodView[],
  now: number,
  guardrails: GuardrailsSpec,
): { state: GuardState; assessment: GuardAssessment } {
  const episode = stepCorrelated(state.episode, pods, now, correlatedConfig(guardrails));
  const flaps = stepFlaps(state.flaps, pods, now, flapConfig(guardrails));
  const count = (s: PodView["state"]) => pods.filter((p) => p.state === s).length;
  const counts = {
    serving: serving(pods).length,
    unready: count("Unready"),
    heldByGate: count("HeldByGate"),
    neverReady: count("NeverReady"),
  };
  const clearsAt =
    episode?.belowSince !== undefined ? episode.belowSince + guardrails.clearAfterSeconds * 1000 : undefined;
  const changes = [clearsAt, flaps.nextChangeAt].filter((t): t is number => t !== undefined && t > now);
  return {
    state: { ...(episode ? { episode } : {}), flaps: flaps.records },
    assessment: {
      guardrails,
      ...(episode
        ? {
            correlated: {
              ...episode,
              unready: counts.unready,
              serving: counts.serving,
              ...(clearsAt !== undefined ? { clearsAt } : {}),
            },
          }
        : {}),
      counts,
      byRevision: revisionCounts(pods),
      flapping: flaps.flapping,
      reports: flaps.reports,
      ...(changes.length > 0 ? { nextChangeAt: Math.min(...changes) } : {}),
    },
  };
}

function revisionCounts(pods: readonly PodView[]): RevisionCount[] {
  const byRevision = new Map<string, RevisionCount>();
  for (const p of serving(pods)) {
    const revision = p.revision ?? "";
    const c = byRevision.get(revision) ?? { revision, serving: 0, unready: 0 };
    c.serving++;
    if (p.state === "Unready") c.unready++;
    byRevision.set(revision, c);
  }
  return [...byRevision.values()].sort(
    (a, b) => b.unready - a.unready || (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : 0),
  );
}
