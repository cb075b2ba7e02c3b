import { z } from "zod";
import { healthPolicySpec } from "./spec.ts";
import { healthPolicyStatus } from "./status.ts";

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

const metadata = z
  .object({
    name: z.string(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    generation: z.number().optional(),
    resourceVersion: z.string().optional(),
    creationTimestamp: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();

/** The whole object as the operator reads it (metadata kept loose). */
export const healthPolicy = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata,
  spec: healthPolicySpec,
  status: healthPolicyStatus.optional(),
});
export type HealthPolicy = z.output<typeof healthPolicy>;
