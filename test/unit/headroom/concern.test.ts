import { describe, expect, it } from "vitest";
import { condition, finding, headroomFigures } from "../../../src/api/v1alpha1/index.ts";
import { headroomConcern } from "../../../src/policy/headroom/concern.ts";
import {
  atRest,
  deepFreeze,
  makeDeployment,
  makeHpa,
  makePod,
  podsInZones,
  rollingOut,
  sample,
  snapshotOf,
  terminating,
  withCpuRequests,
  withoutStrategy,
  withRecreate,
  withReplicas,
  withRollingUpdate,
} from "./builders.ts";

const staticPeak = (peakUtilizationPercent: number) => ({
  source: "Static" as const,
  peakUtilizationPercent,
});

describe("headroomConcern: Static", () => {
  it("4 × 80% cannot lose 1: says how many replicas it needs", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(4)), { headroom: staticPeak(80) }),
    );
    const message =
      "4 replicas at 80% peak: losing 1 leaves 3 at 107% (ceiling 90%); run at least 5 replicas";
    expect(out.conditions).toEqual([
      { type: "HeadroomSufficient", status: "False", reason: "TooFewReplicas", message },
    ]);
    expect(out.figures.headroom).toEqual({
      source: "Static",
      replicas: 4,
      tolerate: 1,
      rolloutLoss: 0,
      peakPercent: 80,
      afterLossPercent: 107, // 106.7%
      ceilingPercent: 90,
      ok: false,
      requiredReplicas: 5,
    });
    expect(out.events).toEqual([
      { regarding: "Deployment", type: "Warning", reason: "TooFewReplicas", message },
    ]);
    expect(out.findings).toEqual([
      { rule: "HeadroomInsufficient", severity: "error", message: `Deployment web: ${message}` },
    ]);
  });

  it.each([
    // peak observed at 4 replicas: 80% × 4 = 320% of one replica's requests in total
    { name: "at the observed count, 4 × 80%: too few", replicas: 4, status: "False", share: 80 },
    {
      name: "scaled to the advised 5: each carries 64%, losing 1 leaves 4 at 80%",
      replicas: 5,
      status: "True",
      share: 64,
    },
    { name: "scaled in to 3: each carries 107%", replicas: 3, status: "False", share: 107 },
  ])("peakReplicas keeps the total load fixed as replicas change — $name", ({ replicas, status, share }) => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(replicas)), {
        headroom: { ...staticPeak(80), peakReplicas: 4 },
      }),
    );
    expect(out.conditions[0]?.status).toBe(status);
    expect(out.figures.headroom?.peakPercent).toBe(share);
  });

  it("5 × 70% can: True, the rolling-update room, and no Event", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(5), withRollingUpdate(1, 0)), {
        headroom: staticPeak(70),
      }),
    );
    expect(out.conditions[0]).toEqual({
      type: "HeadroomSufficient",
      status: "True",
      reason: "Sufficient",
      message:
        "5 replicas at 70% peak: losing 1 leaves 4 at 88% (ceiling 90%); rolling updates stay safe up to maxUnavailable 0",
    });
    expect(out.figures.headroom).toMatchObject({
      ok: true,
      afterLossPercent: 88,
      requiredReplicas: 5,
      maxSafeMaxUnavailable: 0,
    });
    expect(out.events).toEqual([]);
    expect(out.findings).toEqual([]);
  });

  it("outside a rollout r = 0, but a maxUnavailable that the next rollout could not afford is reported", () => {
    // Default strategy (25% / 25%): at 5 replicas a rollout takes floor(1.25) = 1.
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(5), withoutStrategy), { headroom: staticPeak(70) }),
    );
    expect(out.conditions[0]?.status).toBe("True");
    expect(out.figures.headroom?.rolloutLoss).toBe(0);
    expect(out.findings).toEqual([
      {
        rule: "MaxUnavailableTooHigh",
        severity: "warning",
        field: "spec.strategy.rollingUpdate.maxUnavailable",
        message:
          "Deployment web: maxUnavailable 25% lets a rollout take 1 of 5 replicas; losing 1 during one would leave 3 at " +
          "117% (ceiling 90%); set spec.strategy.rollingUpdate.maxUnavailable to 0 (with maxSurge at least 1)", // 116.7%
      },
    ]);
  });

  it("a Deployment scaled to zero has nothing to carry", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(0)), { headroom: staticPeak(80) }),
    );
    expect(out.conditions[0]).toMatchObject({ status: "True", reason: "ScaledToZero" });
    expect(out.figures.headroom).toMatchObject({ replicas: 0, ok: true });
    expect(out.events).toEqual([]);
  });

  it("replicas default to 1", () => {
    const deployment = makeDeployment("web");
    delete deployment.spec.replicas;
    const out = headroomConcern(snapshotOf(deployment, { headroom: staticPeak(50) }));
    expect(out.conditions[0]?.message).toBe(
      "1 replica at 50% peak: losing 1 leaves none; run at least 2 replicas",
    );
    expect(out.figures.headroom).toMatchObject({ replicas: 1, ok: false, requiredReplicas: 2 });
    expect(out.figures.headroom).not.toHaveProperty("afterLossPercent");
  });

  it("no headroom section: no condition, no figures, no owned objects", () => {
    const out = headroomConcern(snapshotOf(makeDeployment("web")));
    expect(out).toEqual({
      concern: "headroom",
      conditions: [],
      findings: [],
      figures: {},
      events: [],
      ownedObjects: [],
    });
  });
});

describe("headroomConcern: during a rollout", () => {
  it("r = resolved maxUnavailable while an old ReplicaSet still has pods", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(4)), {
        headroom: staticPeak(60),
        replicaSets: rollingOut(),
      }),
    );
    expect(out.conditions[0]).toEqual({
      type: "HeadroomSufficient",
      status: "False",
      reason: "RolloutTooAggressive",
      message:
        "4 replicas at 60% peak: losing 1 while the rollout takes 1 more (maxUnavailable 25%) leaves 2 at 120% " +
        "(ceiling 90%); set spec.strategy.rollingUpdate.maxUnavailable to 0 (with maxSurge at least 1) or run at least 5 replicas",
    });
    expect(out.figures.headroom).toMatchObject({
      rolloutLoss: 1,
      afterLossPercent: 120,
      maxSafeMaxUnavailable: 0,
      requiredReplicas: 5,
    });
    expect(out.events).toHaveLength(1);
    // Insufficient only because of the rollout: a warning about the strategy, not an error about the size.
    expect(out.findings.map((f) => [f.rule, f.severity])).toEqual([["MaxUnavailableTooHigh", "warning"]]);
  });

  it("the same Deployment at rest is sufficient", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(4)), { headroom: staticPeak(60), replicaSets: atRest() }),
    );
    expect(out.conditions[0]).toMatchObject({ status: "True", reason: "Sufficient" });
    expect(out.figures.headroom?.rolloutLoss).toBe(0);
  });

  it("a rollout whose maxUnavailable rounds down to 0 takes nothing", () => {
    // 25% of 3 = 0.75 → 0; maxSurge 25% → 1, so no fencepost bump.
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(3)), {
        headroom: staticPeak(60),
        replicaSets: rollingOut(),
      }),
    );
    expect(out.conditions[0]).toMatchObject({
      status: "True",
      message: expect.stringContaining("losing 1 leaves 2 at 90%"),
    });
    expect(out.figures.headroom?.rolloutLoss).toBe(0);
  });

  it("the fencepost rule: maxSurge 0 with a maxUnavailable that rounds to 0 takes 1", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(3), withRollingUpdate(0, "25%")), {
        headroom: staticPeak(30),
        replicaSets: rollingOut(),
      }),
    );
    expect(out.figures.headroom).toMatchObject({ rolloutLoss: 1, afterLossPercent: 90, ok: true }); // 90 / 1
  });

  it("Recreate takes every replica down during a rollout", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(6), withRecreate), {
        headroom: staticPeak(50),
        replicaSets: rollingOut(),
      }),
    );
    expect(out.conditions[0]).toEqual({
      type: "HeadroomSufficient",
      status: "False",
      reason: "RolloutTooAggressive",
      message:
        "6 replicas at 50% peak: losing 1 while a Recreate rollout takes all 6 leaves none; switch spec.strategy to " +
        "RollingUpdate with maxUnavailable 1",
    });
    expect(out.figures.headroom).toMatchObject({ rolloutLoss: 6, ok: false, maxSafeMaxUnavailable: 1 });
    expect(out.figures.headroom).not.toHaveProperty("requiredReplicas");
    expect(out.findings).toEqual([
      {
        rule: "RecreateStrategy",
        severity: "warning",
        field: "spec.strategy.type",
        message:
          "Deployment web uses strategy Recreate: every rollout takes all 6 replicas down at once; use RollingUpdate with maxUnavailable 1",
      },
    ]);
  });

  it("an unreadable maxUnavailable during a rollout is Unknown, never a guess", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withRollingUpdate(1, "lots")), {
        headroom: staticPeak(50),
        replicaSets: rollingOut(),
      }),
    );
    expect(out.conditions[0]).toMatchObject({ status: "Unknown", reason: "InvalidRollingUpdate" });
    expect(out.conditions[0]?.message).toContain('maxUnavailable "lots"');
    expect(out.figures).toEqual({});
  });
});

describe("headroomConcern: HPA", () => {
  it("target 80% at minReplicas 4: the target/minReplicas pair", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web"), {
        headroom: { source: "HPA" },
        hpa: makeHpa({ minReplicas: 4, cpuTarget: 80 }),
      }),
    );
    const message =
      "HPA target 80% at minReplicas 4: losing 1 leaves 3 at 107% until the HPA reacts (ceiling 90%); " +
      "lower the target to 67% or raise minReplicas to 9";
    expect(out.conditions).toEqual([
      { type: "HeadroomSufficient", status: "False", reason: "HPATargetTooHigh", message },
    ]);
    expect(out.figures.headroom).toEqual({
      source: "HPA",
      replicas: 4,
      minReplicas: 4,
      maxReplicas: 10,
      tolerate: 1,
      rolloutLoss: 0,
      peakPercent: 80,
      afterLossPercent: 107, // 106.7%
      ceilingPercent: 90,
      ok: false,
      safeTargetPercent: 67, // 90 × 3/4 = 67.5
      safeMinReplicas: 9, // ceil(1 × 90 / (90 − 80))
    });
    expect(out.events).toEqual([
      { regarding: "Deployment", type: "Warning", reason: "HPATargetTooHigh", message },
    ]);
  });

  it("evaluates at minReplicas, not the Deployment's current replicas", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(10)), {
        headroom: { source: "HPA" },
        hpa: makeHpa({ minReplicas: 4, cpuTarget: 60 }),
      }),
    );
    expect(out.figures.headroom).toMatchObject({ replicas: 4, afterLossPercent: 80, ok: true }); // 240 / 3
    expect(out.conditions[0]?.message).toBe(
      "HPA target 60% at minReplicas 4: losing 1 leaves 3 at 80% until the HPA reacts (ceiling 90%); rolling updates stay " +
        "safe up to maxUnavailable 0",
    );
  });

  it("a target at or above the ceiling: only lowering it helps", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web"), {
        headroom: { source: "HPA" },
        hpa: makeHpa({ minReplicas: 10, cpuTarget: 95 }),
      }),
    );
    expect(out.conditions[0]?.message).toBe(
      "HPA target 95% at minReplicas 10: losing 1 leaves 9 at 106% until the HPA reacts (ceiling 90%); lower the target " +
        "to 81% (at a target at or above the 90% ceiling no minReplicas is enough)", // 105.6%; 90 × 9/10
    );
    expect(out.figures.headroom).not.toHaveProperty("safeMinReplicas");
  });

  it("a safe minReplicas above maxReplicas says to raise both", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web"), {
        headroom: { source: "HPA" },
        hpa: makeHpa({ minReplicas: 4, maxReplicas: 6, cpuTarget: 80 }),
      }),
    );
    expect(out.conditions[0]?.message).toContain(
      "raise minReplicas to 9 (and maxReplicas, now 6, to at least 9)",
    );
  });

  it("minReplicas defaults to 1, and a missing metrics list to the API's CPU 80%", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web"), { headroom: { source: "HPA" }, hpa: makeHpa({}) }),
    );
    expect(out.conditions[0]?.message).toBe(
      "HPA target 80% at minReplicas 1: losing 1 leaves none; raise minReplicas to 9",
    );
    expect(out.figures.headroom).toMatchObject({ minReplicas: 1, peakPercent: 80, safeMinReplicas: 9 });
    expect(out.figures.headroom).not.toHaveProperty("safeTargetPercent");
  });

  it("no HPA: Unknown HPANotFound", () => {
    const out = headroomConcern(snapshotOf(makeDeployment("web"), { headroom: { source: "HPA" } }));
    expect(out.conditions[0]).toMatchObject({ status: "Unknown", reason: "HPANotFound" });
    expect(out.conditions[0]?.message).toContain("no HorizontalPodAutoscaler targets Deployment web");
    expect(out.figures).toEqual({});
    expect(out.events).toEqual([]);
  });

  const withoutCpuUtilization = [
    {
      name: "a memory utilization target only",
      metrics: [
        {
          type: "Resource",
          resource: { name: "memory", target: { type: "Utilization", averageUtilization: 70 } },
        },
      ],
    },
    {
      name: "a CPU AverageValue target",
      metrics: [{ type: "Resource", resource: { name: "cpu", target: { type: "AverageValue" } } }],
    },
    { name: "an external metric", metrics: [{ type: "External" }] },
    { name: "an empty metrics list", metrics: [] },
  ];
  it.each(withoutCpuUtilization)("an HPA with $name: Unknown HPAHasNoUtilizationTarget", ({ metrics }) => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web"), {
        headroom: { source: "HPA" },
        hpa: makeHpa({ minReplicas: 4, metrics }),
      }),
    );
    expect(out.conditions[0]).toMatchObject({ status: "Unknown", reason: "HPAHasNoUtilizationTarget" });
    expect(out.conditions[0]?.message).toContain(
      "HorizontalPodAutoscaler web of Deployment web has no CPU Utilization target",
    );
    expect(out.figures).toEqual({});
  });

  it("picks the CPU utilization target among several metrics", () => {
    const metrics = [
      {
        type: "Resource",
        resource: { name: "memory", target: { type: "Utilization", averageUtilization: 50 } },
      },
      {
        type: "Resource",
        resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 60 } },
      },
    ];
    const out = headroomConcern(
      snapshotOf(makeDeployment("web"), {
        headroom: { source: "HPA" },
        hpa: makeHpa({ minReplicas: 4, metrics }),
      }),
    );
    expect(out.figures.headroom?.peakPercent).toBe(60);
  });
});

describe("headroomConcern: Metrics", () => {
  const metrics = (window?: string) => ({ source: "Metrics" as const, ...(window ? { window } : {}) });

  it("peak of usage ÷ requests over the window", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(4)), {
        headroom: metrics(),
        pods: [makePod("web-1", "n1")],
        usage: [
          sample("web-1", "400m", 5), // 80%
          sample("web-2", "450000000n", 10), // 90%: web-2 is gone, its requests come from the template (500m)
          sample("web-1", "490m", 120), // 98%, but two hours ago
        ],
      }),
    );
    expect(out.conditions[0]).toEqual({
      type: "HeadroomSufficient",
      status: "False",
      reason: "TooFewReplicas",
      message:
        "4 replicas at 90% measured peak (last 1h): losing 1 leaves 3 at 120% (ceiling 90%); run at least 5 replicas",
    });
    expect(out.figures.headroom).toMatchObject({ source: "Metrics", peakPercent: 90, requiredReplicas: 5 });
    // The peak sample (10 minutes old) leaves the 1h window in 50 minutes.
    expect(out.requeueAfterSeconds).toBe(3000);
  });

  it("a shorter window ignores older samples", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(4)), {
        headroom: metrics("5m"),
        usage: [sample("web-1", "200m", 2), sample("web-1", "450m", 10)],
      }),
    );
    expect(out.figures.headroom?.peakPercent).toBe(40);
    expect(out.conditions[0]?.message).toContain("at 40% measured peak (last 5m)");
    expect(out.requeueAfterSeconds).toBe(180);
  });

  it("sums usage and requests over the pod's containers, as the HPA does", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(4), withCpuRequests("500m", "250m")), {
        headroom: metrics(),
        usage: [
          {
            pod: "web-1",
            timestamp: "2025-06-01T11:59:00Z",
            containers: [
              { name: "web", cpu: "300m" },
              { name: "sidecar-1", cpu: "150m" },
            ],
          },
        ],
      }),
    );
    expect(out.figures.headroom?.peakPercent).toBe(60); // 450m / 750m
  });

  const unavailable = [
    {
      name: "metrics.k8s.io is not served",
      usage: "unavailable" as const,
      text: "metrics.k8s.io is not available",
    },
    { name: "no samples", usage: [], text: "no metrics.k8s.io CPU samples" },
    { name: "only samples outside the window", usage: [sample("web-1", "100m", 90)], text: "in the last 1h" },
    {
      name: "samples without CPU",
      usage: [sample("web-1", undefined, 1)],
      text: "no metrics.k8s.io CPU samples",
    },
  ];
  it.each(unavailable)("$name: Unknown MetricsUnavailable", ({ usage, text }) => {
    const out = headroomConcern(snapshotOf(makeDeployment("web"), { headroom: metrics(), usage }));
    expect(out.conditions[0]).toMatchObject({ status: "Unknown", reason: "MetricsUnavailable" });
    expect(out.conditions[0]?.message).toContain(text);
    expect(out.figures).toEqual({});
    expect(out.events).toEqual([]);
  });

  it("no usage at all in the snapshot: Unknown MetricsUnavailable", () => {
    const out = headroomConcern(snapshotOf(makeDeployment("web"), { headroom: metrics() }));
    expect(out.conditions[0]).toMatchObject({ status: "Unknown", reason: "MetricsUnavailable" });
  });

  it("a container without a CPU request: Unknown NoResourceRequests, naming it", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withCpuRequests("500m", undefined)), {
        headroom: metrics(),
        usage: [sample("web-1", "100m")],
      }),
    );
    expect(out.conditions[0]).toMatchObject({ status: "Unknown", reason: "NoResourceRequests" });
    expect(out.conditions[0]?.message).toContain(
      "container(s) sidecar-1 of Deployment web have no CPU request",
    );
  });
});

describe("headroomConcern: zones", () => {
  it("losing the zone with the most pods replaces k when worse", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(5)), {
        headroom: staticPeak(50),
        ...podsInZones({ a: 3, b: 1, c: 1 }),
      }),
    );
    expect(out.conditions[0]).toEqual({
      type: "HeadroomSufficient",
      status: "False",
      reason: "ZoneLossTooLarge",
      message:
        "5 replicas at 50% peak: losing zone a (3 pods) leaves 2 at 125% (ceiling 90%); spread the pods across zones " +
        "(a topologySpreadConstraint on topology.kubernetes.io/zone) or run at least 8 replicas",
    });
    expect(out.figures.headroom).toMatchObject({
      tolerate: 3,
      worstZone: "a",
      afterLossPercent: 125,
      requiredReplicas: 8,
    });
    expect(out.findings.map((f) => f.rule)).toEqual(["HeadroomInsufficient", "ZoneSpreadUneven"]);
    expect(out.findings[1]?.message).toContain("zone a holds 3 of the 5 scheduled pods of Deployment web");
  });

  it("an even spread where a zone still outweighs k: no uneven-spread finding", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(4)), {
        headroom: staticPeak(40),
        ...podsInZones({ a: 2, b: 2 }),
      }),
    );
    expect(out.figures.headroom).toMatchObject({
      tolerate: 2,
      worstZone: "a",
      afterLossPercent: 80,
      ok: true,
    }); // 160 / 2
    expect(out.findings.map((f) => f.rule)).not.toContain("ZoneSpreadUneven");
  });

  it("k wins when it is worse than any zone", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(6)), {
        headroom: { ...staticPeak(40), tolerate: 3 },
        ...podsInZones({ a: 2, b: 2, c: 2 }),
      }),
    );
    expect(out.figures.headroom).toMatchObject({ tolerate: 3 });
    expect(out.figures.headroom).not.toHaveProperty("worstZone");
  });

  it("zones: false ignores the spread", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(5)), {
        headroom: { ...staticPeak(50), zones: false },
        ...podsInZones({ a: 3, b: 1, c: 1 }),
      }),
    );
    expect(out.figures.headroom).toMatchObject({ tolerate: 1, afterLossPercent: 63, ok: true }); // 62.5%
  });

  it("a single-zone cluster has no zone view", () => {
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(5)), {
        headroom: staticPeak(50),
        ...podsInZones({ a: 5 }),
      }),
    );
    expect(out.figures.headroom).toMatchObject({ tolerate: 1, ok: true });
  });

  it("terminating and unscheduled pods do not count", () => {
    const { pods, nodeZones } = podsInZones({ a: 1, b: 1, c: 1 });
    const extra = [
      makePod("web-x", "node-a-spare", terminating),
      makePod("web-y", "node-a-spare", terminating),
      makePod("web-z", undefined),
    ];
    const out = headroomConcern(
      snapshotOf(makeDeployment("web", withReplicas(3)), {
        headroom: staticPeak(30),
        pods: [...pods, ...extra],
        nodeZones,
      }),
    );
    expect(out.figures.headroom).toMatchObject({ tolerate: 1, afterLossPercent: 45 }); // 90 / 2
  });
});

describe("headroomConcern: purity", () => {
  it("does not mutate the snapshot and answers the same twice", () => {
    const snapshot = deepFreeze(
      snapshotOf(makeDeployment("web", withReplicas(5)), {
        headroom: { ...staticPeak(50), managePodDisruptionBudget: true },
        replicaSets: rollingOut(),
        ...podsInZones({ a: 3, b: 1, c: 1 }),
      }),
    );
    expect(headroomConcern(snapshot)).toEqual(headroomConcern(snapshot));
  });

  const scenarios = [
    snapshotOf(makeDeployment("web", withReplicas(4)), { headroom: staticPeak(80) }),
    snapshotOf(makeDeployment("web", withReplicas(6), withRecreate), {
      headroom: staticPeak(50),
      replicaSets: rollingOut(),
    }),
    snapshotOf(makeDeployment("web"), {
      headroom: { source: "HPA" },
      hpa: makeHpa({ minReplicas: 10, cpuTarget: 95 }),
    }),
    snapshotOf(makeDeployment("web", withReplicas(100_000)), { headroom: staticPeak(1000) }),
    snapshotOf(makeDeployment("web", withReplicas(5)), {
      headroom: staticPeak(50),
      ...podsInZones({ a: 3, b: 1, c: 1 }),
    }),
    snapshotOf(makeDeployment("web"), { headroom: { source: "Metrics" }, usage: [sample("web-1", "40")] }), // 8000%
  ];
  it.each(scenarios.map((snapshot, i) => ({ i, snapshot })))(
    "scenario $i: figures, conditions and findings fit the status schema",
    ({ snapshot }) => {
      const out = headroomConcern(snapshot);
      expect(() => headroomFigures.parse(out.figures.headroom)).not.toThrow();
      for (const c of out.conditions) {
        expect(() => condition.parse({ ...c, lastTransitionTime: "2025-06-01T12:00:00Z" })).not.toThrow();
      }
      for (const f of out.findings) expect(() => finding.parse(f)).not.toThrow();
    },
  );
});
