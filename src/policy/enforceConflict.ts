// Enforce takes probe fields with force. When another manager (a GitOps
// controller re-applying an old manifest) keeps taking them back, fighting
// forever is worse than stopping: after MAX_FLIPS re-applies within
// WINDOW_MS healthgate stops, reports EnforceConflict and retries with
// exponential backoff (DESIGN.md, "The seam").

export const MAX_FLIPS = 3;
export const WINDOW_MS = 10 * 60_000;
const BACKOFF_BASE_MS = 60_000;
const BACKOFF_CAP_MS = 60 * 60_000;

export interface FlipHistory {
  /** Times (ms) healthgate re-applied fields it had already applied: each is a flip someone else caused. */
  flips: number[];
  /** Consecutive conflict episodes, for the backoff. */
  episodes: number;
  /** While set and in the future, healthgate does not apply. */
  holdUntil?: number;
}

export const emptyHistory = (): FlipHistory => ({ flips: [], episodes: 0 });

/** Records a re-apply at `nowMs`; returns the new history and whether it is now a conflict. */
export function recordFlip(
  history: FlipHistory,
  nowMs: number,
): { history: FlipHistory; conflicted: boolean } {
  const flips = [...history.flips.filter((t) => nowMs - t < WINDOW_MS), nowMs];
  if (flips.length < MAX_FLIPS) return { history: { ...history, flips }, conflicted: false };
  const episodes = history.episodes + 1;
  const holdMs = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (episodes - 1));
  return { history: { flips: [], episodes, holdUntil: nowMs + holdMs }, conflicted: true };
}

/**
 * A replica that starts (a restart, a new leader) remembers no flips. When the Deployment
 * already says EnforceConflict (`healthgate.io/ProbesCompliant` False, reason EnforceConflict,
 * written by an earlier replica), it resumes a hold of one backoff step instead of taking the
 * fields back and making the other manager fight it MAX_FLIPS times again.
 */
export function resumedHold(
  conditions: readonly { type: string; status: string; reason?: string }[] | undefined,
  conditionType: string,
  nowMs: number,
): FlipHistory | undefined {
  const condition = conditions?.find((c) => c.type === conditionType);
  if (condition?.status !== "False" || condition.reason !== "EnforceConflict") return undefined;
  return { flips: [], episodes: 1, holdUntil: nowMs + BACKOFF_BASE_MS };
}

/** Whether applies are on hold (a conflict was detected and its backoff has not run out). */
export function holding(history: FlipHistory, nowMs: number): boolean {
  return history.holdUntil !== undefined && nowMs < history.holdUntil;
}

/**
 * The other manager to name: from the live object's managedFields, the most
 * recent Apply/Update by someone other than healthgate and the controllers
 * that touch the template, that owns fields under spec.template.spec.containers.
 */
export function otherProbeManager(
  managedFields: readonly { manager?: string; operation?: string; time?: string; fieldsV1?: unknown }[],
  ourManager: string,
): string | undefined {
  const candidates = managedFields
    .filter((m) => m.manager && m.manager !== ourManager && m.manager !== "kube-controller-manager")
    .filter((m) => ownsContainerProbeFields(m.fieldsV1))
    .sort((a, b) => ((a.time ?? "") < (b.time ?? "") ? 1 : -1));
  return candidates[0]?.manager;
}

function ownsContainerProbeFields(fields: unknown): boolean {
  const containers = (
    fields as Record<string, Record<string, Record<string, Record<string, unknown>>>> | undefined
  )?.["f:spec"]?.["f:template"]?.["f:spec"]?.["f:containers"];
  if (!containers || typeof containers !== "object") return false;
  return Object.values(containers).some(
    (c) =>
      c &&
      typeof c === "object" &&
      ["f:livenessProbe", "f:readinessProbe", "f:startupProbe", "f:lifecycle"].some(
        (k) => k in (c as object),
      ),
  );
}
