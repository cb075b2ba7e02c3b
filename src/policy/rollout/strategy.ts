// The rollout's part of the Enforce decision (DESIGN.md, "Rollout gating"): pure. Two Deployment
// fields the Deployment controller acts on before healthgate can:
//   - maxUnavailable: at the start of a rollout the controller takes that many old pods out of
//     service before any new pod is admitted; above N − F that breaks the serving floor.
//   - progressDeadlineSeconds: the controller counts no progress during a bake, so a bake as long
//     as the deadline shows as ProgressDeadlineExceeded.
// The decision carries the target values; admission (src/admission/enforce.ts) applies each only
// where the live object needs it and only while the object stays valid; strategyProblems says
// where a guard keeps it out, strategyCarried whether the object is as the decision wants it.
import type { Deployment } from "../../api/k8s.ts";
import { durationSeconds, type RolloutSpec, type StrategyDecision } from "../../api/v1alpha1/index.ts";
import { parseIntOrPercent, scaleIntOrPercent } from "../headroom/math.ts";
import type { ServingFloor } from "./revisions.ts";

/** The API server's default progressDeadlineSeconds, and the progress time left after a bake. */
export const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;

/** What a gated rollout needs of the Deployment's strategy, from the policy and F only (never the live values). */
export function strategyDecision(
  rollout: RolloutSpec | undefined,
  floor: ServingFloor,
  replicas: number,
): StrategyDecision | undefined {
  if (!rollout) return undefined;
  const longest = Math.max(0, ...rollout.steps.map((s) => (s.bake ? (durationSeconds(s.bake) ?? 0) : 0)));
  return {
    maxUnavailable: Math.max(0, replicas - floor.floor),
    ...(longest > 0
      ? {
          progressDeadlineSeconds: longest + DEFAULT_PROGRESS_DEADLINE_SECONDS,
          longestBakeSeconds: longest,
        }
      : {}),
  };
}

type DeploymentSpec = Deployment["spec"];

/** The live object's fields as admission sees them (the API server has defaulted them by then). */
function live(spec: DeploymentSpec) {
  const n = spec.replicas ?? 1;
  const rolling = (spec.strategy?.type ?? "RollingUpdate") === "RollingUpdate";
  const unavailable = parseIntOrPercent(spec.strategy?.rollingUpdate?.maxUnavailable ?? "25%");
  const surge = parseIntOrPercent(spec.strategy?.rollingUpdate?.maxSurge ?? "25%");
  return {
    n,
    rolling,
    maxUnavailable: unavailable ? scaleIntOrPercent(unavailable, n, false) : undefined,
    rawMaxUnavailable: String(spec.strategy?.rollingUpdate?.maxUnavailable ?? "25%"),
    /** The raw value (a percent's number): the API server refuses maxUnavailable 0 with this at 0. */
    rawSurge: surge?.value,
    deadline: spec.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS,
    minReady: spec.minReadySeconds ?? 0,
  };
}

/** Whether maxUnavailable must be lowered (resolved above the decision's). */
const needsLowering = (l: ReturnType<typeof live>, s: StrategyDecision) =>
  s.maxUnavailable !== undefined && (!l.rolling || (l.maxUnavailable ?? 0) > s.maxUnavailable);

/** Whether progressDeadlineSeconds must be raised (not above the longest bake). */
const needsRaising = (l: ReturnType<typeof live>, s: StrategyDecision) =>
  s.progressDeadlineSeconds !== undefined && l.deadline <= (s.longestBakeSeconds ?? 0);

/** Why admission leaves a strategy field of the decision out of `spec` (the same guards as its CEL). */
export function strategyProblems(spec: DeploymentSpec, s: StrategyDecision | undefined): string[] {
  if (!s) return [];
  const l = live(spec);
  const problems: string[] = [];
  if (needsLowering(l, s)) {
    if (!l.rolling) {
      problems.push(
        `spec.strategy.type is Recreate: every rollout takes all ${l.n} pods out of service at once, below the ` +
          `serving floor; healthgate does not change the strategy type. Use RollingUpdate with maxUnavailable ` +
          `${s.maxUnavailable}${s.maxUnavailable === 0 ? " and maxSurge at least 1" : ""}`,
      );
    } else if (s.maxUnavailable === 0 && (l.rawSurge ?? 0) === 0) {
      problems.push(
        `spec.strategy.rollingUpdate.maxUnavailable would have to be 0 to keep the serving floor, and maxSurge is 0: ` +
          `the API server refuses both at 0, so maxUnavailable is left at ${l.rawMaxUnavailable}. Set maxSurge to at least 1`,
      );
    }
  }
  if (needsRaising(l, s) && (s.progressDeadlineSeconds ?? 0) <= l.minReady) {
    problems.push(
      `spec.progressDeadlineSeconds must exceed minReadySeconds (${l.minReady}): it is left at ${l.deadline}. ` +
        `Lower minReadySeconds below ${s.progressDeadlineSeconds}`,
    );
  }
  return problems;
}

/** Whether `spec` is as the decision's strategy wants it (nothing left to lower or raise). */
export function strategyCarried(spec: DeploymentSpec, s: StrategyDecision | undefined): boolean {
  if (!s) return true;
  const l = live(spec);
  return !needsLowering(l, s) && !needsRaising(l, s);
}
