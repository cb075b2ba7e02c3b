import { z } from "zod";
import { int32 } from "./common.ts";

// HealthPolicy.status: written only by healthgate (status subresource).

const dateTime = () => z.string().meta({ format: "date-time" });

/** metav1.Condition, with the apimachinery bounds. */
export const condition = z.object({
  type: z
    .string()
    .min(1)
    .max(316)
    .regex(
      /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
    )
    .describe("Condition type in CamelCase, e.g. Ready, ProbesCompliant."),
  status: z.enum(["True", "False", "Unknown"]).describe("True, False or Unknown."),
  observedGeneration: z
    .int()
    .min(0)
    .meta({ format: "int64" })
    .optional()
    .describe("The .metadata.generation the condition was set from."),
  lastTransitionTime: dateTime().describe("When status last changed."),
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
    .describe("CamelCase reason for the condition's last transition."),
  message: z.string().max(32768).describe("Human-readable message: what is wrong and what to do."),
});
export type Condition = z.infer<typeof condition>;

/** At most this many targets are listed in a policy's status (targetsOmitted counts the rest). */
export const MAX_STATUS_TARGETS = 1000;
/** …and at most about this many bytes of them: etcd refuses objects over 1.5 MiB. */
export const MAX_STATUS_TARGETS_BYTES = 512 * 1024;

export const severity = z.enum(["info", "warning", "error", "critical"]);
export type Severity = z.infer<typeof severity>;

export const finding = z.object({
  rule: z.string().max(64).describe("Rule identifier in CamelCase, e.g. LivenessDeep (see docs/rules.md)."),
  severity: severity.describe("info < warning < error < critical."),
  container: z.string().max(63).optional().describe("Container the finding is about, if any."),
  field: z
    .string()
    .max(256)
    .optional()
    .describe("Field path the finding is about, e.g. livenessProbe.httpGet.path."),
  message: z.string().max(4096).describe("What is wrong, why it matters and how to fix it."),
});
export type Finding = z.infer<typeof finding>;

export const detectionFigures = z.object({
  container: z.string().max(63).describe("Container the figures are for."),
  ejectSeconds: z
    .number()
    .min(0)
    .optional()
    .describe("Worst case to remove from endpoints: readiness period × failureThreshold + timeout."),
  readmitSeconds: z
    .number()
    .min(0)
    .optional()
    .describe("Worst case to readmit: readiness period × successThreshold."),
  restartSeconds: z
    .number()
    .min(0)
    .optional()
    .describe(
      "Worst case to restart a hung container: liveness period × failureThreshold + timeout + termination grace.",
    ),
});
export type DetectionFigures = z.infer<typeof detectionFigures>;

export const headroomFigures = z.object({
  source: z
    .enum(["Static", "HPA", "Metrics"])
    .describe("Where the peak utilization came from (spec.headroom.source)."),
  replicas: int32(0, 100000).describe("N: desired replicas (with an HPA, evaluated at minReplicas)."),
  minReplicas: int32(0, 100000)
    .optional()
    .describe("The HPA's minReplicas, when an HPA targets the Deployment."),
  maxReplicas: int32(0, 100000)
    .optional()
    .describe("The HPA's maxReplicas, when an HPA targets the Deployment."),
  tolerate: int32(0, 100000).describe("k: replicas lost (the largest zone's pods when that is worse)."),
  rolloutLoss: int32(0, 100000).describe(
    "r: replicas a rolling update takes away (resolved maxUnavailable).",
  ),
  peakPercent: int32(0, 100000).describe(
    "u: peak utilization per replica, percent of requests (HPA: its target).",
  ),
  afterLossPercent: int32(0, 1000000)
    .optional()
    .describe("Load per survivor after the loss, percent: u × N / (N − k − r)."),
  ceilingPercent: int32(0, 100).describe(
    "c: the highest utilization a survivor may run at, percent (spec.headroom.ceilingPercent).",
  ),
  ok: z.boolean().describe("True when the load per survivor after the loss stays at or below the ceiling."),
  requiredReplicas: int32(0, 1000000)
    .optional()
    .describe("Static/Metrics: the fewest replicas that stay under the ceiling."),
  safeTargetPercent: int32(0, 100)
    .optional()
    .describe("HPA: the largest safe utilization target at minReplicas."),
  safeMinReplicas: int32(0, 1000000)
    .optional()
    .describe("HPA: the smallest safe minReplicas at the current target."),
  maxSafeMaxUnavailable: int32(0, 100000)
    .optional()
    .describe("The largest rolling-update maxUnavailable that stays safe."),
  worstZone: z
    .string()
    .max(63)
    .optional()
    .describe("The zone whose loss is worst, when the zone view decides."),
});
export type HeadroomFigures = z.infer<typeof headroomFigures>;

export const rolloutPhase = z.enum([
  "Idle",
  "Progressing",
  "Baking",
  "Holding",
  "Inconclusive",
  "Aborted",
  "Completed",
]);
export type RolloutPhase = z.infer<typeof rolloutPhase>;

const podCounts = (which: string) =>
  z
    .object({
      passing: int32(0, 1000000).describe(
        `${which} pods whose deep checks passed successThreshold times in a row.`,
      ),
      failing: int32(0, 1000000).describe(
        `${which} pods whose deep checks failed failureLimit times in a row.`,
      ),
      unreachable: int32(0, 1000000).describe(
        `${which} pods healthgate could not reach failureLimit times in a row (transport errors).`,
      ),
      pending: int32(0, 1000000).describe(`${which} pods deep-checked that stand at neither threshold yet.`),
      unchecked: int32(0, 1000000).describe(
        `${which} pods healthgate cannot deep-check (hostNetwork, no pod IP, port not declared; the ` +
          "healthgate_deep_check_unchecked_pods metric by reason).",
      ),
    })
    .describe(`${which} pods by deep-check standing, from the operator's memory.`);

export const rolloutFigures = z.object({
  phase: rolloutPhase.describe(
    "Idle, Progressing (admitting new pods), Baking (holding at a step), Holding (stopped: failure or guard), " +
      "Inconclusive (stable pods fail too: a shared dependency is down), Aborted or Completed.",
  ),
  step: int32(0, 10).optional().describe("Index of the current step in spec.rollout.steps, from 0."),
  weight: int32(0, 100).optional().describe("Weight of the current step, percent."),
  stableRevision: z
    .string()
    .max(64)
    .optional()
    .describe("pod-template-hash of the stable (last completed) revision."),
  canaryRevision: z
    .string()
    .max(64)
    .optional()
    .describe("pod-template-hash of the revision being rolled out."),
  admittedCanaryPods: int32(0, 100000)
    .optional()
    .describe("New pods whose healthgate.io/deep-check gate is True."),
  stepStartedAt: dateTime().optional().describe("When the current step started baking."),
  deepChecks: z
    .object({ canary: podCounts("New (canary)"), stable: podCounts("Sampled stable") })
    .optional()
    .describe(
      "Pods deep-checked now, by standing: new revision against the stable sample (`healthgate rollout status` " +
        "lists them one by one). Absent while no pod is deep-checked.",
    ),
});
export type RolloutFigures = z.infer<typeof rolloutFigures>;

export const guardFigures = z.object({
  correlatedFailure: z
    .object({
      since: dateTime().describe("When the correlated failure was detected."),
      unreadyPods: int32(0, 100000).describe("Serving pods unready now."),
      servingPods: int32(0, 100000).describe(
        "Pods that count: Ready, or unready after having been Ready (gate-held and never-Ready pods do not).",
      ),
      windowSeconds: int32(0, 3600).describe(
        "The window the pods went unready within (guardrails.windowSeconds).",
      ),
      zone: z
        .string()
        .max(63)
        .optional()
        .describe("The zone whose every pod went unready, if that triggered it."),
      clearsAt: dateTime()
        .optional()
        .describe(
          "When it clears if the unready pods stay at or below the threshold until then (hysteresis).",
        ),
    })
    .optional()
    .describe("Present while a correlated failure is active: healthgate takes no capacity-shrinking action."),
  flapping: z
    .array(
      z.object({
        pod: z.string().max(253).describe("The flapping pod's name."),
        transitions: int32(0, 100000).describe("Readiness changes within guardrails.flapping.windowSeconds."),
        reports: int32(0, 100000).describe(
          "Times this pod has been reported (Event, metric) since it began flapping.",
        ),
        nextReportAt: dateTime()
          .optional()
          .describe("No report (Event) of this pod before then: exponential backoff for repeat offenders."),
      }),
    )
    .max(20)
    .optional()
    .describe("Pods whose readiness flaps faster than guardrails.flapping allows (at most 20 listed)."),
});
export type GuardFigures = z.infer<typeof guardFigures>;

/** Release pacing of one Deployment (its record's status.pacing; listed in the policy's targets too). */
export const pacing = z.object({
  state: z
    .enum(["Released", "Queued"])
    .describe(
      "Queued: the newest decision waits for a rollout slot (maxConcurrentRollouts). Released: it is released.",
    ),
  pendingRevision: z.string().max(32).optional().describe("While Queued: the decision waiting for a slot."),
  since: dateTime()
    .optional()
    .describe(
      "While Queued: since when it waits (first come, first served). Released: when its release took a rollout " +
        "slot (absent when it needed none: it changed no template, or rode along with a rollout already under way).",
    ),
});
export type Pacing = z.infer<typeof pacing>;

export const targetStatus = z.object({
  name: z.string().max(253).describe("Deployment name."),
  governed: z
    .boolean()
    .describe("False when an older policy governs this Deployment (see the Ready condition)."),
  detection: z
    .array(detectionFigures)
    .max(32)
    .optional()
    .describe("Worst-case detection times per container, in seconds."),
  findings: z.array(finding).max(256).optional().describe("What the probe rules found, most severe first."),
  headroom: headroomFigures.optional().describe("N−k headroom figures (with spec.headroom)."),
  rollout: rolloutFigures.optional().describe("Rollout gating state (with spec.rollout)."),
  guard: guardFigures
    .optional()
    .describe("Correlated-failure guard: an active correlated failure, flapping pods."),
  pacing: pacing.optional().describe("Enforce's release pacing (the record's status.pacing)."),
});
export type TargetStatus = z.infer<typeof targetStatus>;

export const healthPolicyStatus = z
  .object({
    observedGeneration: z
      .int()
      .min(0)
      .meta({ format: "int64" })
      .optional()
      .describe("The .metadata.generation this status was computed from."),
    conditions: z
      .array(condition)
      .max(16)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] })
      .optional()
      .describe(
        "Ready, ProbesCompliant, LivenessShallow, HeadroomSufficient, RolloutHealthy, CorrelatedFailure, RolloutGated.",
      ),
    targetCount: int32(0, 100000).optional().describe("Deployments this policy selects."),
    compliantCount: int32(0, 100000)
      .optional()
      .describe("Selected Deployments with no finding at error or above."),
    rolloutPhase: rolloutPhase.optional().describe("Phase of the most advanced rollout among the targets."),
    releasesQueued: int32(0, 100000)
      .optional()
      .describe(
        "Enforce: selected Deployments whose newest decision waits for a rollout slot (maxConcurrentRollouts).",
      ),
    targetsOmitted: int32(0, 100000)
      .optional()
      .describe(
        "Targets left out of `targets` to keep the object within the API server's size limits: the ones with the most severe findings are listed, targetCount counts them all.",
      ),
    targets: z
      .array(targetStatus)
      .max(MAX_STATUS_TARGETS)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
      .optional()
      .describe("Per-Deployment figures and findings."),
  })
  .describe("Observed state, written by healthgate only (status subresource).");
export type HealthPolicyStatus = z.infer<typeof healthPolicyStatus>;
