import { describe, expect, it } from "vitest";
import { lint } from "../../../src/cli/lint.ts";

// Headroom in `healthgate lint`: the operator's assessment on what the files hold
// (src/policy/headroom/offline.ts). Each row is one input read from stdin.

const deployment = (spec: string, name = "web", namespace = "shop") => `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${namespace}, labels: {app: ${name}}}
spec:
${spec}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      containers:
        - name: app
          image: app:1
`;

const hpa = (minReplicas: number, target: number, extra = "", namespace = "shop") => `---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: ${namespace}}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: ${minReplicas}
  maxReplicas: 10
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: ${target}}}
${extra}`;

const policy = (headroom: string) => `---
apiVersion: healthgate.io/v1alpha1
kind: HealthPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
${headroom}`;

const HEADROOM_RULES = [
  "HeadroomInsufficient",
  "HeadroomNoSurvivor",
  "MaxUnavailableTooHigh",
  "RecreateStrategy",
];

async function headroomOf(input: string) {
  const result = await lint(["-"], "error", async () => input);
  expect(result.errors).toEqual([]);
  return {
    findings: result.findings
      .filter((f) => HEADROOM_RULES.includes(f.rule))
      .map((f) => ({ rule: f.rule, severity: f.severity, line: f.line, field: f.field, message: f.message })),
    notes: result.notes,
  };
}

interface Fires {
  name: string;
  input: string;
  rule: string;
  severity: string;
  line: number;
  says: string;
}

const fires: Fires[] = [
  {
    name: "no replicas field (1 replica), no policy",
    input: deployment("  paused: false"),
    rule: "HeadroomNoSurvivor",
    severity: "warning",
    line: 4,
    says: "runs 1 replica (no spec.replicas: the default); losing 1 (tolerate) leaves none",
  },
  {
    name: "replicas: 1",
    input: deployment("  replicas: 1"),
    rule: "HeadroomNoSurvivor",
    severity: "warning",
    line: 5,
    says: "run at least 2 replicas",
  },
  {
    name: "2 replicas, maxUnavailable 1: a loss during a rollout leaves none",
    input: deployment("  replicas: 2\n  strategy: {rollingUpdate: {maxUnavailable: 1}}"),
    rule: "HeadroomNoSurvivor",
    severity: "warning",
    line: 6,
    says: "while a rolling update takes 1 (maxUnavailable 1) leaves none; set spec.strategy.rollingUpdate.maxUnavailable to 0 (with maxSurge at least 1)",
  },
  {
    name: "Recreate",
    input: deployment("  replicas: 3\n  strategy: {type: Recreate}"),
    rule: "RecreateStrategy",
    severity: "warning",
    line: 6,
    says: "takes all 3 replicas down at once",
  },
  {
    name: "the issue's example: 4 replicas, HPA 80% at minReplicas 4 (reported at the HPA's minReplicas)",
    input: deployment("  replicas: 4") + hpa(4, 80),
    rule: "HeadroomInsufficient",
    severity: "error",
    line: 19,
    says: "HPA target 80% at minReplicas 4: losing 1 leaves 3 at 107% until the HPA reacts (ceiling 90%); lower the target to 67% or raise minReplicas to 9",
  },
  {
    name: "autoscaling/v1 HPA (targetCPUUtilizationPercentage)",
    input:
      deployment("  replicas: 4") +
      "---\napiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: shop}\n" +
      "spec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  minReplicas: 4\n  maxReplicas: 8\n  targetCPUUtilizationPercentage: 80\n",
    rule: "HeadroomInsufficient",
    severity: "error",
    line: 19,
    says: "losing 1 leaves 3 at 107%",
  },
  {
    name: "HPA 60% at minReplicas 4 carries a loss, but not during a rollout with the default 25%",
    input: deployment("  replicas: 4") + hpa(4, 60),
    rule: "MaxUnavailableTooHigh",
    severity: "warning",
    line: 4,
    says: "maxUnavailable 25% lets a rollout take 1 of 4 replicas; losing 1 during one would leave 2 at 120%",
  },
  {
    name: "HealthPolicy source Static: 2 replicas at 70% peak",
    input: deployment("  replicas: 2") + policy("  headroom: {source: Static, peakUtilizationPercent: 70}"),
    rule: "HeadroomInsufficient",
    severity: "error",
    line: 5,
    says: "2 replicas at 70% peak: losing 1 leaves 1 at 140% (ceiling 90%); run at least 3 replicas",
  },
  {
    name: "HealthPolicy tolerate 2 without an HPA: 2 replicas survive nothing",
    input: deployment("  replicas: 2") + policy("  headroom: {tolerate: 2}"),
    rule: "HeadroomNoSurvivor",
    severity: "warning",
    line: 5,
    says: "losing 2 (tolerate) leaves none, so any crash, eviction or node drain is an outage; run at least 3 replicas",
  },
  {
    name: "Static, maxUnavailable too high for the peak",
    input:
      deployment("  replicas: 10\n  strategy: {rollingUpdate: {maxUnavailable: 3}}") +
      policy("  headroom: {source: Static, peakUtilizationPercent: 70}"),
    rule: "MaxUnavailableTooHigh",
    severity: "warning",
    line: 6,
    says: "set spec.strategy.rollingUpdate.maxUnavailable to 1",
  },
];

interface Quiet {
  name: string;
  input: string;
  /** A note that says why nothing was judged, when that is the case. */
  note?: string;
}

const quiet: Quiet[] = [
  { name: "3 replicas, no policy", input: deployment("  replicas: 3") },
  {
    name: "2 replicas with the default strategy (25% of 2 rounds down to 0)",
    input: deployment("  replicas: 2"),
  },
  { name: "scaled to 0", input: deployment("  replicas: 0") },
  {
    name: "HPA 60% at minReplicas 4 with maxUnavailable 0: 3 left at 80%",
    input:
      deployment("  replicas: 4\n  strategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}") + hpa(4, 60),
  },
  {
    name: "an HPA in another namespace is not this Deployment's: judged by replica count",
    input: deployment("  replicas: 4") + hpa(4, 80, "", "other"),
    note: "judged by replica count only",
  },
  {
    name: "Static peak that 3 replicas carry after a loss",
    input: deployment("  replicas: 3") + policy("  headroom: {source: Static, peakUtilizationPercent: 60}"),
  },
  {
    name: "source Metrics: a note, not a finding",
    input: deployment("  replicas: 1") + policy("  headroom: {source: Metrics}"),
    note: "Deployment shop/web: headroom source Metrics reads metrics.k8s.io, which a file does not hold; not judged offline",
  },
  {
    name: "a HealthPolicy without spec.headroom: not judged, as by the operator",
    input: deployment("  replicas: 1") + policy("  mode: Audit"),
    note: "the HealthPolicy that governs them sets no spec.headroom",
  },
  {
    name: "HPA without a CPU Utilization target: a note",
    input:
      deployment("  replicas: 1") +
      hpa(1, 80).replace(
        / {2}metrics:\n(.*\n){2}/,
        "  metrics: [{type: Pods, pods: {metric: {name: rps}}}]\n",
      ),
    note: "has no CPU Utilization target",
  },
  {
    name: "a StatefulSet with 1 replica: headroom is judged for Deployments only",
    input: deployment("  replicas: 1").replace("kind: Deployment", "kind: StatefulSet"),
    note: "StatefulSet ×1 linted: probe rules with the CRD's defaults (HealthPolicies select Deployments only); headroom not judged",
  },
];

describe("lint: headroom, offline", () => {
  it.each(fires)("fires: $name", async ({ input, rule, severity, line, says }) => {
    const { findings } = await headroomOf(input);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ rule, severity, line });
    expect(findings[0]?.message).toContain(says);
  });

  it.each(quiet)("quiet: $name", async ({ input, note }) => {
    const { findings, notes } = await headroomOf(input);
    expect(findings).toEqual([]);
    if (note) expect(notes.join("\n")).toContain(note);
  });
});
