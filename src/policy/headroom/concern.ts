// The headroom concern (DESIGN.md, "Headroom"): will the survivors carry peak
// load after losing k replicas (or the largest zone), and during a rollout?
// snapshot → HeadroomSufficient condition, figures, findings, an Event intent
// when insufficient, and the optional PodDisruptionBudget.
import type { Pod } from "../../api/k8s.ts";
import {
  ConditionType,
  durationSeconds,
  type Finding,
  type HeadroomFigures,
  type HeadroomSpec,
} from "../../api/v1alpha1/index.ts";
import type { ConditionIntent, Concern, Contribution, TargetSnapshot } from "../seam.ts";
import {
  formatWindow,
  hpaTarget,
  peakUtilization,
  rolloutInProgress,
  type RolloutStrategy,
  rolloutStrategy,
} from "./inputs.ts";
import {
  afterLossPercent,
  carries,
  hpaLoad,
  type Load,
  type Loss,
  lossAt,
  type LossModel,
  maxSafeMaxUnavailable,
  REPLICA_SEARCH_LIMIT,
  rolloutLossAt,
  safeTargetPercent,
  smallestSafeReplicas,
  staticLoad,
  type ZoneSpread,
  zoneSpread,
} from "./math.ts";
import { assessDisruptionBudgets } from "./pdb.ts";
import { HEADROOM_RULES } from "./rules.ts";

const DEFAULT_WINDOW = "1h";

/** Reasons of HeadroomSufficient. */
export const HeadroomReason = {
  Sufficient: "Sufficient",
  ScaledToZero: "ScaledToZero",
  TooFewReplicas: "TooFewReplicas",
  HPATargetTooHigh: "HPATargetTooHigh",
  RolloutTooAggressive: "RolloutTooAggressive",
  ZoneLossTooLarge: "ZoneLossTooLarge",
  HPANotFound: "HPANotFound",
  HPAHasNoUtilizationTarget: "HPAHasNoUtilizationTarget",
  MetricsUnavailable: "MetricsUnavailable",
  NoResourceRequests: "NoResourceRequests",
  InvalidRollingUpdate: "InvalidRollingUpdate",
  PeakUtilizationMissing: "PeakUtilizationMissing",
} as const;
export type HeadroomReason = (typeof HeadroomReason)[keyof typeof HeadroomReason];

export const headroomConcern: Concern = (snapshot) => {
  const spec = snapshot.policy.spec.headroom;
  if (!spec)
    return { concern: "headroom", conditions: [], findings: [], figures: {}, events: [], ownedObjects: [] };
  const budgets = assessDisruptionBudgets({
    deployment: snapshot.deployment,
    pdbs: snapshot.pdbs,
    tolerate: spec.tolerate,
    manage: spec.managePodDisruptionBudget,
  });
  const assessment = assessHeadroom(snapshot, spec);
  const { condition } = assessment;
  const contribution: Contribution = {
    concern: "headroom",
    conditions: [condition],
    findings: [...assessment.findings, ...budgets.findings],
    figures: assessment.figures ? { headroom: assessment.figures } : {},
    events:
      condition.status === "False"
        ? [{ regarding: "Deployment", type: "Warning", reason: condition.reason, message: condition.message }]
        : [],
    ownedObjects: budgets.ownedObjects,
  };
  if (assessment.requeueAfterSeconds !== undefined)
    contribution.requeueAfterSeconds = assessment.requeueAfterSeconds;
  return contribution;
};

export interface HeadroomAssessment {
  condition: ConditionIntent;
  figures?: HeadroomFigures;
  findings: Finding[];
  requeueAfterSeconds?: number;
}

const condition = (
  status: ConditionIntent["status"],
  reason: HeadroomReason,
  message: string,
): ConditionIntent => ({
  type: ConditionType.HeadroomSufficient,
  status,
  reason,
  message,
});

const unknown = (reason: HeadroomReason, message: string): HeadroomAssessment => ({
  condition: condition("Unknown", reason, message),
  findings: [],
});

/** Pods that hold capacity somewhere: scheduled, not terminating, not finished. */
const activePodNodes = (pods: readonly Pod[]): string[] =>
  pods.flatMap((p) =>
    p.spec.nodeName !== undefined &&
    p.metadata.deletionTimestamp === undefined &&
    p.status?.phase !== "Succeeded" &&
    p.status?.phase !== "Failed"
      ? [p.spec.nodeName]
      : [],
  );

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The inputs after the source is resolved: one load, evaluated at one replica count. */
interface Evaluation {
  source: HeadroomFigures["source"];
  /** The sentence's subject, e.g. "4 replicas at 80% peak". */
  subject: string;
  load: Load;
  /** N (HPA: minReplicas). */
  replicas: number;
  peakPercent: number;
  hpa?: { name: string; targetPercent: number; minReplicas: number; maxReplicas: number };
  requeueAfterSeconds?: number;
}

/** What the headroom assessment reads from a snapshot (lint builds one from files). */
export type HeadroomInputs = Pick<
  TargetSnapshot,
  "deployment" | "replicaSets" | "pods" | "hpa" | "nodeZones" | "usage" | "now"
>;

export function assessHeadroom(snapshot: HeadroomInputs, spec: HeadroomSpec): HeadroomAssessment {
  const deployment = snapshot.deployment;
  const name = deployment.metadata.name;
  const c = spec.ceilingPercent;

  const evaluation = resolveSource(snapshot, spec);
  if ("condition" in evaluation) return evaluation;

  const strategy = rolloutStrategy(deployment);
  const inProgress = rolloutInProgress(snapshot.replicaSets);
  if (inProgress && !strategy.ok) return unknown(HeadroomReason.InvalidRollingUpdate, strategy.message);

  const zone = spec.zones ? zoneSpread(activePodNodes(snapshot.pods), snapshot.nodeZones) : undefined;
  const steady: LossModel = { tolerate: spec.tolerate, ...(zone ? { zone } : {}) };
  const model: LossModel = inProgress && strategy.ok ? { ...steady, rollout: strategy.disruption } : steady;
  const { load, replicas: n, source } = evaluation;

  if (source !== "HPA" && n === 0) {
    return {
      condition: condition(
        "True",
        HeadroomReason.ScaledToZero,
        `Deployment ${name} is scaled to 0 replicas: there is no load to carry`,
      ),
      figures: {
        source,
        replicas: 0,
        tolerate: spec.tolerate,
        rolloutLoss: 0,
        peakPercent: bounded(evaluation.peakPercent, 100_000),
        ceilingPercent: c,
        ok: true,
      },
      findings: [],
      ...(evaluation.requeueAfterSeconds !== undefined
        ? { requeueAfterSeconds: evaluation.requeueAfterSeconds }
        : {}),
    };
  }

  const loss = lossAt(model, n);
  const ok = carries(load, n, loss.total, c);
  const after = afterLossPercent(load, n, loss.total);
  const steadyLoss = lossAt(steady, n);
  const steadyOk = carries(load, n, steadyLoss.total, c);
  const maxSafe = maxSafeMaxUnavailable(load, steady, n, c);
  const smallest = smallestSafeReplicas(load, model, c);
  const safeTarget = evaluation.hpa ? safeTargetPercent(n, model, c) : undefined;

  const figures: HeadroomFigures = {
    source,
    replicas: bounded(n, 100_000),
    ...(evaluation.hpa
      ? {
          minReplicas: bounded(evaluation.hpa.minReplicas, 100_000),
          maxReplicas: bounded(evaluation.hpa.maxReplicas, 100_000),
        }
      : {}),
    tolerate: bounded(loss.failures, 100_000),
    rolloutLoss: bounded(loss.rollout, 100_000),
    peakPercent: bounded(evaluation.peakPercent, 100_000),
    ...(after !== undefined ? { afterLossPercent: bounded(after, 1_000_000) } : {}),
    ceilingPercent: c,
    ok,
    ...(smallest !== undefined
      ? evaluation.hpa
        ? { safeMinReplicas: smallest }
        : { requiredReplicas: smallest }
      : {}),
    ...(safeTarget !== undefined ? { safeTargetPercent: safeTarget } : {}),
    ...(maxSafe !== undefined ? { maxSafeMaxUnavailable: bounded(maxSafe, 100_000) } : {}),
    ...(loss.zoneDecides && zone ? { worstZone: zone.zone } : {}),
  };

  const rawMaxUnavailable = strategy.ok ? strategy.rawMaxUnavailable : undefined;
  const ceilingNote = after === undefined ? "" : ` (ceiling ${c}%)`;
  const situation = `${evaluation.subject}: ${describeLoss({ loss, replicas: n, after, zone, rawMaxUnavailable, hpa: !!evaluation.hpa })}${ceilingNote}`;
  const findings: Finding[] = [];

  let result: ConditionIntent;
  if (ok) {
    const rollingRoom =
      maxSafe !== undefined ? `; rolling updates stay safe up to maxUnavailable ${maxSafe}` : "";
    result = condition("True", HeadroomReason.Sufficient, `${situation}${rollingRoom}`);
  } else {
    const reason: HeadroomReason =
      inProgress && steadyOk
        ? HeadroomReason.RolloutTooAggressive
        : loss.zoneDecides && carries(load, n, spec.tolerate + loss.rollout, c)
          ? HeadroomReason.ZoneLossTooLarge
          : evaluation.hpa
            ? HeadroomReason.HPATargetTooHigh
            : HeadroomReason.TooFewReplicas;
    const advice = adviseFix({
      reason,
      recreate: model.rollout?.strategy === "Recreate",
      maxSafe,
      smallest,
      safeTarget,
      hpa: evaluation.hpa,
      ceiling: c,
    });
    result = condition("False", reason, `${situation}; ${advice}`);
    if (reason !== HeadroomReason.RolloutTooAggressive) {
      findings.push({
        rule: HEADROOM_RULES.headroomInsufficient.rule,
        severity: HEADROOM_RULES.headroomInsufficient.severity,
        message: `Deployment ${name}: ${result.message}`,
      });
    }
  }

  findings.push(...rolloutFindings({ name, strategy, steadyLoss, steadyOk, load, n, c, maxSafe }));
  if (zone && steadyLoss.zoneDecides) {
    const even = Math.ceil(zone.of / zone.zonesInCluster);
    if (zone.pods > even) {
      findings.push({
        rule: HEADROOM_RULES.zoneSpreadUneven.rule,
        severity: HEADROOM_RULES.zoneSpreadUneven.severity,
        message:
          `zone ${zone.zone} holds ${zone.pods} of the ${zone.of} scheduled pods of Deployment ${name} (an even spread over ` +
          `${zone.zonesInCluster} zones puts at most ${even} in one), so losing it takes more than tolerate (${spec.tolerate}); ` +
          `add a topologySpreadConstraint on topology.kubernetes.io/zone with maxSkew 1`,
      });
    }
  }

  return {
    condition: result,
    figures,
    findings,
    ...(evaluation.requeueAfterSeconds !== undefined
      ? { requeueAfterSeconds: evaluation.requeueAfterSeconds }
      : {}),
  };
}

const bounded = (n: number, max: number) => Math.min(n, max);

function resolveSource(snapshot: HeadroomInputs, spec: HeadroomSpec): Evaluation | HeadroomAssessment {
  const deployment = snapshot.deployment;
  const name = deployment.metadata.name;
  const n = deployment.spec.replicas ?? 1;
  switch (spec.source) {
    case "Static": {
      const u = spec.peakUtilizationPercent;
      if (u === undefined) {
        return unknown(
          HeadroomReason.PeakUtilizationMissing,
          "source Static needs spec.headroom.peakUtilizationPercent (e.g. 70); set it, or use source HPA or Metrics",
        );
      }
      // The total peak load is fixed at u × peakReplicas; at n replicas each carries its share.
      const observedAt = spec.peakReplicas ?? n;
      const share = n > 0 ? Math.ceil((u * observedAt) / n) : u;
      return {
        source: "Static",
        subject: `${plural(n, "replica")} at ${share}% peak`,
        load: staticLoad(u, observedAt),
        replicas: n,
        peakPercent: share,
      };
    }
    case "Metrics": {
      const window = spec.window ?? DEFAULT_WINDOW;
      const windowSeconds = durationSeconds(window) || 3600;
      const peak = peakUtilization({
        deploymentName: name,
        usage: snapshot.usage,
        pods: snapshot.pods,
        template: deployment.spec.template.spec.containers,
        windowSeconds,
        now: snapshot.now,
      });
      if (!peak.ok) return unknown(peak.reason, peak.message);
      // The peak may drop when its sample leaves the window: look again then.
      const expiresInMs = peak.at.getTime() + windowSeconds * 1000 - snapshot.now.getTime();
      return {
        source: "Metrics",
        subject: `${plural(n, "replica")} at ${peak.peakPercent}% measured peak (last ${formatWindow(windowSeconds)})`,
        load: staticLoad(peak.peakPercent, n),
        replicas: n,
        peakPercent: peak.peakPercent,
        requeueAfterSeconds: Math.max(1, Math.ceil(expiresInMs / 1000)),
      };
    }
    case "HPA": {
      const target = hpaTarget(snapshot.hpa);
      if (!target.ok) {
        return target.reason === "HPANotFound"
          ? unknown(
              HeadroomReason.HPANotFound,
              `source HPA, but no HorizontalPodAutoscaler targets Deployment ${name}; create one (autoscaling/v2 with a CPU ` +
                `Utilization target), or set spec.headroom.source to Static with peakUtilizationPercent`,
            )
          : unknown(
              HeadroomReason.HPAHasNoUtilizationTarget,
              `HorizontalPodAutoscaler ${target.hpa ?? ""} of Deployment ${name} has no CPU Utilization target (a Resource ` +
                `metric named cpu with target.type Utilization), so its peak is unknown; add one, or set ` +
                `spec.headroom.source to Static or Metrics`,
            );
      }
      const hpa = target.value;
      return {
        source: "HPA",
        subject: `HPA target ${hpa.targetPercent}% at minReplicas ${hpa.minReplicas}`,
        load: hpaLoad(hpa.targetPercent),
        replicas: hpa.minReplicas,
        peakPercent: hpa.targetPercent,
        hpa,
      };
    }
  }
}

/** "losing 1 leaves 3 at 107%", "losing zone a (3 pods) while the rollout takes 1 more (maxUnavailable 25%) leaves none". */
function describeLoss(input: {
  loss: Loss;
  replicas: number;
  after: number | undefined;
  zone: ZoneSpread | undefined;
  rawMaxUnavailable: string | undefined;
  hpa: boolean;
}): string {
  const { loss, replicas, after, zone } = input;
  const failures =
    loss.zoneDecides && zone
      ? `losing zone ${zone.zone} (${plural(loss.failures, "pod")})`
      : `losing ${loss.failures}`;
  const rollout =
    loss.rollout === 0
      ? ""
      : input.rawMaxUnavailable === undefined
        ? ` while a Recreate rollout takes all ${loss.rollout}`
        : ` while the rollout takes ${loss.rollout} more (maxUnavailable ${input.rawMaxUnavailable})`;
  const survivors = replicas - loss.total;
  const left =
    after === undefined
      ? " leaves none"
      : ` leaves ${survivors} at ${after}%${input.hpa ? " until the HPA reacts" : ""}`;
  return `${failures}${rollout}${left}`;
}

/** What exactly to change, given why the headroom is short. */
function adviseFix(input: {
  reason: HeadroomReason;
  recreate: boolean;
  maxSafe: number | undefined;
  smallest: number | undefined;
  safeTarget: number | undefined;
  hpa: Evaluation["hpa"];
  ceiling: number;
}): string {
  const { reason, maxSafe, smallest, safeTarget, hpa } = input;
  const options: string[] = [];
  if (reason === HeadroomReason.RolloutTooAggressive && maxSafe !== undefined) {
    const surge = maxSafe === 0 ? " (with maxSurge at least 1)" : "";
    options.push(
      input.recreate
        ? `switch spec.strategy to RollingUpdate with maxUnavailable ${maxSafe}${surge}`
        : `set spec.strategy.rollingUpdate.maxUnavailable to ${maxSafe}${surge}`,
    );
  }
  if (reason === HeadroomReason.ZoneLossTooLarge) {
    options.push("spread the pods across zones (a topologySpreadConstraint on topology.kubernetes.io/zone)");
  }
  if (hpa) {
    if (safeTarget !== undefined) options.push(`lower the target to ${safeTarget}%`);
    if (smallest !== undefined) {
      const max =
        smallest > hpa.maxReplicas
          ? ` (and maxReplicas, now ${hpa.maxReplicas}, to at least ${smallest})`
          : "";
      options.push(`raise minReplicas to ${smallest}${max}`);
    }
  } else if (smallest !== undefined) {
    options.push(`run at least ${plural(smallest, "replica")}`);
  }
  let advice =
    options.length > 0
      ? options.join(" or ")
      : `no replica count up to ${REPLICA_SEARCH_LIMIT} is enough; lower spec.headroom.tolerate, maxUnavailable or the ` +
        `peak, or spread the pods across zones`;
  if (hpa && smallest === undefined && options.length > 0 && hpa.targetPercent >= input.ceiling) {
    advice += ` (at a target at or above the ${input.ceiling}% ceiling no minReplicas is enough)`;
  }
  return advice;
}

/** Findings about the rollout strategy, judged at steady state (they matter before the next rollout starts). */
function rolloutFindings(input: {
  name: string;
  strategy: RolloutStrategy;
  steadyLoss: Loss;
  steadyOk: boolean;
  load: Load;
  n: number;
  c: number;
  maxSafe: number | undefined;
}): Finding[] {
  const { name, strategy, steadyLoss, steadyOk, load, n, c, maxSafe } = input;
  if (!strategy.ok) return [];
  const safe =
    maxSafe !== undefined
      ? `maxUnavailable ${maxSafe}${maxSafe === 0 ? " (with maxSurge at least 1)" : ""}`
      : "";
  if (strategy.disruption.strategy === "Recreate") {
    return [
      {
        rule: HEADROOM_RULES.recreateStrategy.rule,
        severity: HEADROOM_RULES.recreateStrategy.severity,
        field: "spec.strategy.type",
        message:
          `Deployment ${name} uses strategy Recreate: every rollout takes all ${n} replicas down at once; use RollingUpdate` +
          (safe ? ` with ${safe}` : ""),
      },
    ];
  }
  if (!steadyOk || maxSafe === undefined) return [];
  const r = rolloutLossAt(strategy.disruption, n);
  if (r <= maxSafe) return [];
  const lost = steadyLoss.total + r;
  const after = afterLossPercent(load, n, lost);
  const left = after === undefined ? "leave none" : `leave ${n - lost} at ${after}%`;
  return [
    {
      rule: HEADROOM_RULES.maxUnavailableTooHigh.rule,
      severity: HEADROOM_RULES.maxUnavailableTooHigh.severity,
      field: "spec.strategy.rollingUpdate.maxUnavailable",
      message:
        `Deployment ${name}: maxUnavailable ${strategy.rawMaxUnavailable ?? r} lets a rollout take ${r} of ${n} replicas; ` +
        `losing ${steadyLoss.zoneDecides ? `the largest zone (${plural(steadyLoss.failures, "pod")})` : steadyLoss.failures} ` +
        `during one would ${left} (ceiling ${c}%); set spec.strategy.rollingUpdate.maxUnavailable to ${maxSafe}` +
        (maxSafe === 0 ? " (with maxSurge at least 1)" : ""),
    },
  ];
}
