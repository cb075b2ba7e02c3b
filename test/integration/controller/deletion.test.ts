// Deletions always finish (issue 21, part 4). healthgate adds no finalizer to anything: the
// PodDisruptionBudget it manages is owned by its Deployment and collected by the garbage
// collector. So deleting a namespace that holds governed Deployments, managed budgets, policies
// and the deny admission policy's params finishes whether healthgate is running, stopped, or was
// uninstalled (its ServiceAccount, RBAC and deny policy gone; the CRD is kept, as the chart does).
import type { KubernetesObject } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { denyDeepLivenessManifests } from "../../../src/policy/probes/deny.ts";
import { makeDeployment, withProbe, withReplicas } from "../../support/builders.ts";
import { ignoreNotFound, testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import { chartIdentity, type ChartIdentity } from "./chartIdentity.ts";
import {
  applyAs,
  installCrd,
  makePolicy,
  mergePatch,
  useControllerHarness,
  waitForDeploymentCondition,
  withDeepPaths,
  withHeadroom,
  withMode,
  type HealthPolicyObject,
} from "./support.ts";

beforeAll(() => installCrd());

const SCOPE_LABEL = "test.healthgate.io/deletion";

describe("Deleting a namespace healthgate governs", () => {
  const hg = useControllerHarness();
  let identity: ChartIdentity | undefined;
  let denyName: string | undefined;
  afterEach(async () => {
    await identity?.remove();
    identity = undefined;
    if (denyName) await removeDeny(denyName);
    denyName = undefined;
  });

  it.each(["running", "stopped", "uninstalled"] as const)(
    "finishes while healthgate is %s",
    async (state) => {
      const { apps, core, custom, policy: policyApi } = testClients();
      // Given governed Deployments (one Audit with a managed budget, one Enforce), their
      // policies, and the deny admission policy judging the namespace
      denyName = `hg-deletion-${hg.namespace}`.slice(0, 63);
      await installDeny(denyName, hg.namespace);
      await hg.apply(makeDeployment("web", withReplicas(2)));
      await hg.apply(
        makeDeployment("api", withProbe("api", "liveness", { httpGet: { path: "/livez", port: "http" } })),
      );
      const managed: HealthPolicyObject = makePolicy(
        "web",
        withHeadroom({
          source: "Static",
          peakUtilizationPercent: 50,
          tolerate: 1,
          ceilingPercent: 90,
          zones: false,
          managePodDisruptionBudget: true,
        }),
        withDeepPaths("/health/deep"),
        (p) => (p.spec.deny = { deepLiveness: true }),
      );
      await hg.createPolicy(managed);
      await hg.createPolicy(
        makePolicy("api", withMode("Enforce"), withDeepPaths("/health/deep"), (p) => {
          p.spec.deny = { deepLiveness: true };
        }),
      );
      identity = await chartIdentity(hg.namespace);
      await hg.startOperator({ kubeConfig: identity.kubeConfig });
      await waitFor(
        () =>
          ignoreNotFound(
            policyApi.readNamespacedPodDisruptionBudget({ name: "web-healthgate", namespace: hg.namespace }),
          ),
        { what: "the managed PodDisruptionBudget web-healthgate" },
      );
      await waitForDeploymentCondition(hg.namespace, "api", "ProbesCompliant", { status: "True" });

      // and nothing healthgate touched carries a finalizer
      const listed = [
        ...(await apps.listNamespacedDeployment({ namespace: hg.namespace })).items,
        ...(await policyApi.listNamespacedPodDisruptionBudget({ namespace: hg.namespace })).items,
        ...(
          (await custom.listNamespacedCustomObject({
            group: "healthgate.io",
            version: "v1alpha1",
            plural: "healthpolicies",
            namespace: hg.namespace,
          })) as { items: KubernetesObject[] }
        ).items,
      ];
      expect(listed.flatMap((o) => o.metadata?.finalizers ?? [])).toEqual([]);

      if (state !== "running") await hg.stopOperator();
      if (state === "uninstalled") {
        await identity.remove();
        identity = undefined;
        await removeDeny(denyName);
        denyName = undefined;
      }

      // When the namespace is deleted (kubectl delete namespace)
      await core.deleteNamespace({ name: hg.namespace });

      // Then it is gone: the pod simulator plays the kubelet, nothing else helps
      await waitFor(
        async () => (await ignoreNotFound(core.readNamespace({ name: hg.namespace }))) === undefined,
        {
          what: `namespace ${hg.namespace} to be deleted with healthgate ${state}`,
          timeoutMs: 90_000,
          intervalMs: 250,
        },
      );
    },
    180_000,
  );
});

/** The chart's deny policy, bound to the namespaces labelled for this test only (other suites share the plane). */
async function installDeny(name: string, namespace: string): Promise<void> {
  const { policy, binding } = denyDeepLivenessManifests(name);
  (binding["spec"] as Record<string, unknown>)["matchResources"] = {
    namespaceSelector: { matchLabels: { [SCOPE_LABEL]: namespace } },
  };
  await testClients().core.patchNamespace(
    { name: namespace, body: { metadata: { labels: { [SCOPE_LABEL]: namespace } } } },
    mergePatch,
  );
  await applyAs("healthgate-deletion-test", policy as unknown as KubernetesObject, { force: true });
  await applyAs("healthgate-deletion-test", binding as unknown as KubernetesObject, { force: true });
}

async function removeDeny(name: string): Promise<void> {
  const { admissionregistration } = testClients();
  await ignoreNotFound(admissionregistration.deleteValidatingAdmissionPolicyBinding({ name }));
  await ignoreNotFound(admissionregistration.deleteValidatingAdmissionPolicy({ name }));
}
