// The headroom findings' metadata: what each checks, why and how to fix it, for
// docs/rules.md and lint's SARIF rules. The operator (concern.ts) and lint
// (offline.ts) raise them with these names and severities.
import type { RuleMeta } from "../probes/rule.ts";

/** The headroom findings, with what each checks and why, for docs/rules.md and SARIF. */
export const HEADROOM_RULES = {
  headroomInsufficient: {
    rule: "HeadroomInsufficient",
    severity: "error",
    checks:
      "After losing spec.headroom.tolerate replicas (or the largest zone), the survivors would run above the ceiling: " +
      "peak × N / (N − k) > ceilingPercent (Static: the policy's peak; HPA: its CPU target at minReplicas).",
    rationale:
      "The failure the replicas exist to absorb overloads the ones left, so one loss at peak cascades into more.",
    fix: "Run the replica count (or HPA minReplicas / target) the message names.",
  },
  headroomNoSurvivor: {
    rule: "HeadroomNoSurvivor",
    severity: "warning",
    checks:
      "Lint only, when no utilization is known (no Static peak, no HPA in the input): losing tolerate replicas " +
      "(default 1), alone or while a rolling update takes its maxUnavailable, leaves no replica. A Deployment " +
      "without spec.replicas runs 1.",
    rationale:
      "With a single replica (or as many as may be lost) every crash, eviction, node drain or rolling update is an outage.",
    fix:
      "Run at least the replica count the message names (or lower maxUnavailable); add an HPA or a HealthPolicy with " +
      "a Static peak so the load after a loss is judged too.",
  },
  maxUnavailableTooHigh: {
    rule: "MaxUnavailableTooHigh",
    severity: "warning",
    checks:
      "The rolling update's maxUnavailable, added to the tolerated loss, leaves survivors above the ceiling.",
    rationale: "A replica lost during a rollout then overloads the rest: rollouts are when failures happen.",
    fix: "Set spec.strategy.rollingUpdate.maxUnavailable to the value the message names (with maxSurge ≥ 1 when 0).",
  },
  zoneSpreadUneven: {
    rule: "ZoneSpreadUneven",
    severity: "warning",
    checks:
      "Operator only (it needs the pods' nodes): one zone holds more of the pods than an even spread would, and " +
      "losing it takes more than tolerate.",
    rationale: "A zone outage then removes more capacity than the headroom was sized for.",
    fix: "Add a topologySpreadConstraint on topology.kubernetes.io/zone with maxSkew 1.",
  },
  recreateStrategy: {
    rule: "RecreateStrategy",
    severity: "warning",
    checks: "The Deployment uses strategy Recreate.",
    rationale: "Every rollout takes all replicas down at once: an outage per deploy.",
    fix: "Use RollingUpdate with the maxUnavailable the message names.",
  },
} as const satisfies Record<string, RuleMeta>;
