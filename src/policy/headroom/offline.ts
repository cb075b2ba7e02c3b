// Headroom judged offline, from manifests alone (`healthgate lint`): the same
// assessment the operator runs (assessHeadroom), on a snapshot that holds only
// what files can hold — the Deployment and an HPA that targets it. No pods,
// ReplicaSets or nodes: no rollout is in progress and there is no zone view.
// Without a utilization (no Static peak, no HPA in the input) the load after a
// loss is unknown, but whether any replica survives the loss is not: that is
// judged by replica count alone.
import type { Deployment, HorizontalPodAutoscaler } from "../../api/k8s.ts";
import type { Finding, HeadroomSpec } from "../../api/v1alpha1/index.ts";
import { assessHeadroom } from "./concern.ts";
import { rolloutStrategy } from "./inputs.ts";
import { lossAt, rolloutLossAt, smallestSafeReplicas } from "./math.ts";
import { HEADROOM_RULES } from "./rules.ts";

export interface OfflineHeadroomInput {
  deployment: Deployment;
  /** An autoscaling/v2 HPA in the input whose scaleTargetRef is this Deployment. */
  hpa?: HorizontalPodAutoscaler;
  spec: HeadroomSpec;
}

export interface OfflineHeadroom {
  findings: Finding[];
  /** How it was judged, or why not: "HPA", "Static", "replicas" (no utilization), or "not judged". */
  judged: "HPA" | "Static" | "replicas" | "not judged";
  /** Why it was not judged, or what is left unjudged; for lint's notes. */
  note?: string;
}

/** A fixed instant: Static and HPA sources never read the clock (only Metrics does, which is not judged here). */
const EPOCH = new Date(0);

export function assessHeadroomOffline(input: OfflineHeadroomInput): OfflineHeadroom {
  const { deployment, hpa, spec } = input;
  if (spec.source === "Metrics") {
    return {
      findings: [],
      judged: "not judged",
      note: "headroom source Metrics reads metrics.k8s.io, which a file does not hold; not judged offline (the operator judges it)",
    };
  }
  if (spec.source === "Static" || hpa) {
    const assessment = assessHeadroom(
      {
        deployment,
        replicaSets: [],
        pods: [],
        nodeZones: {},
        now: EPOCH,
        ...(hpa ? { hpa } : {}),
      },
      { ...spec, zones: false },
    );
    if (assessment.condition.status === "Unknown") {
      return { findings: [], judged: "not judged", note: assessment.condition.message };
    }
    return { findings: assessment.findings, judged: spec.source === "Static" ? "Static" : "HPA" };
  }
  return { findings: survivorFindings(deployment, spec.tolerate), judged: "replicas" };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Without a utilization: does any replica survive losing k, at steady state and during a rolling update? */
function survivorFindings(deployment: Deployment, tolerate: number): Finding[] {
  const name = deployment.metadata.name;
  const n = deployment.spec.replicas ?? 1;
  if (n === 0) return [];
  const replicas =
    deployment.spec.replicas === undefined
      ? "1 replica (no spec.replicas: the default)"
      : plural(n, "replica");
  const strategy = rolloutStrategy(deployment);
  const nothing = { fixedPercent: 0, perReplicaPercent: 0 };
  const meta = HEADROOM_RULES.headroomNoSurvivor;
  const steady = lossAt({ tolerate }, n);
  if (n - steady.total < 1) {
    const enough = smallestSafeReplicas(nothing, { tolerate }, 100) ?? tolerate + 1;
    return [
      {
        rule: meta.rule,
        severity: meta.severity,
        field: "spec.replicas",
        message:
          `Deployment ${name} runs ${replicas}; losing ${tolerate} (tolerate) leaves none, so any crash, eviction or ` +
          `node drain is an outage; run at least ${plural(enough, "replica")}`,
      },
    ];
  }
  if (!strategy.ok) return [];
  if (strategy.disruption.strategy === "Recreate") {
    const meta = HEADROOM_RULES.recreateStrategy;
    return [
      {
        rule: meta.rule,
        severity: meta.severity,
        field: "spec.strategy.type",
        message: `Deployment ${name} uses strategy Recreate: every rollout takes all ${n} replicas down at once; use RollingUpdate with maxUnavailable ${n - tolerate - 1}${n - tolerate - 1 === 0 ? " (with maxSurge at least 1)" : ""}`,
      },
    ];
  }
  const r = rolloutLossAt(strategy.disruption, n);
  if (n - steady.total - r >= 1) return [];
  const safe = n - steady.total - 1;
  return [
    {
      rule: meta.rule,
      severity: meta.severity,
      field: "spec.strategy.rollingUpdate.maxUnavailable",
      message:
        `Deployment ${name} runs ${replicas}; losing ${tolerate} (tolerate) while a rolling update takes ${r} ` +
        `(maxUnavailable ${strategy.rawMaxUnavailable ?? r}) leaves none; set spec.strategy.rollingUpdate.maxUnavailable ` +
        `to ${safe}${safe === 0 ? " (with maxSurge at least 1)" : ""}`,
    },
  ];
}
