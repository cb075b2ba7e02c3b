import { z } from "zod";
import { containerName, int32, objectName } from "./common.ts";
import { crdObject, structuralSchemaOf } from "./crd.ts";
import { GROUP } from "./healthpolicy.ts";
import { condition, pacing, rolloutPhase } from "./status.ts";

// HealthTarget: the per-Deployment record (DESIGN.md, "The seam"). One object per
// governed Deployment, named after it, in its namespace. healthgate writes its
// spec (who governs it) and its status: whether the live template carries the
// released Enforce decision (Enforced), the decision of the stable revision, and
// rollout state. The released decision itself, which the MutatingAdmissionPolicy
// applies to every write of the Deployment, is kept in the namespace's
// HealthRelease index alone (healthrelease.ts): a release that lands writes no
// record. Only healthgate's ServiceAccount may write the status (a
// ValidatingAdmissionPolicy in the chart): rollback restores `stable` literally.

export const TARGET_KIND = "HealthTarget";
export const TARGET_PLURAL = "healthtargets";
export const TARGET_SINGULAR = "healthtarget";
export const TARGET_SHORT_NAMES = ["htgt"];
export const TARGET_CRD_NAME = `${TARGET_PLURAL}.${GROUP}`;

/** Condition types on a HealthTarget. */
export const TargetConditionType = {
  /** Does the live Deployment template carry the released decision? */
  Enforced: "Enforced",
  /**
   * True while a new Enforce decision waits because the Deployment has a correlated failure
   * (CorrelatedFailure=True): releasing it would roll the Deployment. Absent otherwise.
   */
  ReleaseHeld: "ReleaseHeld",
} as const;

/** A Kubernetes object kept as it is (a Probe, a LifecycleHandler): healthgate builds it, admission copies it. */
const kubeObject = (what: string) =>
  z.looseObject({}).meta({ "x-kubernetes-preserve-unknown-fields": true }).describe(what);

export const containerDecision = z.object({
  name: containerName().describe("Container the decision is for."),
  livenessProbe: kubeObject("The liveness probe, handler included (core/v1 Probe).").optional(),
  readinessProbe: kubeObject("The readiness probe, handler included (core/v1 Probe).").optional(),
  startupProbe: kubeObject("The startup probe, handler included (core/v1 Probe).").optional(),
  preStop: kubeObject("lifecycle.preStop (core/v1 LifecycleHandler).").optional(),
  requiredPorts: z
    .array(z.string().max(15))
    .max(16)
    .optional()
    .describe(
      "Named container ports the probes refer to. Admission applies this container's decision only while the " +
        "container declares every one of them (a probe on an undeclared name is never run by the kubelet).",
    ),
});
export type ContainerDecision = z.infer<typeof containerDecision>;

/**
 * The rollout's part of a decision (with spec.rollout only): Deployment strategy fields that
 * admission sets only where the live object would otherwise break the serving floor or report a
 * bake as ProgressDeadlineExceeded, and only while the object stays valid (docs/rollouts.md).
 */
export const strategyDecision = z.object({
  maxUnavailable: int32(0, 1000000)
    .optional()
    .describe(
      "N − F: the most pods the rolling update may take out of service. Admission lowers " +
        "spec.strategy.rollingUpdate.maxUnavailable to it when the value there resolves higher; never on a " +
        "Recreate Deployment, and not to 0 while maxSurge is 0 (the API server refuses both at 0).",
    ),
  progressDeadlineSeconds: int32(1, 2147483647)
    .optional()
    .describe(
      "The longest bake plus 600 s. Admission raises spec.progressDeadlineSeconds to it when the value there is " +
        "not above longestBakeSeconds (and only above minReadySeconds, as the API server requires).",
    ),
  longestBakeSeconds: int32(0, 2147483647).optional().describe("The longest bake of spec.rollout.steps."),
});
export type StrategyDecision = z.infer<typeof strategyDecision>;

export const decision = z.object({
  revision: z
    .string()
    .max(32)
    .describe("Hash of the decision's content; the Deployment's healthgate.io/released annotation names it."),
  terminationGracePeriodSeconds: int32(0, 86400)
    .optional()
    .describe("Pod terminationGracePeriodSeconds (drain + in-flight)."),
  containers: z
    .array(containerDecision)
    .max(64)
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
    .describe("Per governed container: probes and preStop."),
  strategy: strategyDecision
    .optional()
    .describe("With spec.rollout: maxUnavailable and progressDeadlineSeconds as the rollout needs them."),
});
export type Decision = z.infer<typeof decision>;

const podNames = (what: string) =>
  z.array(objectName()).max(1000).meta({ "x-kubernetes-list-type": "set" }).describe(what);
const revisionHash = (what: string) => z.string().max(64).describe(what);

/** status.rollout's part that human commands (healthgate.io/rollout-command on the record) write. */
const rolloutControl = {
  promotedStep: int32(0, 10)
    .optional()
    .describe("A human promoted this step (index from 0): its remaining bake, or wait, is skipped."),
  retriedAt: z
    .string()
    .meta({ format: "date-time" })
    .optional()
    .describe("When a human retried the aborted rollout: newPodDeadline counts from here."),
  lastCommand: z
    .object({
      value: z.string().max(128).describe("The healthgate.io/rollout-command annotation's value."),
      result: z.enum(["Applied", "Rejected"]),
      at: z.string().meta({ format: "date-time" }),
      message: z.string().max(1024).describe("What it did, or why it was ignored."),
    })
    .optional()
    .describe("The last rollout command healthgate consumed from the record's annotation, and its effect."),
};

/**
 * status.rollout.rollback: onFailure Rollback in Enforce (docs/rollouts.md, "Rollback"). Kept while
 * the Deployment runs the stable revision again: until a human asks (a retry command, or a new
 * revision of their own), healthgate neither releases the failed template nor a newer decision.
 */
export const rollbackState = z.object({
  phase: z
    .enum(["Pending", "RolledBack", "Overridden", "Blocked"])
    .describe(
      "Pending: the stable revision's template is to be restored. RolledBack: it was (the Deployment runs the " +
        "stable revision). Overridden: another field manager wrote the failed template back; healthgate does not " +
        "fight it. Blocked: the restore could not be made without a new ReplicaSet (message says why).",
    ),
  failedRevision: revisionHash("pod-template-hash of the aborted revision."),
  toRevision: revisionHash("pod-template-hash of the stable revision whose template is restored."),
  abortReason: z.string().max(64).optional().describe("The reason the revision was aborted with."),
  at: z.string().meta({ format: "date-time" }).optional().describe("When the restore was seen done."),
  manager: z
    .string()
    .max(256)
    .optional()
    .describe("Overridden: the field manager that wrote the failed template back (from managedFields)."),
  message: z.string().max(1024).optional().describe("Blocked: why."),
});
export type RollbackState = z.infer<typeof rollbackState>;

/**
 * status.rollout: the rollout gating state (DESIGN.md, "Rollout gating"), written under its own
 * field manager (healthgate-rollout) in Audit and Enforce alike, so a restarted or newly elected
 * operator resumes where the last one stopped.
 */
export const rolloutState = z.object({
  phase: rolloutPhase.describe(
    "Progressing (admitting new pods), Baking (holding at a step), Holding (a hold: see reason), " +
      "Inconclusive (stable pods fail too), Aborted, Completed (the revision is stable), Idle.",
  ),
  revision: revisionHash(
    "pod-template-hash of the revision this state is about (the Deployment's newest).",
  ).optional(),
  stableRevision: revisionHash(
    "pod-template-hash of the stable revision: the last one that completed. Absent until the Deployment's first " +
      "revision has completed; pods of this revision are never held.",
  ).optional(),
  observedGeneration: z
    .int()
    .min(0)
    .meta({ format: "int64" })
    .optional()
    .describe(
      "The Deployment metadata.generation this state was computed from. CI waits for it to reach the generation " +
        "it applied before trusting the healthgate.io/RolloutHealthy condition.",
    ),
  step: int32(0, 10).optional().describe("Index of the current step in spec.rollout.steps, from 0."),
  weight: int32(0, 100).optional().describe("Weight of the current step, percent."),
  budget: int32(0, 1000000).optional().describe("New pods the current step admits: ceil(weight × replicas)."),
  floor: int32(0, 1000000)
    .optional()
    .describe("The serving floor F: Ready pods a step or an abort never goes below."),
  startedAt: z
    .string()
    .meta({ format: "date-time" })
    .optional()
    .describe("When this revision was first seen."),
  bakeStartedAt: z
    .string()
    .meta({ format: "date-time" })
    .optional()
    .describe("When the current step's budget was filled: its bake runs from here."),
  admitted: podNames(
    "New pods whose healthgate.io/deep-check gate healthgate set True (latched).",
  ).optional(),
  dropped: podNames("Admitted new pods whose gate the abort set False.").optional(),
  kept: podNames(
    "Admitted new pods the abort kept Ready so serving pods stay at or above the floor.",
  ).optional(),
  failures: int32(0, 1000000)
    .optional()
    .describe("Failures counted against the revision (deep checks failing while the stable pods passed)."),
  reason: z
    .string()
    .max(64)
    .optional()
    .describe("CamelCase reason of the healthgate.io/RolloutHealthy condition."),
  message: z.string().max(2048).optional().describe("Message of the healthgate.io/RolloutHealthy condition."),
  rollback: rollbackState
    .optional()
    .describe(
      "onFailure Rollback (Enforce only): the restore of the stable revision's template after an abort.",
    ),
  ...rolloutControl,
});
export type RolloutState = z.infer<typeof rolloutState>;

/** status.panic: panic mode's state (docs/panic.md), written under field manager healthgate-panic only. */
export const panicState = z.object({
  phase: z
    .enum(["Inactive", "Panicking", "Refused", "Stopped"])
    .describe(
      "Panicking: the Services listed publish every pod. Refused: below the floor, but panic would undo gating " +
        "or reach other workloads' pods (reason says which). Stopped: another field manager took " +
        "publishNotReadyAddresses back; healthgate leaves it alone until readiness has recovered.",
    ),
  reason: z.string().max(128).describe("CamelCase reason of the phase."),
  message: z.string().max(2048).describe("What happened and what to do."),
  since: z.string().meta({ format: "date-time" }).describe("When the phase began."),
  readyPercent: int32(0, 100).describe(
    "Ready percentage of the serving pods when this status was last written.",
  ),
  aboveFloorSince: z
    .string()
    .meta({ format: "date-time" })
    .optional()
    .describe(
      "While Panicking or Stopped: since when the Ready percentage has stayed at or above the floor.",
    ),
  services: z
    .array(
      z.object({
        name: objectName().describe("A Service healthgate set publishNotReadyAddresses: true on."),
        original: z.boolean().describe("Its publishNotReadyAddresses before: restored when panic ends."),
      }),
    )
    .max(64)
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
    .optional()
    .describe("The Services healthgate changed, with their original values. Empty outside Panicking."),
  conflict: z
    .object({
      service: objectName().describe("The Service whose publishNotReadyAddresses was taken back."),
      manager: z.string().max(256).describe("The field manager that took it (from managedFields), if named."),
    })
    .optional()
    .describe("Stopped: who took the field back."),
});
export type PanicState = z.infer<typeof panicState>;

export const healthTargetSpec = z.object({
  deployment: objectName().describe("The Deployment this record is for (same namespace)."),
  policy: objectName().describe("The HealthPolicy that governs it."),
});

/** `status.gating`, written by the gate webhook's side of healthgate (field manager healthgate-gate). */
export const gatingState = z.object({
  revision: z
    .string()
    .max(64)
    .optional()
    .describe("The gated revision (pod-template-hash) whose pods were admitted without the readiness gate."),
  ungatedPods: z
    .array(z.string().max(253))
    .max(100)
    .optional()
    .describe(
      "Pods of that revision created without the healthgate.io/deep-check gate while no healthgate replica " +
        "answered admission (fail-open): that part of the rollout ran ungated. At most 100 names.",
    ),
  ungatedCount: z.int().min(0).max(1_000_000).optional().describe("How many such pods there are."),
  observedAt: z.string().meta({ format: "date-time" }).optional().describe("When healthgate found them."),
});
export type GatingState = z.infer<typeof gatingState>;

export const healthTargetStatus = z.object({
  observedGeneration: z.int().min(0).meta({ format: "int64" }).optional(),
  stable: decision
    .optional()
    .describe("The decision the stable revision carries (the last released one that rolled out completely)."),
  guard: z
    .array(z.string().max(1024))
    .max(64)
    .optional()
    .describe(
      "Why admission cannot apply part of the released decision to the live template (it then changes nothing there).",
    ),
  rollout: rolloutState
    .optional()
    .describe("Rollout gating state (with spec.rollout), field manager healthgate-rollout."),
  gating: gatingState
    .optional()
    .describe("Fail-open reports of the gate webhook: pods of a gated revision admitted without the gate."),
  conditions: z
    .array(condition)
    .max(16)
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] })
    .optional()
    .describe(
      "Enforced: does the live template carry the released decision. ReleaseHeld (only while it holds): a new " +
        "decision waits because CorrelatedFailure is True.",
    ),
  panic: panicState.optional().describe("Panic mode (spec.guardrails.panic), written by healthgate-panic."),
  pacing: pacing
    .optional()
    .describe(
      "Release pacing (maxConcurrentRollouts): Queued while the newest decision waits for a rollout slot " +
        "(the index, HealthRelease, keeps the previous one released meanwhile). Absent outside Enforce.",
    ),
});
export type HealthTargetStatus = z.infer<typeof healthTargetStatus>;

const targetColumns = [
  { name: "Policy", type: "string", jsonPath: ".spec.policy", description: "Governing HealthPolicy." },
  {
    name: "Enforced",
    type: "string",
    jsonPath: `.status.conditions[?(@.type=="Enforced")].status`,
    description: "Does the live template carry the released decision?",
  },
  {
    name: "Reason",
    type: "string",
    jsonPath: `.status.conditions[?(@.type=="Enforced")].reason`,
    description: "Why it does or does not.",
  },
  {
    name: "Rollout",
    type: "string",
    jsonPath: ".status.rollout.phase",
    description: "Phase of the gated rollout.",
  },
  {
    name: "Pacing",
    type: "string",
    jsonPath: ".status.pacing.state",
    description: "Released, or Queued: the newest decision waits for a rollout slot.",
  },
  {
    name: "Panic",
    type: "string",
    jsonPath: ".status.panic.phase",
    description: "Panic mode: Panicking, Refused, Stopped or Inactive.",
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

export function healthTargetCRD() {
  return crdObject(
    { kind: TARGET_KIND, plural: TARGET_PLURAL, singular: TARGET_SINGULAR, shortNames: TARGET_SHORT_NAMES },
    targetColumns,
    {
      description:
        "HealthTarget is healthgate's record of one governed Deployment (same name): whether its template " +
        "carries the released Enforce decision (the namespace's HealthRelease holds that decision, and the " +
        "Deployment's healthgate.io/released label names it), the stable revision's decision, and rollout state. " +
        "Written by healthgate only.",
      type: "object",
      properties: {
        apiVersion: { type: "string" },
        kind: { type: "string" },
        metadata: { type: "object" },
        spec: structuralSchemaOf(healthTargetSpec, ".spec"),
        status: structuralSchemaOf(healthTargetStatus, ".status"),
      },
      required: ["spec"],
    },
  );
}
