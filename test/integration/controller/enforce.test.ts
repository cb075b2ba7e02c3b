// Enforce mode against a real API server and the real Deployment controller: healthgate owns the
// probe, preStop and grace fields through ONE forced server-side apply, the rollout it causes
// completes, a second reconcile writes nothing, other managers' fields survive, and a manager
// that keeps taking the fields back makes healthgate stop and say who it is (and a restarted
// healthgate keeps to that).
import type { V1Container, V1Deployment, V1ManagedFieldsEntry } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { makeDeployment, withProbe, withReplicas } from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  apiRequests,
  installCrd,
  kubectl,
  makePolicy,
  patchPolicySpec,
  readDeployment,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
  waitForPolicyCondition,
  waitForRolloutComplete,
  waitUntilIdle,
  withDeepPaths,
  withMode,
  withShutdown,
  applyAs,
} from "./support.ts";

beforeAll(() => installCrd());

const container = (d: V1Deployment, name = "web"): V1Container =>
  d.spec!.template.spec!.containers.find((c) => c.name === name)!;

/** The fields a manager owns under the container `name` of the pod template (managedFields, fieldsV1). */
function ownedContainerFields(
  entries: readonly V1ManagedFieldsEntry[],
  manager: string,
  name = "web",
): string[] {
  const entry = entries.find((m) => m.manager === manager && m.operation === "Apply" && !m.subresource);
  const fields = entry?.fieldsV1 as
    Record<string, Record<string, Record<string, Record<string, Record<string, object>>>>> | undefined;
  const containerFields =
    fields?.["f:spec"]?.["f:template"]?.["f:spec"]?.["f:containers"]?.[`k:{"name":"${name}"}`];
  return Object.keys(containerFields ?? {}).filter((k) => k.startsWith("f:"));
}

function ownsPodField(entries: readonly V1ManagedFieldsEntry[], manager: string, field: string): boolean {
  const entry = entries.find((m) => m.manager === manager && m.operation === "Apply" && !m.subresource);
  const fields = entry?.fieldsV1 as
    Record<string, Record<string, Record<string, Record<string, object>>>> | undefined;
  return fields?.["f:spec"]?.["f:template"]?.["f:spec"]?.[field] !== undefined;
}

/** The web Enforce policy of these tests: shallow /healthz and /readyz, a 5 s drain, 20 s in flight. */
const enforcePolicy = (...modifiers: Parameters<typeof makePolicy>[1][]) =>
  makePolicy(
    "web",
    withMode("Enforce"),
    withShutdown({ drainSeconds: 5, maxInFlightSeconds: 20 }),
    ...modifiers,
  );

describe("Enforce", () => {
  const hg = useControllerHarness();

  it("gives a Deployment without probes healthgate's probes, rolls them out, and then writes nothing", async () => {
    // Given a Deployment without probes, its pods running, and an Enforce policy selecting it
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await waitForRolloutComplete(hg.namespace, "web");
    const before = await readDeployment(hg.namespace, "web");
    const firstReplicaSets = await replicaSetNames(hg.namespace);
    await hg.createPolicy(enforcePolicy());

    // When healthgate runs
    await hg.startOperator();

    // Then the probes, preStop drain and grace period appear in the template
    const patched = await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(container(d).livenessProbe?.httpGet?.path).toBe("/healthz");
        return d;
      },
      { what: "healthgate to add the liveness probe" },
    );
    const web = container(patched);
    expect(web.livenessProbe?.httpGet).toMatchObject({ path: "/healthz", port: "http", scheme: "HTTP" });
    expect(web.readinessProbe?.httpGet).toMatchObject({ path: "/readyz", port: "http", scheme: "HTTP" });
    expect(web.readinessProbe?.successThreshold).toBeGreaterThanOrEqual(2);
    expect(web.livenessProbe?.failureThreshold).toBeGreaterThanOrEqual(3);
    expect(web.lifecycle?.preStop?.sleep?.seconds).toBe(5);
    expect(patched.spec!.template.spec!.terminationGracePeriodSeconds).toBe(25);
    expect(patched.metadata!.generation).toBe(before.metadata!.generation! + 1);

    // and the field manager healthgate owns them, and only them, in the template
    const managed = patched.metadata!.managedFields ?? [];
    expect(ownedContainerFields(managed, "healthgate").sort()).toEqual(
      ["f:lifecycle", "f:livenessProbe", "f:name", "f:readinessProbe"].sort(),
    );
    expect(ownsPodField(managed, "healthgate", "f:terminationGracePeriodSeconds")).toBe(true);
    expect(ownedContainerFields(managed, "test-user")).not.toContain("f:livenessProbe");

    // and the Deployment controller rolls the new template out (a new ReplicaSet, pods Ready)
    const rolledOut = await waitForRolloutComplete(hg.namespace, "web");
    const replicaSets = await replicaSetNames(hg.namespace);
    expect(replicaSets.length).toBe(firstReplicaSets.length + 1);

    // and the rolled-out template passes its own audit, on the Deployment and on the policy
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", {
      status: "True",
      reason: "Compliant",
    });
    await waitForDeploymentCondition(hg.namespace, "web", "LivenessShallow", { status: "True" });
    await waitForPolicyCondition(hg.namespace, "web", "ProbesCompliant", {
      status: "True",
      reason: "Compliant",
    });
    await waitForPolicyCondition(hg.namespace, "web", "Ready", { status: "True", reason: "Reconciled" });
    expect(container(rolledOut)).toEqual(container(patched));

    // When the world has settled and healthgate reconciles everything again (a fresh operator),
    // Then that second reconcile sends no write and changes nothing
    await hg.expectSecondReconcileWritesNothing();
  });

  describe("leaves the fields it does not own to their managers", () => {
    // Each row: how the user changes the image and an env var after healthgate enforced.
    const cases: { name: string; change: (ns: string, d: V1Deployment) => Promise<unknown> }[] = [
      {
        name: "kubectl apply (client-side, last-applied annotation)",
        change: (ns, d) => kubectl(["apply", "-n", ns, "-f", "-"], { stdin: JSON.stringify(d) }),
      },
      {
        name: "kubectl apply --server-side as field manager alice",
        change: (ns, d) =>
          kubectl(["apply", "-n", ns, "--server-side", "--field-manager=alice", "-f", "-"], {
            stdin: JSON.stringify(d),
          }),
      },
    ];

    it.each(cases)("$name", async ({ change }) => {
      // Given a Deployment the user manages (same tool as below) and healthgate enforced
      const manifest = (image: string, env?: string): V1Deployment => {
        const d = makeDeployment("web", withReplicas(2));
        const c = d.spec!.template.spec!.containers[0]!;
        c.image = image;
        if (env) c.env = [{ name: "FEATURE", value: env }];
        return d;
      };
      await change(hg.namespace, manifest("registry.invalid/web:1"));
      await hg.createPolicy(enforcePolicy());
      await hg.startOperator();
      await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" });
      await waitForRolloutComplete(hg.namespace, "web");
      await waitUntilIdle(hg.operator, 2);
      const specWrites = await apiRequests(hg.operator, { verb: "apply", resource: "deployments" });

      // When the user changes the image and adds an env var with their own tool
      await change(hg.namespace, manifest("registry.invalid/web:2", "on"));

      // Then their change stays and healthgate's probes stay, without healthgate re-applying
      const rolled = await waitForRolloutComplete(hg.namespace, "web");
      const web = container(rolled);
      expect(web.image).toBe("registry.invalid/web:2");
      expect(web.env).toEqual([{ name: "FEATURE", value: "on" }]);
      expect(web.livenessProbe?.httpGet?.path).toBe("/healthz");
      expect(web.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(web.lifecycle?.preStop?.sleep?.seconds).toBe(5);
      await waitUntilIdle(hg.operator, 1);
      expect(await apiRequests(hg.operator, { verb: "apply", resource: "deployments" })).toBe(specWrites);
      await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" });
      await hg.expectSecondReconcileWritesNothing();
    });
  });

  it("drops a field the policy stops asking for, even when the operator that applied it is gone", async () => {
    // Given an enforced Deployment that got healthgate's startup probe
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.createPolicy(
      enforcePolicy((policy) => {
        policy.spec.endpoints = {
          ...policy.spec.endpoints,
          startup: { path: "/healthz", maxStartupSeconds: 60 },
        };
      }),
    );
    await hg.startOperator();
    await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(container(d).startupProbe?.httpGet?.path).toBe("/healthz");
        return true;
      },
      { what: "healthgate to add the startup probe" },
    );
    await waitForRolloutComplete(hg.namespace, "web");

    // When a new operator takes over (it never applied anything: a restart or a new leader)
    // and the policy stops asking for a startup probe
    await hg.stopOperator();
    await patchPolicySpec(hg.namespace, "web", { endpoints: { startup: null } });
    await hg.startOperator();

    // Then the startup probe goes, and healthgate owns no startup probe any more
    const dropped = await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(container(d).startupProbe).toBeUndefined();
        return d;
      },
      { what: "healthgate to drop the startup probe the policy no longer asks for" },
    );
    expect(ownedContainerFields(dropped.metadata!.managedFields ?? [], "healthgate").sort()).toEqual(
      ["f:lifecycle", "f:livenessProbe", "f:name", "f:readinessProbe"].sort(),
    );
    // while the fields it still wants stay, and a second reconcile writes nothing
    expect(container(dropped).livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(container(dropped).lifecycle?.preStop?.sleep?.seconds).toBe(5);
    await hg.expectSecondReconcileWritesNothing();
  });

  it("stops after 3 flips when a GitOps controller keeps taking the probe fields back, and names it", async () => {
    // Given a Deployment that a GitOps controller applies from Git, with a deep liveness probe
    const fromGit = makeDeployment(
      "web",
      withReplicas(2),
      withProbe("web", "liveness", { httpGet: { path: "/health/deep", port: "http" }, periodSeconds: 10 }),
    );
    const sync = () =>
      applyAs(
        "argocd-controller",
        { ...fromGit, metadata: { ...fromGit.metadata, namespace: hg.namespace } },
        { force: true },
      );
    await sync();
    await hg.createPolicy(enforcePolicy(withDeepPaths("/health/deep")));
    await hg.startOperator();
    const healthgateHolds = (what: string) =>
      waitFor(
        async () => {
          const d = await readDeployment(hg.namespace, "web");
          expect(container(d).livenessProbe?.httpGet?.path).toBe("/healthz");
          return d;
        },
        { what },
      );
    await healthgateHolds("healthgate to replace the deep liveness probe");
    // and an Event about the Deployment announces the replacement
    await waitForEvent(hg.namespace, {
      type: "Normal",
      reason: "LivenessDeepReplaced",
      regardingKind: "Deployment",
      regardingName: "web",
      noteContains: "/health/deep",
    });

    // When the GitOps controller syncs the old manifest back three times, each after healthgate retook the fields
    for (let flip = 1; flip <= 3; flip++) {
      await sync();
      if (flip < 3) await healthgateHolds(`healthgate to retake the probe fields after sync ${flip}`);
    }

    // Then healthgate stops fighting: ProbesCompliant=False EnforceConflict naming the manager, on both objects
    const conflict = {
      status: "False",
      reason: "EnforceConflict",
      message: ['"argocd-controller"', "spec.deny.deepLiveness"],
    } as const;
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", conflict);
    await waitForPolicyCondition(hg.namespace, "web", "ProbesCompliant", conflict);
    // and a Warning Event says so
    await waitForEvent(hg.namespace, {
      type: "Warning",
      reason: "EnforceConflict",
      regardingKind: "Deployment",
      regardingName: "web",
      noteContains: "argocd-controller",
    });
    // and the GitOps controller's template stands: healthgate no longer applies
    await waitUntilIdle(hg.operator, 1);
    const applies = await apiRequests(hg.operator, { verb: "apply", resource: "deployments" });
    expect(applies).toBe(3); // the first enforcement and two retakes
    const d = await readDeployment(hg.namespace, "web");
    expect(container(d).livenessProbe?.httpGet?.path).toBe("/health/deep");

    // When healthgate restarts (or another replica takes over), remembering no flips
    await hg.stopOperator();
    await hg.startOperator();
    await waitUntilIdle(hg.operator, 1);

    // Then it resumes the hold the Deployment reports instead of fighting again
    expect(await apiRequests(hg.operator, { verb: "apply", resource: "deployments" })).toBe(0);
    expect(container(await readDeployment(hg.namespace, "web")).livenessProbe?.httpGet?.path).toBe(
      "/health/deep",
    );
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", conflict);
  });
});

async function replicaSetNames(namespace: string): Promise<string[]> {
  const list = await testClients().apps.listNamespacedReplicaSet({ namespace });
  return list.items.map((rs) => rs.metadata!.name!).sort();
}
