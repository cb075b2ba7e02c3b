// healthgate.io/v1alpha1's names and constants, apart from its schemas (healthpolicy.ts
// re-exports them): a module that needs only these — the gate webhook's thread — loads no zod.

export const GROUP = "healthgate.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "HealthPolicy";
export const PLURAL = "healthpolicies";
export const SINGULAR = "healthpolicy";
export const SHORT_NAMES = ["hpol"];
export const CATEGORIES = ["healthgate"];

/** Condition types on the policy; mirrored on Deployments with the `healthgate.io/` prefix. */
export const ConditionType = {
  Ready: "Ready",
  ProbesCompliant: "ProbesCompliant",
  LivenessShallow: "LivenessShallow",
  HeadroomSufficient: "HeadroomSufficient",
  RolloutHealthy: "RolloutHealthy",
  /** True while a correlated failure is active: True is the abnormal state (see ABNORMAL_WHEN_TRUE). */
  CorrelatedFailure: "CorrelatedFailure",
  /**
   * False (FailedOpen) while pods of a gated revision run without the healthgate.io/deep-check gate
   * (created while no replica answered admission); absent otherwise.
   */
  RolloutGated: "RolloutGated",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];
export const DEPLOYMENT_CONDITION_PREFIX = `${GROUP}/`;

/** Readiness gate (pod condition) set by rollout gating. */
export const DEEP_CHECK_GATE = `${GROUP}/deep-check`;
