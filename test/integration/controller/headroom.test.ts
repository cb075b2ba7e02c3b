// N−k headroom against real objects: a Static peak, a real autoscaling/v2 HPA (which the
// controller manager's HPA controller scales to minReplicas), and the PodDisruptionBudget
// healthgate may own (garbage-collected with its policy by the controller manager).
import { beforeAll, describe, expect, it } from "vitest";
import {
  makeDeployment,
  makeHpa,
  makePdb,
  withCpuTarget,
  withMaxReplicas,
  withMinReplicas,
  withReplicas,
} from "../../support/builders.ts";
import { ignoreNotFound, testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  deletePolicy,
  deploymentCondition,
  installCrd,
  makePolicy,
  mergePatch,
  patchPolicySpec,
  policyCondition,
  readPolicy,
  useControllerHarness,
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

describe("PodDisruptionBudget", () => {
  const hg = useControllerHarness();
  const pdbName = "web-healthgate";
  const readPdb = () =>
    ignoreNotFound(
      testClients().policy.readNamespacedPodDisruptionBudget({ name: pdbName, namespace: hg.namespace }),
    );
  const managed = (tolerate: number) =>
    makePolicy(
      "web",
      withHeadroom({
        source: "Static",
        peakUtilizationPercent: 50,
        tolerate,
        ceilingPercent: 90,
        zones: false,
        managePodDisruptionBudget: true,
      }),
    );

  it("creates one owned by the policy, follows tolerate, and is garbage-collected with the policy", async () => {
    // Given a Deployment and a policy asking healthgate to manage its PodDisruptionBudget
    await hg.apply(makeDeployment("web", withReplicas(4)));
    const policy = await hg.createPolicy(managed(1));

    // When healthgate runs
    await hg.startOperator();

    // Then the PDB <deployment>-healthgate exists, owned by the policy, allowing `tolerate` disruptions
    const pdb = await waitFor(readPdb, { what: `PodDisruptionBudget ${pdbName} to be created` });
    expect(pdb.spec).toMatchObject({
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: "AlwaysAllow",
      selector: { matchLabels: { app: "web" } },
    });
    expect(pdb.spec?.minAvailable).toBeUndefined();
    expect(pdb.metadata?.ownerReferences).toEqual([
      expect.objectContaining({
        apiVersion: "healthgate.io/v1alpha1",
        kind: "HealthPolicy",
        name: "web",
        uid: policy.metadata.uid,
        controller: true,
      }),
    ]);

    // When tolerate goes to 2
    await patchPolicySpec(hg.namespace, "web", { headroom: { tolerate: 2 } });

    // Then the PDB follows
    await waitFor(
      async () => {
        expect((await readPdb())?.spec?.maxUnavailable).toBe(2);
        return true;
      },
      { what: `PodDisruptionBudget ${pdbName} to allow 2 disruptions` },
    );
    await hg.expectSecondReconcileWritesNothing();

    // When the policy is deleted
    await deletePolicy(hg.namespace, "web");

    // Then the controller manager's garbage collector deletes the PDB it owned. (The collector
    // starts watching a new CRD's kind at its next discovery sync, every 30 s; hence the bound.)
    await waitFor(async () => (await readPdb()) === undefined, {
      what: `PodDisruptionBudget ${pdbName} to be garbage-collected`,
      timeoutMs: 90_000,
      intervalMs: 250,
    });
  }, 150_000);

  it("leaves a user's PDB over the same pods alone and reports it instead of adding a second one", async () => {
    // Given a user's PDB that already covers the Deployment's pods
    await hg.apply(makeDeployment("web", withReplicas(4)));
    await hg.apply(
      makePdb("web-user-budget", (pdb) => (pdb.spec!.selector = { matchLabels: { app: "web" } })),
    );
    await hg.createPolicy(managed(1));

    // When healthgate runs
    await hg.startOperator();

    // Then the policy reports why it adds none
    const policy = await waitFor(
      async () => {
        const p = await readPolicy(hg.namespace, "web");
        const finding = p.status?.targets?.[0]?.findings?.find(
          (f) => f.rule === "PodDisruptionBudgetNotManaged",
        );
        expect(finding, JSON.stringify(p.status?.targets?.[0]?.findings)).toBeDefined();
        return p;
      },
      { what: "the policy to report PodDisruptionBudgetNotManaged" },
    );
    const finding = policy.status!.targets![0]!.findings!.find(
      (f) => f.rule === "PodDisruptionBudgetNotManaged",
    )!;
    expect(finding.message).toContain("web-user-budget");
    // and no PDB of its own exists: two budgets over one pod make every eviction fail
    expect(await readPdb()).toBeUndefined();
    const budgets = await testClients().policy.listNamespacedPodDisruptionBudget({ namespace: hg.namespace });
    expect(budgets.items.map((b) => b.metadata!.name)).toEqual(["web-user-budget"]);
    await hg.expectSecondReconcileWritesNothing();
  });
});
