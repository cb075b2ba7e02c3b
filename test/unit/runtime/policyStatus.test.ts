// A policy's status must stay writable however many Deployments it selects: the CRD allows at
// most MAX_STATUS_TARGETS targets and etcd refuses objects over 1.5 MiB, so past those limits
// the status lists the worst targets and counts the rest.
import { describe, expect, it } from "vitest";
import {
  healthPolicy,
  healthPolicyStatus,
  MAX_STATUS_TARGETS,
  MAX_STATUS_TARGETS_BYTES,
  type TargetStatus,
} from "../../../src/api/v1alpha1/index.ts";
import { listedTargets, policyStatus, type TargetDecision } from "../../../src/policy/decide.ts";

const policy = healthPolicy.parse({
  apiVersion: "healthgate.io/v1alpha1",
  kind: "HealthPolicy",
  metadata: { name: "web", namespace: "shop", generation: 1 },
  spec: { selector: { matchLabels: { app: "web" } }, endpoints: {} },
});

const target = (i: number, severity?: "warning" | "critical", messageBytes = 40): TargetStatus => ({
  name: `svc-${String(i).padStart(5, "0")}`,
  governed: true,
  ...(severity
    ? { findings: [{ rule: "LivenessDeep", severity, container: "app", message: "x".repeat(messageBytes) }] }
    : {}),
});

const decision = (status: TargetStatus): TargetDecision => ({
  deployment: status.name,
  status,
  conditions: [],
  findings: [],
  events: [],
  ownedObjects: [],
});

describe("the targets a policy's status lists", () => {
  it("lists every target, by name, while they fit", () => {
    const all = [target(3), target(1, "warning"), target(2)];
    const status = policyStatus(policy, all.map(decision), [], new Date(0));
    expect(status.targets?.map((t) => t.name)).toEqual(["svc-00001", "svc-00002", "svc-00003"]);
    expect(status.targetCount).toBe(3);
    expect(status.targetsOmitted).toBeUndefined();
  });

  it(`keeps at most ${MAX_STATUS_TARGETS}, the most severe first, counts the rest, and stays valid for the CRD`, () => {
    const all = Array.from({ length: 1200 }, (_, i) => target(i, i % 100 === 7 ? "critical" : undefined));
    const status = policyStatus(policy, all.map(decision), [], new Date(0));
    expect(status.targets).toHaveLength(MAX_STATUS_TARGETS);
    expect(status.targetCount).toBe(1200);
    expect(status.targetsOmitted).toBe(200);
    const listed = new Set(status.targets!.map((t) => t.name));
    for (const critical of all.filter((t) => t.findings)) expect(listed.has(critical.name)).toBe(true);
    expect(healthPolicyStatus.safeParse(status).success).toBe(true);
  });

  it(`keeps the listed targets within about ${MAX_STATUS_TARGETS_BYTES / 1024} KiB`, () => {
    const all = Array.from({ length: 600 }, (_, i) => target(i, i < 10 ? "critical" : "warning", 4000));
    const listed = listedTargets(all);
    expect(JSON.stringify(listed).length).toBeLessThanOrEqual(MAX_STATUS_TARGETS_BYTES);
    expect(listed.length).toBeGreaterThan(100);
    expect(listed.length).toBeLessThan(all.length);
    expect(listed.slice(0, 10).every((t) => t.findings?.[0]?.severity === "critical")).toBe(true);
  });
});
