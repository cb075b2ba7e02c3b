// The guard concern: the guard's assessment (computed by the controller from its
// readiness history, see assess.ts) → the CorrelatedFailure condition, its
// Events, the flapping reports, the status figures and when to look again.
import { ConditionType, DEPLOYMENT_CONDITION_PREFIX, type GuardFigures } from "../../api/v1alpha1/index.ts";
import {
  type Concern,
  type ConditionIntent,
  type Contribution,
  emptyContribution,
  type EventIntent,
} from "../seam.ts";
import type { GuardAssessment } from "./assess.ts";
import { iso } from "./hold.ts";

export const GuardReason = {
  /** True: more than maxUnreadyPercent of the serving pods went unready together. */
  ManyPodsUnready: "ManyPodsUnready",
  /** True: every pod of a zone went unready together. */
  ZoneUnready: "ZoneUnready",
  /** False. */
  NoCorrelatedFailure: "NoCorrelatedFailure",
  /** Event for a pod whose readiness flaps. */
  ReadinessFlapping: "ReadinessFlapping",
} as const;

/** Flapping pods listed in status at most. */
export const MAX_FLAPPING_LISTED = 20;

const percent = (n: number, of: number) => (of === 0 ? 0 : Math.round((n * 100) / of));

export function correlatedIntent(a: GuardAssessment): ConditionIntent {
  const g = a.guardrails;
  const c = a.correlated;
  if (!c) {
    return {
      type: ConditionType.CorrelatedFailure,
      status: "False",
      reason: GuardReason.NoCorrelatedFailure,
      message:
        `no correlated failure: at most ${g.maxUnreadyPercent}% of the serving pods went unready within ` +
        `${g.windowSeconds}s and no zone is wholly unready`,
    };
  }
  const t = c.trigger;
  const what = !t.byFraction
    ? `every pod of zone ${t.zone} (${t.unready}) went unready within ${g.windowSeconds}s`
    : `${t.unready} of ${t.serving} serving pods (${percent(t.unready, t.serving)}%) went unready within ` +
      `${g.windowSeconds}s, more than guardrails.maxUnreadyPercent ${g.maxUnreadyPercent}%` +
      (t.zone !== undefined ? `, every pod of zone ${t.zone} among them` : "");
  const revisions = a.byRevision.length > 1 ? `; unready by revision: ${revisionList(a)}` : "";
  const excluded = excludedNote(a);
  const clearing =
    c.clearsAt !== undefined
      ? `; now ${c.unready} of ${c.serving} unready, clearing at ${iso(c.clearsAt)} if it stays at or below the threshold`
      : `; now ${c.unready} of ${c.serving} unready`;
  return {
    type: ConditionType.CorrelatedFailure,
    status: "True",
    reason: t.byFraction ? GuardReason.ManyPodsUnready : GuardReason.ZoneUnready,
    message:
      `since ${iso(c.since)}: ${what}${revisions}${excluded}${clearing}. The cause is probably shared (a ` +
      `dependency, the network, a configuration push), not independent failures: healthgate takes no ` +
      `capacity-shrinking action (rollouts hold, no gate closes, no rollback, no release) until it clears, after ` +
      `${g.clearAfterSeconds}s at or below the threshold. Look for the common cause.`,
  };
}

const revisionList = (a: GuardAssessment) =>
  a.byRevision.map((r) => `${r.revision || "(none)"} ${r.unready}/${r.serving}`).join(", ");

function excludedNote(a: GuardAssessment): string {
  const parts = [
    a.counts.heldByGate > 0 ? `${a.counts.heldByGate} held by their deep-check gate` : "",
    a.counts.neverReady > 0 ? `${a.counts.neverReady} not Ready yet` : "",
  ].filter((p) => p !== "");
  return parts.length > 0 ? ` (not counted: ${parts.join(", ")})` : "";
}

export function guardFigures(a: GuardAssessment): GuardFigures | undefined {
  const c = a.correlated;
  const flapping = a.flapping.slice(0, MAX_FLAPPING_LISTED).map((f) => ({
    pod: f.pod,
    transitions: f.transitions,
    reports: f.reports,
    nextReportAt: iso(f.nextReportAt),
  }));
  if (!c && flapping.length === 0) return undefined;
  return {
    ...(c
      ? {
          correlatedFailure: {
            since: iso(c.since),
            unreadyPods: c.unready,
            servingPods: c.serving,
            windowSeconds: a.guardrails.windowSeconds,
            ...(c.trigger.zone !== undefined ? { zone: c.trigger.zone } : {}),
            ...(c.clearsAt !== undefined ? { clearsAt: iso(c.clearsAt) } : {}),
          },
        }
      : {}),
    ...(flapping.length > 0 ? { flapping } : {}),
  };
}

function flapEvent(a: GuardAssessment, f: GuardAssessment["reports"][number], now: number): EventIntent {
  const g = a.guardrails.flapping;
  return {
    regarding: "Deployment",
    type: "Warning",
    reason: GuardReason.ReadinessFlapping,
    immediate: true,
    message:
      `pod ${f.pod} changed readiness ${f.transitions} times within ${g.windowSeconds}s (more than ` +
      `guardrails.flapping.maxTransitions ${g.maxTransitions}); report ${f.reports}, the next no sooner than ` +
      `${Math.round((f.nextReportAt - now) / 1000)}s from now (the wait doubles with each report). A flapping pod churns endpoints: look at its ` +
      `readiness probe's timing (successThreshold 2 or more adds hysteresis) and at what its readiness endpoint checks.`,
  };
}

export const guardConcern: Concern = (snapshot): Contribution => {
  const a = snapshot.guard;
  if (!a) return emptyContribution("guard");
  const intent = correlatedIntent(a);
  const live = snapshot.deployment.status?.conditions?.find(
    (c) => c.type === DEPLOYMENT_CONDITION_PREFIX + ConditionType.CorrelatedFailure,
  );
  const events: EventIntent[] = [];
  if (intent.status === "True") {
    events.push({ regarding: "Deployment", type: "Warning", reason: intent.reason, message: intent.message });
  } else if (live?.status === "True") {
    const message = `correlated failure over: at or below the threshold for ${a.guardrails.clearAfterSeconds}s`;
    events.push({ regarding: "Deployment", type: "Normal", reason: intent.reason, message });
  }
  const now = snapshot.now.getTime();
  for (const f of a.reports) events.push(flapEvent(a, f, now));
  const figures = guardFigures(a);
  return {
    concern: "guard",
    conditions: [intent],
    findings: [],
    figures: figures ? { guard: figures } : {},
    events,
    ...(a.nextChangeAt !== undefined
      ? { requeueAfterSeconds: Math.max(1, Math.ceil((a.nextChangeAt - now) / 1000)) }
      : {}),
  };
};
