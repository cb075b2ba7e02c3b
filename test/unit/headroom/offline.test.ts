// Lint and the operator judge headroom alike: on any Deployment at rest with an HPA or a Static
// peak, the offline assessment (what `healthgate lint` runs) finds exactly what the operator's
// headroom concern finds, apart from the PodDisruptionBudget findings lint cannot see.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Deployment, HorizontalPodAutoscaler } from "../../../src/api/k8s.ts";
import { headroomSpec, type HealthPolicySpecInput } from "../../../src/api/v1alpha1/index.ts";
import { headroomConcern } from "../../../src/policy/headroom/concern.ts";
import { assessHeadroomOffline } from "../../../src/policy/headroom/offline.ts";
import { HEADROOM_RULES } from "../../../src/policy/headroom/rules.ts";
import {
  makeDeployment,
  makeHpa,
  snapshotOf,
  withRecreate,
  withReplicas,
  withRollingUpdate,
} from "./builders.ts";

const HEADROOM = new Set<string>(Object.values(HEADROOM_RULES).map((r) => r.rule));

/** The offline findings equal the operator's headroom findings; returns how many there were. */
function agree(
  deployment: Deployment,
  headroom: NonNullable<HealthPolicySpecInput["headroom"]>,
  hpa?: HorizontalPodAutoscaler,
): number {
  const operator = headroomConcern(snapshotOf(deployment, { headroom, ...(hpa ? { hpa } : {}) }));
  const offline = assessHeadroomOffline({
    deployment,
    spec: headroomSpec.parse(headroom),
    ...(hpa ? { hpa } : {}),
  });
  expect(offline.judged).toBe(headroom.source);
  expect(offline.findings).toEqual(operator.findings.filter((f) => HEADROOM.has(f.rule)));
  return offline.findings.length;
}

const strategy = fc.oneof(
  fc.constant(withRecreate),
  fc
    .tuple(
      fc.constantFrom<number | string>(0, 1, 2, "25%", "50%"),
      fc.constantFrom<number | string>(0, 1, 2, "25%", "50%"),
    )
    .map(([surge, unavailable]) => withRollingUpdate(surge, unavailable)),
);

describe("assessHeadroomOffline agrees with the operator's headroom concern", () => {
  it("property: HPA in the input — the same findings", () => {
    let judgedShort = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        strategy,
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 10, max: 100 }),
        fc.integer({ min: 1, max: 3 }),
        (replicas, withStrategy, minReplicas, cpuTarget, tolerate) => {
          const deployment = makeDeployment("web", withReplicas(replicas), withStrategy);
          const hpa = makeHpa({ minReplicas, maxReplicas: 40, cpuTarget });
          if (agree(deployment, { source: "HPA", tolerate }, hpa) > 0) judgedShort++;
        },
      ),
      { numRuns: 300 },
    );
    // Not vacuous: many inputs are found short, and the findings must match there too.
    expect(judgedShort).toBeGreaterThan(50);
  });

  it("property: Static peak — the same findings", () => {
    let judgedShort = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        strategy,
        fc.integer({ min: 1, max: 150 }),
        fc.integer({ min: 1, max: 3 }),
        (replicas, withStrategy, peakUtilizationPercent, tolerate) => {
          const deployment = makeDeployment("web", withReplicas(replicas), withStrategy);
          if (agree(deployment, { source: "Static", peakUtilizationPercent, tolerate }) > 0) judgedShort++;
        },
      ),
      { numRuns: 300 },
    );
    // Not vacuous: many inputs are found short, and the findings must match there too.
    expect(judgedShort).toBeGreaterThan(50);
  });

  it("without a utilization: HeadroomNoSurvivor exactly when losing tolerate (and a rollout's maxUnavailable) leaves none", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 3 }), (replicas, tolerate) => {
        const deployment = makeDeployment("web", withReplicas(replicas), withRollingUpdate(1, 1));
        const { findings, judged } = assessHeadroomOffline({
          deployment,
          spec: headroomSpec.parse({ tolerate }),
        });
        expect(judged).toBe("replicas");
        const fires = findings.some((f) => f.rule === "HeadroomNoSurvivor");
        expect(fires).toBe(replicas - tolerate - 1 < 1);
      }),
    );
  });
});
