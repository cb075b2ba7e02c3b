// Judging deep-check measurements: pure. The prober measures (src/prober); this decides what a
// measurement means for one pod, and counts consecutive passes, failures and transport errors
// per pod — a transport error (the pod was not reached) is never counted as a failure (the pod
// answered, wrongly). What the counts mean for a rollout is the rollout's business.
import {
  ANSWER_ERROR_CLASSES,
  type Cohort,
  type DeepCheckExpectation,
  type ErrorClass,
  type Measurement,
  type Outcome,
} from "../../prober/types.ts";

const answered = new Set<ErrorClass>(ANSWER_ERROR_CLASSES);

/** pass, fail or error for one measurement against what the policy expects. */
export function deepCheckOutcome(
  m: Pick<Measurement, "statusCode" | "errorClass" | "bodyMatched">,
  expect: DeepCheckExpectation,
): Outcome {
  if (m.errorClass !== undefined) return answered.has(m.errorClass) ? "fail" : "error";
  if (m.statusCode === undefined || !expect.statuses.includes(m.statusCode)) return "fail";
  if (expect.bodyContains !== undefined && m.bodyMatched !== true) return "fail";
  return "pass";
}

/** One pod's run of outcomes. */
export interface PodAssessment {
  consecutivePasses: number;
  consecutiveFailures: number;
  consecutiveErrors: number;
  passes: number;
  failures: number;
  errors: number;
  last?: Outcome;
}

export const NO_ASSESSMENT: PodAssessment = {
  consecutivePasses: 0,
  consecutiveFailures: 0,
  consecutiveErrors: 0,
  passes: 0,
  failures: 0,
  errors: 0,
};

/**
 * The assessment after one more outcome. A pass ends both streaks of trouble; a failure ends the
 * pass streak and the error streak; an error ends the pass streak (admission needs consecutive
 * passes seen) but leaves the failure streak alone: not reaching a pod says nothing of its answer.
 */
export function assessDeepCheck(previous: PodAssessment, outcome: Outcome): PodAssessment {
  switch (outcome) {
    case "pass":
      return {
        ...previous,
        consecutivePasses: previous.consecutivePasses + 1,
        consecutiveFailures: 0,
        consecutiveErrors: 0,
        passes: previous.passes + 1,
        last: outcome,
      };
    case "fail":
      return {
        ...previous,
        consecutivePasses: 0,
        consecutiveFailures: previous.consecutiveFailures + 1,
        consecutiveErrors: 0,
        failures: previous.failures + 1,
        last: outcome,
      };
    case "error":
      return {
        ...previous,
        consecutivePasses: 0,
        consecutiveErrors: previous.consecutiveErrors + 1,
        errors: previous.errors + 1,
        last: outcome,
      };
  }
}

/** Where a pod stands against its thresholds (spec.rollout.deepCheck successThreshold / failureLimit). */
export type PodStanding = "Passing" | "Failing" | "Unreachable" | "Pending";

export function podStanding(
  a: PodAssessment,
  thresholds: { successThreshold: number; failureLimit: number },
): PodStanding {
  if (a.consecutivePasses >= thresholds.successThreshold) return "Passing";
  if (a.consecutiveFailures >= thresholds.failureLimit) return "Failing";
  if (a.consecutiveErrors >= thresholds.failureLimit) return "Unreachable";
  return "Pending";
}

/** Outcomes per cohort: the aggregate a policy's status keeps (deepChecks: {canary, stable}). */
export type CohortTally = Record<Cohort, Record<Outcome, number>>;

export function tallyByCohort(results: Iterable<{ cohort: Cohort; outcome: Outcome }>): CohortTally {
  const tally: CohortTally = {
    new: { pass: 0, fail: 0, error: 0 },
    stable: { pass: 0, fail: 0, error: 0 },
  };
  for (const r of results) tally[r.cohort][r.outcome]++;
  return tally;
}

/** Pods by standing per cohort: the aggregate a policy's status keeps (rollout.deepChecks). */
export interface StandingCounts {
  passing: number;
  failing: number;
  unreachable: number;
  pending: number;
  unchecked: number;
}

const STANDING_KEY: Record<PodStanding, keyof StandingCounts> = {
  Passing: "passing",
  Failing: "failing",
  Unreachable: "unreachable",
  Pending: "pending",
};

/**
 * Counts the pods deep-checked now (with their assessments) and those handed over but not
 * checkable, per cohort; undefined when there are none (the status then carries no deepChecks).
 */
export function countStandings(
  checked: Iterable<{ cohort: Cohort; standing: PodStanding }>,
  unchecked: Iterable<{ cohort: Cohort }>,
): { canary: StandingCounts; stable: StandingCounts } | undefined {
  const zero = (): StandingCounts => ({ passing: 0, failing: 0, unreachable: 0, pending: 0, unchecked: 0 });
  const counts = { new: zero(), stable: zero() };
  let any = false;
  for (const c of checked) {
    counts[c.cohort][STANDING_KEY[c.standing]]++;
    any = true;
  }
  for (const u of unchecked) {
    counts[u.cohort].unchecked++;
    any = true;
  }
  return any ? { canary: counts.new, stable: counts.stable } : undefined;
}
