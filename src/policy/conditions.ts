import type { DeploymentCondition } from "../api/k8s.ts";
import { ConditionType, DEPLOYMENT_CONDITION_PREFIX, type Condition } from "../api/v1alpha1/index.ts";
import type { ConditionIntent } from "./seam.ts";

// The one condition setter. Transition times move only when the status flips,
// so `kubectl wait` and staleness checks work and an unchanged world produces
// byte-identical conditions (and therefore no write).

/** metav1.Condition on the policy: lastTransitionTime moves only on a status flip. */
export function setPolicyCondition(
  existing: readonly Condition[],
  intent: Omit<ConditionIntent, "type"> & { type: string },
  observedGeneration: number | undefined,
  now: Date,
): Condition[] {
  const previous = existing.find((c) => c.type === intent.type);
  const next: Condition = {
    type: intent.type,
    status: intent.status,
    reason: intent.reason,
    message: intent.message,
    lastTransitionTime:
      previous && previous.status === intent.status
        ? previous.lastTransitionTime
        : now.toISOString().replace(/\.\d{3}Z$/, "Z"),
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  return [...existing.filter((c) => c.type !== intent.type), next].sort(byType);
}

/**
 * DeploymentCondition shape, type prefixed `healthgate.io/`: lastTransitionTime
 * moves on a status flip, lastUpdateTime when reason or message change.
 */
export function setDeploymentCondition(
  existing: readonly DeploymentCondition[],
  type: string,
  intent: Omit<ConditionIntent, "type">,
  now: Date,
): DeploymentCondition[] {
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const previous = existing.find((c) => c.type === type);
  const sameStatus = previous?.status === intent.status;
  const sameText = sameStatus && previous?.reason === intent.reason && previous?.message === intent.message;
  const next: DeploymentCondition = {
    type,
    status: intent.status,
    reason: intent.reason,
    message: intent.message,
    lastUpdateTime: sameText && previous?.lastUpdateTime ? previous.lastUpdateTime : stamp,
    lastTransitionTime: sameStatus && previous?.lastTransitionTime ? previous.lastTransitionTime : stamp,
  };
  return [...existing.filter((c) => c.type !== type), next].sort(byType);
}

const byType = (a: { type: string }, b: { type: string }) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0);

const statusRank = { False: 0, Unknown: 1, True: 2 } as const;
const abnormalTrueRank = { True: 0, Unknown: 1, False: 2 } as const;

/** Condition types whose True is the abnormal state (CorrelatedFailure); for the others True is good. */
export const ABNORMAL_WHEN_TRUE: ReadonlySet<string> = new Set([ConditionType.CorrelatedFailure]);

const bare = (type: string) =>
  type.startsWith(DEPLOYMENT_CONDITION_PREFIX) ? type.slice(DEPLOYMENT_CONDITION_PREFIX.length) : type;

/** The Event type for a condition now at `status` (type bare or `healthgate.io/`-prefixed). */
export function conditionEventType(type: string, status: string): "Normal" | "Warning" {
  const good = ABNORMAL_WHEN_TRUE.has(bare(type)) ? status === "False" : status === "True";
  return good ? "Normal" : "Warning";
}

/**
 * The worst of several intents for one condition type (False < Unknown < True; the other way
 * round for ABNORMAL_WHEN_TRUE types), for policy-level aggregation.
 */
export function worstIntent(intents: readonly ConditionIntent[]): ConditionIntent | undefined {
  let worst: ConditionIntent | undefined;
  for (const intent of intents) {
    const rank = ABNORMAL_WHEN_TRUE.has(intent.type) ? abnormalTrueRank : statusRank;
    if (!worst || rank[intent.status] < rank[worst.status]) worst = intent;
  }
  return worst;
}
