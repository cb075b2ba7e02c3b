// N−k headroom against real objects: a Static peak and a real autoscaling/v2 HPA (which the
// controller manager's HPA controller scales to minReplicas). The PodDisruptionBudget healthgate
// may manage has its own file (pdb.test.ts).
import { beforeAll, describe, expect, it } from "vitest";
import {
  makeDeployment,
  makeHpa,
  makePdb,
  withCpuTarget,
  withMaxReplicas,
  withLabels,
  withMinReplicas,
  withReplicas,
} from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  deploymentCondition,
  installCrd,
  makePolicy,
  mergePatch,
  policyCondition,
  reconciles,
  useControllerHarness,
  waitUntilIdle,
  waitForDeploymentCondition,
  waitForPolicyCondition,
  withHeadroom,
} from "./support.ts";

beforeAll(() => installCrd());

/** Waits until wall-clock time is in a later second than `stamp`, so a new second-precision stamp differs from it. */
async function pastSecondOf(stamp: Date | string): Promise<void> {
  const second = Math.floor(new Date(stamp).getTime() / 1000);
  await waitFor(() => Math.floor(Date.now() / 1000) > second, {
    what: `the clock to pass ${new Date(stamp).toISOString()}`,
  });
}

describe("Headroom", () => {
  const hg = useControllerHarness();

  it("Static: says how many replicas survive losing one at peak, and flips only when that changes", async () => {
    // Given 4 replicas peaking at 80% with a 90% ceiling and tolerate 1 (zones aside: one loss)
    await hg.apply(makeDeployment("web", withReplicas(4)));
    await hg.createPolicy(
      makePolicy(
        "web",
        withHeadroom({
          source: "Static",
          peakUtilizationPercent: 80,
          peakReplicas: 4,
          tolerate: 1,
          ceilingPercent: 90,
          zones: false,
        }),
      ),
    );

    // When healthgate runs
    await hg.startOperator();

    // Then the survivors are short: 3 replicas at 107%, and it says to run 5
    const message =
      "4 replicas at 80% peak: losing 1 leaves 3 at 107% (ceiling 90%); run at least 5 replicas";
    const insufficient = { status: "False", reason: "TooFewReplicas", message } as const;
    const policy = await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", insufficient);
    const deployment = await waitForDeploymentCondition(
      hg.namespace,
      "web",
      "HeadroomSufficient",
      insufficient,
    );
    expect(policyCondition(policy, "HeadroomSufficient")!.message).toBe(message);
    expect(policy.status?.targets?.[0]?.headroom).toMatchObject({
      source: "Static",
      replicas: 4,
      tolerate: 1,
      peakPercent: 80,
      afterLossPercent: 107,
      ceilingPercent: 90,
      ok: false,
      requiredReplicas: 5,
    });
    // and the per-target gauges say the same
    const gauges = await hg.operator.metrics.registry.metrics();
    expect(gauges).toContain(
      `healthgate_headroom_sufficient{namespace="${hg.namespace}",policy="web",deployment="web"} 0`,
    );
    expect(gauges).toContain(
      `healthgate_headroom_after_loss_ratio{namespace="${hg.namespace}",policy="web",deployment="web"} 1.07`,
    );
    const flippedFalseAt = policyCondition(policy, "HeadroomSufficient")!.lastTransitionTime;
    const deploymentFlippedFalseAt = deploymentCondition(
      deployment,
      "HeadroomSufficient",
    )!.lastTransitionTime!;

    // When the Deployment is scaled to 3: still short, a new message, no flip
    await pastSecondOf(flippedFalseAt);
    await testClients().apps.patchNamespacedDeploymentScale(
      { name: "web", namespace: hg.namespace, body: { spec: { replicas: 3 } } },
      mergePatch,
    );
    const stillShort = await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "False",
      reason: "TooFewReplicas",
      // the same total load (4 × 80%) over 3 replicas: 107% each
      message: "3 replicas at 107% peak: losing 1 leaves 2 at 160%",
    });
    // Then lastTransitionTime stays where the status last flipped
    expect(policyCondition(stillShort, "HeadroomSufficient")!.lastTransitionTime).toBe(flippedFalseAt);
    const stillShortDeployment = await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "False",
      message: "3 replicas",
    });
    expect(deploymentCondition(stillShortDeployment, "HeadroomSufficient")!.lastTransitionTime).toEqual(
      deploymentFlippedFalseAt,
    );

    // When the user follows the advice and runs 5: the same total load is 64% each
    // (peakReplicas keeps the total fixed)
    await testClients().apps.patchNamespacedDeploymentScale(
      { name: "web", namespace: hg.namespace, body: { spec: { replicas: 5 } } },
      mergePatch,
    );

    // Then it flips to True, and only now does lastTransitionTime move
    const sufficient = await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "True",
      reason: "Sufficient",
      message: "5 replicas at 64% peak: losing 1 leaves 4 at 80% (ceiling 90%)",
    });
    expect(Date.parse(policyCondition(sufficient, "HeadroomSufficient")!.lastTransitionTime)).toBeGreaterThan(
      Date.parse(flippedFalseAt),
    );
    const sufficientDeployment = await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "True",
    });
    expect(
      deploymentCondition(sufficientDeployment, "HeadroomSufficient")!.lastTransitionTime!.getTime(),
    ).toBeGreaterThan(deploymentFlippedFalseAt.getTime());
    expect(sufficient.status?.targets?.[0]?.headroom).toMatchObject({
      replicas: 5,
      afterLossPercent: 80,
      ok: true,
    });
    await hg.expectSecondReconcileWritesNothing();
  });

  it("a PodDisruptionBudget's change reconciles only the Deployments its selector matches", async () => {
    // Given six governed Deployments (tier=shop), one policy over them, and healthgate idle
    const names = ["web-0", "web-1", "web-2", "web-3", "web-4", "web-5"];
    for (const name of names)
      await hg.apply(makeDeployment(name, withReplicas(1), withLabels({ tier: "shop" })));
    const policy = makePolicy(
      "shop",
      withHeadroom({
        source: "Static",
        peakUtilizationPercent: 50,
        tolerate: 1,
        ceilingPercent: 90,
        zones: false,
      }),
    );
    policy.spec.selector = { matchLabels: { tier: "shop" } };
    await hg.createPolicy(policy);
    await hg.startOperator();
    await waitUntilIdle(hg.operator, names.length + 1);
    const before = await reconciles(hg.operator);

    // When a PDB over web-0's pods is created (and the disruption controller writes its status)
    await hg.apply(
      makePdb("web-0-budget", (pdb) => (pdb.spec!.selector = { matchLabels: { app: "web-0" } })),
    );
    await waitFor(
      async () => {
        const pdb = await testClients().policy.readNamespacedPodDisruptionBudget({
          name: "web-0-budget",
          namespace: hg.namespace,
        });
        expect(pdb.status?.observedGeneration).toBe(pdb.metadata?.generation);
        return true;
      },
      { what: "the disruption controller to observe web-0-budget" },
    );
    await waitUntilIdle(hg.operator, before + 1);

    // Then only web-0 (and the policy reporting on it) was looked at again, not all six
    const after = await reconciles(hg.operator);
    expect(after - before, "reconciles caused by the PDB's events").toBeLessThan(names.length);
  });

  it("HPA: judges the HPA's target at minReplicas, follows its edits, and says Unknown without it", async () => {
    // Given a Deployment with a real HPA (min 4, CPU 80%) and a policy reading its headroom from the HPA
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.apply(makeHpa("web", withMinReplicas(4), withMaxReplicas(12), withCpuTarget(80)));
    await hg.createPolicy(
      makePolicy("web", withHeadroom({ source: "HPA", tolerate: 1, ceilingPercent: 90, zones: false })),
    );

    // When healthgate runs
    await hg.startOperator();

    // Then the target is too high: 3 survivors at 107% until the HPA reacts; 67% or 9 replicas would do
    const tooHigh = await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "False",
      reason: "HPATargetTooHigh",
      message: [
        "HPA target 80% at minReplicas 4",
        "leaves 3 at 107%",
        "lower the target to 67%",
        "raise minReplicas to 9",
      ],
    });
    expect(tooHigh.status?.targets?.[0]?.headroom).toMatchObject({
      source: "HPA",
      minReplicas: 4,
      maxReplicas: 12,
      peakPercent: 80,
      afterLossPercent: 107,
      ok: false,
      safeTargetPercent: 67,
      safeMinReplicas: 9,
    });
    await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "False",
      reason: "HPATargetTooHigh",
    });

    // When the HPA's target is lowered to 60%
    await testClients().autoscaling.patchNamespacedHorizontalPodAutoscaler(
      {
        name: "web",
        namespace: hg.namespace,
        body: {
          spec: {
            metrics: [
              {
                type: "Resource",
                resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 60 } },
              },
            ],
          },
        },
      },
      mergePatch,
    );

    // Then the survivors carry it: 3 at 80%
    await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "True",
      reason: "Sufficient",
      message: "HPA target 60% at minReplicas 4: losing 1 leaves 3 at 80%",
    });
    await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", { status: "True" });

    // When the HPA is deleted
    await testClients().autoscaling.deleteNamespacedHorizontalPodAutoscaler({
      name: "web",
      namespace: hg.namespace,
    });

    // Then headroom is Unknown: nothing says what the peak is
    await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "Unknown",
      reason: "HPANotFound",
      message: "no HorizontalPodAutoscaler targets Deployment web",
    });
    await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", {
      status: "Unknown",
      reason: "HPANotFound",
    });
    await hg.expectSecondReconcileWritesNothing();
  });
});
