import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { lint } from "../../../src/cli/lint.ts";

const fixture = (path: string) => fileURLToPath(new URL(`../../fixtures/${path}`, import.meta.url));
const noStdin = async () => "";
const located = (f: { file: string; line: number; rule: string }) =>
  `${f.file.split("/").pop()}:${f.line} ${f.rule}`;

describe("lint over real-world charts (test/fixtures/real-world)", () => {
  it("reads every chart without an input error and audits all 18 workloads", async () => {
    const result = await lint([fixture("real-world")], "error", noStdin);
    expect(result.errors).toEqual([]);
    expect(result.workloads).toBe(18);
    expect(result.policies).toBe(0);
  });

  it("finds what docs/lint-comparison.md reports", async () => {
    const { findings } = await lint([fixture("real-world")], "error", noStdin);
    const seen = findings.map(located);
    expect(seen).toEqual(
      expect.arrayContaining([
        "argocd.yaml:2124 LivenessSuspectedDeep",
        "argocd.yaml:2599 LivenessSuspectedDeep",
        "argocd.yaml:1400 ReadinessMissing",
        "grafana.yaml:230 LivenessSameAsReadiness",
        "grafana.yaml:236 ProbeTimeoutNotBelowPeriod",
        "ingress-nginx.yaml:396 LivenessSameAsReadiness",
      ]),
    );
    expect(findings.filter((f) => f.severity === "error").map((f) => f.rule)).toEqual(
      Array(4).fill("ReadinessMissing"),
    );
    expect(findings.some((f) => f.severity === "critical")).toBe(false);
    // Every one of the 11 Deployments runs a single replica (none sets spec.replicas above 1, none has an HPA).
    expect(findings.filter((f) => f.rule === "HeadroomNoSurvivor")).toHaveLength(11);
    expect(findings).toHaveLength(82);
  });

  it("one namespace-wide HealthPolicy without endpoints governs and reports every Deployment of its namespace", async () => {
    const dir = mkdtempSync(join(tmpdir(), "healthgate-fixtures-"));
    try {
      const policy = join(dir, "argocd-policy.yaml");
      writeFileSync(
        policy,
        "apiVersion: healthgate.io/v1alpha1\nkind: HealthPolicy\nmetadata: {name: argocd-wide, namespace: argocd}\n" +
          "spec:\n  selector:\n    matchExpressions: [{key: app.kubernetes.io/name, operator: Exists}]\n",
      );
      const result = await lint([fixture("real-world/argocd.yaml"), policy], "error", noStdin);
      expect(result.errors).toEqual([]);
      const deployments = result.findings.filter((f) => f.workload.kind === "Deployment");
      const governed = new Set(
        deployments.filter((f) => f.policy === "argocd-wide").map((f) => f.workload.name),
      );
      expect([...governed].sort()).toEqual([
        "argocd-applicationset-controller",
        "argocd-dex-server",
        "argocd-notifications-controller",
        "argocd-redis",
        "argocd-repo-server",
        "argocd-server",
      ]);
      expect(deployments.every((f) => f.policy === "argocd-wide")).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("lint over the compliant fixture (test/fixtures/lint/compliant.yaml)", () => {
  it("is clean at warning", async () => {
    const result = await lint([fixture("lint/compliant.yaml")], "warning", noStdin);
    expect(result.errors).toEqual([]);
    expect(result.workloads).toBe(3);
    expect(result.findings).toEqual([]);
  });
});

describe("lint judges like the operator (test/fixtures/lint/judge-alike.yaml)", () => {
  it("reports each mistake at its line", async () => {
    const result = await lint([fixture("lint/judge-alike.yaml")], "error", noStdin);
    expect(result.errors).toEqual([]);
    expect(result.findings.map((f) => `${located(f)} ${f.severity}`).sort()).toEqual(
      [
        "judge-alike.yaml:35 HeadroomInsufficient error",
        "judge-alike.yaml:46 HeadroomNoSurvivor warning",
        "judge-alike.yaml:54 LivenessSameAsReadiness warning",
        "judge-alike.yaml:54 LivenessNotMoreTolerant warning",
        "judge-alike.yaml:56 ReadinessNoHysteresis info",
        "judge-alike.yaml:81 ReadinessFailureThresholdLow warning",
      ].sort(),
    );
    expect(result.findings.find((f) => f.rule === "HeadroomInsufficient")?.message).toContain(
      "losing 1 leaves 3 at 107%",
    );
  });
});

describe("lint over the hand-written pitfalls (test/fixtures/lint/probe-pitfalls.yaml)", () => {
  it("reports each pitfall at its line", async () => {
    const result = await lint([fixture("lint/probe-pitfalls.yaml")], "error", noStdin);
    expect(result.errors).toEqual([]);
    expect(result.findings.map((f) => `${located(f)} ${f.severity}`).sort()).toEqual(
      [
        "probe-pitfalls.yaml:33 StartupProbeMissing error",
        "probe-pitfalls.yaml:37 LivenessDeep critical",
        "probe-pitfalls.yaml:38 DetectionSlowerThanObjective error",
        "probe-pitfalls.yaml:60 GracePeriodTooShort warning",
        "probe-pitfalls.yaml:62 DrainMissing warning",
        "probe-pitfalls.yaml:65 LivenessSameAsReadiness warning",
        "probe-pitfalls.yaml:66 LivenessSuspectedDeep warning",
        "probe-pitfalls.yaml:68 LivenessFailureThresholdLow error",
        "probe-pitfalls.yaml:68 LivenessNotMoreTolerant warning",
        "probe-pitfalls.yaml:69 ReadinessNoHysteresis info",
        "probe-pitfalls.yaml:72 ProbePortUndeclared error",
        "probe-pitfalls.yaml:88 StartupProbeMissing error",
        "probe-pitfalls.yaml:93 LivenessDeep critical",
        "probe-pitfalls.yaml:94 DetectionSlowerThanObjective error",
        "probe-pitfalls.yaml:95 ProbeTimeoutNotBelowPeriod warning",
        "probe-pitfalls.yaml:98 DetectionSlowerThanObjective error",
      ].sort(),
    );
  });
});
