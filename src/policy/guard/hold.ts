// The hook other concerns consult before anything that shrinks capacity
// (advancing or rolling back a rollout, closing a gate, releasing a template):
// while a correlated failure is active, the answer is "hold".
import type { TargetSnapshot } from "../seam.ts";

export interface CapacityHold {
  reason: "CorrelatedFailure";
  /** Says why and until when, for a condition or Event of the caller. */
  message: string;
  /** When the correlated failure began. */
  since: Date;
}

/**
 * `CorrelatedFailure` is active on this Deployment: take no capacity-shrinking action (no
 * rollout step, no gate set False, no rollback, no release). Undefined when nothing holds.
 */
export function capacityShrinkHold(snapshot: Pick<TargetSnapshot, "guard">): CapacityHold | undefined {
  const correlated = snapshot.guard?.correlated;
  if (!correlated) return undefined;
  return {
    reason: "CorrelatedFailure",
    since: new Date(correlated.since),
    message:
      `CorrelatedFailure since ${iso(correlated.since)} (${correlated.unready} of ${correlated.serving} serving pods ` +
      `unready): healthgate takes no capacity-shrinking action until it clears`,
  };
}

export const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/**
 * Whether the hold stops this Enforce release: a new decision (another revision than the one
 * released now) rolls the Deployment, so it waits while the hold lasts. Re-sending the decision
 * already released, or withdrawing it (leaving Enforce writes nothing to the Deployment), is not
 * held. A separate predicate from any other pacing of releases: each says on its own why a
 * release waits.
 */
export function releaseHold(
  hold: CapacityHold | undefined,
  current: { revision: string } | undefined,
  wanted: { revision: string } | undefined,
): CapacityHold | undefined {
  if (!hold || !wanted || current?.revision === wanted.revision) return undefined;
  return hold;
}
