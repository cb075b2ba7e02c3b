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
