// Which policy governs a Deployment, and what a policy that cannot govern says about itself:
// two policies selecting one Deployment (the oldest governs), and a policy the API server
// stored although today's CRD would refuse it (stored before a CRD upgrade).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { GROUP, PLURAL, VERSION } from "../../../src/api/v1alpha1/index.ts";
import { Operator } from "../../../src/controller/operator.ts";
import { policyKey } from "../../../src/controller/reconciler.ts";
import { startControlPlane } from "../../../src/devcluster/controlPlane.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { makeDeployment, withReplicas } from "../../support/builders.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  apiRequests,
  deletePolicy,
  generatedCrd,
  installCrd,
  kubectl,
  makePolicy,
  mergePatch,
  policyCondition,
  readDeployment,
  selectingApp,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForPolicyCondition,
  waitForRolloutComplete,
  waitUntilIdle,
  withHeadroom,
  withMode,
  type HealthPolicyObject,
} from "./support.ts";

beforeAll(() => installCrd());

describe("Two policies selecting one Deployment", () => {
  const hg = useControllerHarness();

  it("the older governs; the newer reports OverlappingPolicy naming it, and takes over when it goes", async () => {
    // Given a Deployment, an Audit policy, and — created in a later second — an Enforce policy
    // selecting the same Deployment. Names sort the other way round, so age must decide.
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await waitForRolloutComplete(hg.namespace, "web");
    const older = await hg.createPolicy(makePolicy("zz-older", selectingApp("web")));
    await waitFor(
      () =>
        Math.floor(Date.now() / 1000) >
        Math.floor(Date.parse(String(older.metadata.creationTimestamp)) / 1000),
      {
        what: "a later second for the newer policy's creationTimestamp",
      },
    );
    await hg.createPolicy(makePolicy("aa-newer", selectingApp("web"), withMode("Enforce")));

    // When healthgate runs
    await hg.startOperator();

    // Then the newer one is not Ready and names the policy that governs
    const newer = await waitForPolicyCondition(hg.namespace, "aa-newer", "Ready", {
      status: "False",
      reason: "OverlappingPolicy",
      message: "web (governed by zz-older)",
    });
    expect(newer.status?.targets).toEqual([{ name: "web", governed: false }]);
    // and the older one governs: Ready, the Deployment's conditions are its (Audit) findings
    await waitForPolicyCondition(hg.namespace, "zz-older", "Ready", { status: "True", reason: "Reconciled" });
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "False" });
    // and the newer one's Enforce never touched the Deployment
    await waitUntilIdle(hg.operator, 3);
    expect((await readDeployment(hg.namespace, "web")).metadata!.generation).toBe(1);
    expect(await apiRequests(hg.operator, { verb: "apply", resource: "deployments" })).toBe(0);

    // When the older policy is deleted
    await deletePolicy(hg.namespace, "zz-older");

    // Then the newer one governs: Ready, and it enforces its probes
    await waitForPolicyCondition(hg.namespace, "aa-newer", "Ready", { status: "True", reason: "Reconciled" });
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" });
    // and healthgate forgets what it wrote to the deleted policy's status
    await waitFor(
      () => {
        expect(hg.operator.reconciler.remembersWrite(policyKey(hg.namespace, "zz-older"))).toBe(false);
        return true;
      },
      { what: "the status healthgate wrote to the deleted policy to be forgotten" },
    );
    expect(hg.operator.reconciler.remembersWrite(policyKey(hg.namespace, "aa-newer"))).toBe(true);
    const enforced = await readDeployment(hg.namespace, "web");
    expect(enforced.spec!.template.spec!.containers[0]!.livenessProbe?.httpGet?.path).toBe("/healthz");
    await hg.expectSecondReconcileWritesNothing();
  });
});

describe("The pod cache", () => {
  const hg = useControllerHarness();

  it("holds the pods of governed Deployments only, and fetches a Deployment's pods once a policy selects it", async () => {
    // Given a governed Deployment and one no policy selects, both rolled out
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.apply(makeDeployment("batch", withReplicas(3)));
    await waitForRolloutComplete(hg.namespace, "web");
    await waitForRolloutComplete(hg.namespace, "batch");
    await hg.createPolicy(makePolicy("web"));

    // When healthgate runs
    await hg.startOperator();
    await waitForPolicyCondition(hg.namespace, "web", "Ready", { status: "True" });

    // Then it caches web's pods, and none of batch's
    const cached = (prefix: string) =>
      hg.operator.world.pods.list().filter((p) => p.metadata.name.startsWith(prefix)).length;
    expect(cached("web-")).toBe(2);
    expect(cached("batch-")).toBe(0);

    // When a policy starts selecting batch
    await hg.createPolicy(makePolicy("batch"));

    // Then batch's pods are fetched
    await waitFor(
      () => {
        expect(cached("batch-")).toBe(3);
        return true;
      },
      { what: "the operator to cache batch's 3 pods" },
    );

    // When that policy goes again, so do the pods
    await deletePolicy(hg.namespace, "batch");
    await waitFor(
      () => {
        expect(cached("batch-")).toBe(0);
        return true;
      },
      { what: "the operator to drop batch's pods" },
    );
    expect(cached("web-")).toBe(2);
  });
});

/** Deletes every `x-kubernetes-validations` (CEL rule) in a schema. */
function withoutCelRules(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutCelRules);
  if (typeof node !== "object" || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key]) => key !== "x-kubernetes-validations")
      .map(([key, value]) => [key, withoutCelRules(value)]),
  );
}

describe("A policy the API server stored before a CRD upgrade", () => {
  it(
    "is reported Ready=False InvalidSpec naming the field, without retries, and recovers when fixed",
    { timeout: 120_000 },
    async () => {
      // A private plane (no controller manager): changing the shared plane's CRD would change it under other tests.
      const dataDir = await mkdtemp(path.join(tmpdir(), "healthgate-crd-upgrade-"));
      const plane = await startControlPlane({
        binDir: inject("k8sBinDir"),
        dataDir,
        controllerManager: false,
      });
      let operator: Operator | undefined;
      try {
        const kc = new KubeConfig();
        kc.loadFromFile(plane.kubeconfigPath);
        const core = kc.makeApiClient(CoreV1Api);
        const apps = kc.makeApiClient(AppsV1Api);
        const custom = kc.makeApiClient(CustomObjectsApi);
        const ns = "shop";
        const policyApi = { group: GROUP, version: VERSION, plural: PLURAL, namespace: ns };

        // Given an older CRD without the cross-field rules, and a policy it accepted: source Static without a peak
        const crdFile = path.join(dataDir, "crd-without-rules.json");
        await writeFile(crdFile, JSON.stringify(withoutCelRules(generatedCrd())));
        await kubectl(["apply", "--server-side", "-f", crdFile], { kubeconfig: plane.kubeconfigPath });
        await kubectl(
          ["wait", "--for=condition=Established", "--timeout=60s", "crd/healthpolicies.healthgate.io"],
          {
            kubeconfig: plane.kubeconfigPath,
          },
        );
        await core.createNamespace({ body: { metadata: { name: ns } } });
        await apps.createNamespacedDeployment({ namespace: ns, body: makeDeployment("web") });
        const invalid: HealthPolicyObject = makePolicy(
          "web",
          withHeadroom({ source: "Static", tolerate: 1 }),
        );
        await waitFor(
          () =>
            custom
              .createNamespacedCustomObject({
                ...policyApi,
                body: { ...invalid, metadata: { name: "web", namespace: ns } },
              })
              .then(() => true),
          { what: "the old CRD to accept the policy", timeoutMs: 30_000, intervalMs: 250 },
        );
        // and the CRD upgraded to today's, whose rule refuses that policy
        await installCrd(plane.kubeconfigPath);
        const refused = await custom
          .createNamespacedCustomObject({
            ...policyApi,
            body: { ...invalid, metadata: { name: "web-2", namespace: ns } },
          })
          .then(
            () => "accepted",
            (err: unknown) => String((err as { body?: unknown }).body),
          );
        expect(refused).toContain("peakUtilizationPercent");

        // When healthgate runs
        operator = new Operator({
          kubeConfig: kc,
          logger: createLogger("silent"),
          namespaces: [ns],
          port: 0,
          leaderElection: { enabled: false },
        });
        await operator.start();

        // Then the policy says it is invalid, naming the object, the field and the fix
        const read = () =>
          custom.getNamespacedCustomObject({ ...policyApi, name: "web" }) as Promise<HealthPolicyObject>;
        const reported = await waitFor(
          async () => {
            const p = await read();
            const ready = policyCondition(p, "Ready");
            expect(ready, JSON.stringify(p.status)).toMatchObject({ status: "False", reason: "InvalidSpec" });
            return p;
          },
          { what: "the policy to report Ready=False InvalidSpec" },
        );
        const ready = policyCondition(reported, "Ready")!;
        expect(ready.message).toContain(`HealthPolicy ${ns}/web is invalid`);
        expect(ready.message).toContain("spec.headroom");
        expect(ready.message).toContain("peakUtilizationPercent");
        expect(reported.status?.observedGeneration).toBe(reported.metadata.generation);
        // and it is a permanent error: no failed reconcile, no retry, and the Deployment is left alone
        await waitUntilIdle(operator, 1);
        const errors = await operator.metrics.registry.getSingleMetric("healthgate_reconcile_total")?.get();
        expect(
          errors?.values.filter((v) => v.labels.result === "error").reduce((s, v) => s + v.value, 0) ?? 0,
        ).toBe(0);
        const deployment = await apps.readNamespacedDeployment({ namespace: ns, name: "web" });
        expect(deployment.metadata?.generation).toBe(1);
        expect(
          (deployment.status?.conditions ?? []).filter((c) => c.type.startsWith("healthgate.io/")),
        ).toEqual([]);

        // When the user fixes the spec
        await custom.patchNamespacedCustomObject(
          { ...policyApi, name: "web", body: { spec: { headroom: { peakUtilizationPercent: 50 } } } },
          mergePatch,
        );

        // Then it governs the Deployment
        await waitFor(
          async () => {
            const p = await read();
            expect(p.status?.observedGeneration).toBe(p.metadata.generation);
            expect(policyCondition(p, "Ready")).toMatchObject({ status: "True", reason: "Reconciled" });
            return p;
          },
          { what: "the fixed policy to become Ready" },
        );
      } finally {
        await operator?.stop();
        await plane.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  );
});
