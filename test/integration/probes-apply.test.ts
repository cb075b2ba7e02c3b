// The probes concern's Enforce contract against a real kube-apiserver: the
// owned spec it computes, applied with server-side apply under the field
// manager `healthgate`, is accepted, reads back as desired once the API
// server's defaults are filled in (so ownedFieldsDiffer says "no write" and a
// second reconcile sends nothing), and a live handler of another kind is a
// conflict the writer must remove first (the API server refuses two handlers).
import { PatchStrategy, type KubernetesObject, type V1Deployment } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Deployment } from "../../src/api/k8s.ts";
import { healthPolicy } from "../../src/api/v1alpha1/index.ts";
import { ownedSpecApplyBody } from "../../src/policy/decide.ts";
import { conflictingHandlers, ownedFieldsDiffer, probesConcern } from "../../src/policy/probes/concern.ts";
import type { OwnedSpec, TargetSnapshot } from "../../src/policy/seam.ts";
import { inNamespace, makeDeployment, withProbe } from "../support/builders.ts";
import { testClients, useTestNamespace } from "../support/kube.ts";

const { apps, objects } = testClients();
const ns = useTestNamespace();

const policy = (namespace: string) =>
  healthPolicy.parse({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "web", namespace },
    spec: {
      selector: { matchLabels: { app: "web" } },
      mode: "Enforce",
      endpoints: {
        port: "http",
        liveness: { path: "/healthz" },
        readiness: { path: "/readyz" },
        startup: { path: "/healthz", maxStartupSeconds: 60 },
        deep: { paths: ["/health/deep"] },
      },
      timing: { liveness: { terminationGracePeriodSeconds: 15 }, objectives: { maxEjectSeconds: 20 } },
    },
  });

/** Wire JSON → the JSON types pure code uses (typed client results carry Dates; none matter here). */
const asDeployment = (d: V1Deployment) => JSON.parse(JSON.stringify(d)) as Deployment;

function snapshot(deployment: Deployment, namespace: string): TargetSnapshot {
  return {
    policy: policy(namespace),
    deployment,
    replicaSets: [],
    pods: [],
    pdbs: [],
    nodeZones: {},
    now: new Date(),
  };
}

async function applyOwned(deployment: Deployment, owned: OwnedSpec): Promise<void> {
  await objects.patch(
    ownedSpecApplyBody(deployment, owned) as unknown as KubernetesObject,
    undefined,
    undefined,
    "healthgate",
    true,
    PatchStrategy.ServerSideApply,
  );
}

describe("Enforce: the owned spec under server-side apply", () => {
  it("is accepted, reads back as desired, and needs no second write", async () => {
    // Given a Deployment whose liveness probe reaches the deep endpoint
    const created = await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: makeDeployment(
        "web",
        inNamespace(ns.name),
        withProbe("web", "liveness", { httpGet: { path: "/health/deep", port: "http" } }),
      ),
    });
    const first = probesConcern(snapshot(asDeployment(created), ns.name));
    const owned = first.ownedSpec!;
    expect(ownedFieldsDiffer(asDeployment(created).spec.template, owned)).toBe(true);

    // When healthgate applies its owned fields
    await applyOwned(asDeployment(created), owned);

    // Then the stored template satisfies them, and a second reconcile wants no write
    const stored = asDeployment(await apps.readNamespacedDeployment({ name: "web", namespace: ns.name }));
    expect(ownedFieldsDiffer(stored.spec.template, owned)).toBe(false);
    const second = probesConcern(snapshot(stored, ns.name));
    expect(second.ownedSpec).toEqual(owned);
    expect(ownedFieldsDiffer(stored.spec.template, second.ownedSpec!)).toBe(false);
    expect(second.conditions.find((c) => c.type === "ProbesCompliant")).toMatchObject({ status: "True" });
    const web = stored.spec.template.spec.containers[0]!;
    expect(web.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(web.startupProbe?.failureThreshold).toBe(12);
    expect(web.lifecycle?.preStop?.sleep?.seconds).toBe(5);
    expect(stored.spec.template.spec.terminationGracePeriodSeconds).toBe(25);
  });

  it("a live handler of another kind makes the apply invalid until the writer removes it", async () => {
    const created = await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: makeDeployment(
        "web",
        inNamespace(ns.name),
        withProbe("web", "liveness", { exec: { command: ["cat", "/tmp/ok"] } }),
      ),
    });
    const live = asDeployment(created);
    const owned = probesConcern(snapshot(live, ns.name)).ownedSpec!;
    expect(conflictingHandlers(live.spec.template, owned)).toEqual([
      { container: "web", field: "livenessProbe.exec" },
    ]);
    await expect(applyOwned(live, owned)).rejects.toMatchObject({ code: 422 });
  });
});
