// Panic mode on the real kubelet with real EndpointSlices (docs/panic.md): readiness fails for
// real (the pods' /readyz answers 503, the kubelet's probe sees it), and what is asserted is
// each endpoint's conditions.ready — what kube-proxy routes by — not its mere presence.
import { beforeAll, describe, expect, it } from "vitest";
import type { V1Service } from "@kubernetes/client-node";
import type { App } from "../../../src/devcluster/podApps.ts";
import { PANIC_FIELD_MANAGER } from "../../../src/controller/panic.ts";
import {
  makeDeployment,
  makeService,
  withPodLabels,
  withProbe,
  withReadinessGate,
  withReplicas,
  withRollingUpdate,
  withSelector,
} from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { isReady, livePods, onRealNodes } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import { readRecord } from "../controller/admission.ts";
import {
  apiRequests,
  applyAs,
  installCrd,
  makePolicy,
  useControllerHarness,
  waitForEvent,
  type HealthPolicyObject,
} from "../controller/support.ts";

beforeAll(() => installCrd());

const app: App = { "/healthz": {}, "/readyz": {} };
const READINESS = {
  httpGet: { path: "/readyz", port: "http" },
  periodSeconds: 1,
  failureThreshold: 1,
  successThreshold: 1,
};

const GATE = "healthgate.io/deep-check";
/** Rollouts gated on /health/deep, which the pods answer 404: a new revision's pods stay held. */
const withGatedRollout = (policy: HealthPolicyObject): void => {
  policy.spec.rollout = { steps: [{ weight: 50 }, { weight: 100 }], deepCheck: { path: "/health/deep" } };
};
const oneAtATime = withRollingUpdate({ maxSurge: 1, maxUnavailable: 0 });

const withPanic =
  (floorPercent: number, hold: string) =>
  (policy: HealthPolicyObject): void => {
    policy.spec.guardrails = { panic: { floorPercent, hold } };
  };

/** Pod name → conditions.ready of its endpoint in the Service's EndpointSlices. */
async function endpointReadiness(namespace: string, service: string): Promise<Record<string, boolean>> {
  const slices = await testClients().discovery.listNamespacedEndpointSlice({
    namespace,
    labelSelector: `kubernetes.io/service-name=${service}`,
  });
  const ready: Record<string, boolean> = {};
  for (const slice of slices.items)
    for (const e of slice.endpoints ?? []) ready[e.targetRef?.name ?? "?"] = e.conditions?.ready === true;
  return ready;
}

const readService = (namespace: string, name: string) =>
  testClients().core.readNamespacedService({ namespace, name });

/** Field managers owning spec.publishNotReadyAddresses. */
const publishOwners = (svc: V1Service) =>
  (svc.metadata?.managedFields ?? [])
    .filter((m) => JSON.stringify(m.fieldsV1 ?? {}).includes('"f:publishNotReadyAddresses"'))
    .map((m) => m.manager);

async function waitForPanic(namespace: string, name: string, phase: string, reason?: string) {
  return waitFor(
    async () => {
      const record = await readRecord(namespace, name);
      const panic = record.status?.panic;
      if (panic?.phase === phase && (reason === undefined || panic.reason === reason)) return panic;
      // Not yet: say what the server holds beside it (an Inactive message is written once, when
      // panic is armed, and does not follow readiness), so that a timeout shows what was seen.
      const pods = (await livePods(namespace, name)).map(
        (p) =>
          `${p.metadata!.name} ${p.status?.phase} ${isReady(p) ? "Ready" : "unready"}` +
          (p.metadata?.deletionTimestamp ? " terminating" : ""),
      );
      const seen = `${JSON.stringify(panic)}; rollout ${record.status?.rollout?.phase ?? "-"}; pods: ${pods.join(", ")}`;
      expect(panic?.phase, seen).toBe(phase);
      expect(panic?.reason, seen).toBe(reason);
      return panic!;
    },
    { what: `HealthTarget ${name} status.panic.phase=${phase}`, timeoutMs: 60_000, intervalMs: 500 },
  );
}

describe("panic mode on the real kubelet", () => {
  const hg = useControllerHarness({ app: () => app });

  const deploy = async (
    name: string,
    replicas: number,
    ...modifiers: Parameters<typeof makeDeployment>[1][]
  ) => {
    await hg.apply(
      makeDeployment(
        name,
        withReplicas(replicas),
        onRealNodes(),
        withProbe(name, "readiness", READINESS),
        ...modifiers,
      ),
    );
  };
  const readyPods = (name: string, count: number) =>
    waitFor(
      async () => {
        const pods = await livePods(hg.namespace, name);
        expect(pods.filter(isReady).length).toBe(count);
        return pods;
      },
      { what: `${count} Ready pods of ${name}`, timeoutMs: 90_000, intervalMs: 500 },
    );
  /** The name of the one revision-2 pod, once it runs with an IP and is held unready by its gate. */
  const heldNewPod = (name: string) =>
    waitFor(
      async () => {
        const fresh = (await livePods(hg.namespace, name)).filter(
          (p) => p.metadata?.labels?.revision === "2",
        );
        expect(fresh.length).toBe(1);
        expect(fresh[0]!.status?.podIP).toBeTruthy();
        expect(isReady(fresh[0]!)).toBe(false);
        return fresh[0]!.metadata!.name!;
      },
      { what: `a held revision-2 pod of ${name}`, timeoutMs: 60_000, intervalMs: 500 },
    );

  it("publishes unready pods as ready endpoints below the floor, and gives the original back after recovery, across restarts", async () => {
    // Given four Ready pods behind the user's Service, and an Audit policy with panic below 50 %
    await hg.createPolicy(makePolicy("web", withPanic(50, "3s")));
    await hg.apply(makeService("web"));
    await deploy("web", 4);
    await hg.startOperator();
    const pods = await readyPods("web", 4);
    await waitForPanic(hg.namespace, "web", "Inactive");
    const [victim, ...others] = pods.map((p) => p.metadata!.name!) as [string, ...string[]];

    // When three of them fail readiness (25 % Ready)
    for (const pod of [victim, others[0]!, others[1]!]) hg.apps.set(pod, "/readyz", { status: 503 });

    // Then healthgate panics: every endpoint is ready although three pods are not
    await waitFor(
      async () => {
        const live = await livePods(hg.namespace, "web");
        expect(live.filter(isReady).length).toBe(1);
        const ready = await endpointReadiness(hg.namespace, "web");
        expect(Object.keys(ready).sort()).toEqual(live.map((p) => p.metadata!.name!).sort());
        for (const [pod, isReadyEndpoint] of Object.entries(ready)) expect(isReadyEndpoint, pod).toBe(true);
        return true;
      },
      {
        what: "every endpoint of Service web ready while 3 of 4 pods are unready",
        timeoutMs: 60_000,
        intervalMs: 500,
      },
    );
    const panicking = await waitForPanic(hg.namespace, "web", "Panicking", "BelowFloor");
    expect(panicking.services).toEqual([{ name: "web", original: false }]);
    const published = await readService(hg.namespace, "web");
    expect(published.spec?.publishNotReadyAddresses).toBe(true);
    expect(publishOwners(published)).toEqual([PANIC_FIELD_MANAGER]);
    await waitForEvent(hg.namespace, {
      reason: "PanicEntered",
      regardingKind: "Deployment",
      regardingName: "web",
    });
    await waitForEvent(hg.namespace, {
      reason: "PanicPublished",
      regardingKind: "Service",
      regardingName: "web",
    });
    const metric = await hg.operator.metrics.registry
      .getSingleMetric("healthgate_panic_changes_total")
      ?.get();
    expect(metric?.values.find((v) => v.labels.change === "enter")?.value).toBe(1);

    // When healthgate restarts mid-panic, it keeps the setting (still below the floor)
    await hg.stopOperator();
    await hg.startOperator();
    await holdsFor(
      async () => {
        expect((await readRecord(hg.namespace, "web")).status?.panic?.phase).toBe("Panicking");
        expect((await readService(hg.namespace, "web")).spec?.publishNotReadyAddresses).toBe(true);
      },
      { forMs: 6_000, intervalMs: 500, what: "panic to be kept across the restart" },
    );

    // When healthgate is down while two pods recover (75 % Ready, one pod still failing), and starts again
    await hg.stopOperator();
    for (const pod of [others[0]!, others[1]!]) hg.apps.set(pod, "/readyz", undefined);
    await readyPods("web", 3);
    await hg.startOperator();

    // Then after the hold it restores the original (no field, no owner) from its record,
    // and the still-unready pod's endpoint is not ready any more
    await waitForPanic(hg.namespace, "web", "Inactive", "Recovered");
    const restored = await readService(hg.namespace, "web");
    expect(restored.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(publishOwners(restored)).toEqual([]);
    await waitFor(
      async () => {
        const ready = await endpointReadiness(hg.namespace, "web");
        expect(ready[victim], victim).toBe(false);
        for (const pod of others) expect(ready[pod], pod).toBe(true);
        return true;
      },
      { what: `the endpoint of ${victim} to be not ready again`, timeoutMs: 30_000, intervalMs: 500 },
    );
    await waitForEvent(hg.namespace, {
      reason: "PanicEnded",
      regardingKind: "Deployment",
      regardingName: "web",
    });
    await waitForEvent(hg.namespace, {
      reason: "PanicRestored",
      regardingKind: "Service",
      regardingName: "web",
    });
  });

  it("refuses a Service shared with another workload and a workload whose gated pods are held, saying why", async () => {
    // Given "web" behind Service "front", which also selects the ungoverned "other" (label tier=front),
    // and "gated" behind its own Service, in a gated rollout whose new pod stays held (its deep
    // check, /health/deep, answers 404)
    await hg.createPolicy(makePolicy("web", withPanic(50, "3s")));
    await hg.createPolicy(makePolicy("gated", withPanic(50, "3s"), withGatedRollout));
    await hg.apply(makeService("front", withSelector({ tier: "front" })));
    await hg.apply(makeService("gated"));
    await deploy("web", 2, withPodLabels({ tier: "front" }));
    await deploy("other", 1, withPodLabels({ tier: "front" }));
    await deploy("gated", 2, oneAtATime);
    await hg.startOperator();
    const web = await readyPods("web", 2);
    const gatedOld = await readyPods("gated", 2);
    for (const name of ["web", "gated"]) await waitForPanic(hg.namespace, name, "Inactive");
    await deploy("gated", 2, oneAtATime, withReadinessGate(GATE), withPodLabels({ revision: "2" }));
    const held = await heldNewPod("gated");

    // When the pods fail readiness
    for (const pod of [...web, ...gatedOld]) hg.apps.set(pod.metadata!.name!, "/readyz", { status: 503 });

    // Then panic is refused for each, with the reason in the record's status
    const shared = await waitForPanic(hg.namespace, "web", "Refused", "SharedService");
    expect(shared.message).toContain("Deployment other");
    const gated = await waitForPanic(hg.namespace, "gated", "Refused", "GatedPodsHeld");
    expect(gated.message).toContain(held);
    await waitForEvent(hg.namespace, { reason: "PanicRefused", regardingName: "web" });
    await waitForEvent(hg.namespace, { reason: "PanicRefused", regardingName: "gated" });
    // and neither Service changed: unready and held pods stay not-ready endpoints
    for (const name of ["front", "gated"]) {
      const svc = await readService(hg.namespace, name);
      expect(svc.spec?.publishNotReadyAddresses ?? false, name).toBe(false);
      expect(publishOwners(svc), name).toEqual([]);
    }
    await waitFor(
      async () => {
        const ready = await endpointReadiness(hg.namespace, "front");
        for (const pod of web) expect(ready[pod.metadata!.name!], pod.metadata!.name!).toBe(false);
        const gatedEndpoints = await endpointReadiness(hg.namespace, "gated");
        expect(Object.keys(gatedEndpoints).sort()).toEqual(
          [...gatedOld.map((p) => p.metadata!.name!), held].sort(),
        );
        for (const [pod, r] of Object.entries(gatedEndpoints)) expect(r, pod).toBe(false);
        return true;
      },
      { what: "the unready and held pods' endpoints to stay not ready", timeoutMs: 30_000, intervalMs: 500 },
    );
  });

  it("leaves panic when a gated rollout begins: the new revision's held pod is a not-ready endpoint", async () => {
    // Given web panicking (1 of 4 pods Ready) under a policy that gates rollouts
    await hg.createPolicy(makePolicy("web", withPanic(50, "3s"), withGatedRollout));
    await hg.apply(makeService("web"));
    await deploy("web", 4, oneAtATime);
    await hg.startOperator();
    const pods = await readyPods("web", 4);
    await waitForPanic(hg.namespace, "web", "Inactive");
    for (const pod of pods.slice(1)) hg.apps.set(pod.metadata!.name!, "/readyz", { status: 503 });
    await waitForPanic(hg.namespace, "web", "Panicking");

    // When a new revision rolls out with the deep-check readiness gate (its pods held: nobody admits them)
    await deploy("web", 4, oneAtATime, withReadinessGate(GATE), withPodLabels({ revision: "2" }));

    // Then healthgate leaves panic and gives the Service back
    const left = await waitFor(
      async () => {
        const panic = (await readRecord(hg.namespace, "web")).status?.panic;
        expect(panic?.phase, panic?.message).toBe("Refused");
        expect(["GatedRollout", "GatedPodsHeld"]).toContain(panic?.reason);
        const svc = await readService(hg.namespace, "web");
        expect(svc.spec?.publishNotReadyAddresses ?? false).toBe(false);
        expect(publishOwners(svc)).toEqual([]);
        return panic!;
      },
      { what: "panic to end as the gated rollout begins", timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(left.services ?? []).toEqual([]);
    await waitForEvent(hg.namespace, {
      reason: "PanicRefused",
      regardingName: "web",
      noteContains: "left panic",
    });
    // and the new pod, held by its gate, is a not-ready endpoint, as are the old unready ones
    await waitFor(
      async () => {
        const live = await livePods(hg.namespace, "web");
        const fresh = live.filter((p) => p.metadata?.labels?.revision === "2");
        expect(fresh.length).toBe(1);
        expect(fresh[0]!.status?.podIP).toBeTruthy();
        const ready = await endpointReadiness(hg.namespace, "web");
        expect(ready[fresh[0]!.metadata!.name!]).toBe(false);
        for (const pod of pods.slice(1)) expect(ready[pod.metadata!.name!], pod.metadata!.name!).toBe(false);
        expect(ready[pods[0]!.metadata!.name!]).toBe(true);
        return true;
      },
      { what: "the held new pod to be a not-ready endpoint", timeoutMs: 60_000, intervalMs: 500 },
    );
  });

  it("stops and names the field manager that takes publishNotReadyAddresses back mid-panic, without retrying", async () => {
    // Given web panicking (1 of 2 pods Ready, floor 60 %)
    await hg.createPolicy(makePolicy("web", withPanic(60, "3s")));
    await hg.apply(makeService("web"));
    await deploy("web", 2);
    await hg.startOperator();
    const [failing] = await readyPods("web", 2);
    await waitForPanic(hg.namespace, "web", "Inactive");
    hg.apps.set(failing!.metadata!.name!, "/readyz", { status: 503 });
    await waitForPanic(hg.namespace, "web", "Panicking");
    await waitFor(
      async () => (await readService(hg.namespace, "web")).spec?.publishNotReadyAddresses === true,
      { what: "Service web to publish not-ready addresses" },
    );

    // When a GitOps tool re-applies its manifest's publishNotReadyAddresses: false, taking the field
    const ref = { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: hg.namespace } };
    await applyAs("gitops", { ...ref, spec: { publishNotReadyAddresses: false } } as V1Service, {
      force: true,
    });

    // Then healthgate stops, reports the manager in status and in an Event
    const stopped = await waitForPanic(hg.namespace, "web", "Stopped", "ConflictingManager");
    expect(stopped.conflict).toEqual({ service: "web", manager: "gitops" });
    expect(stopped.message).toContain("gitops");
    await waitForEvent(hg.namespace, {
      reason: "PanicConflict",
      regardingName: "web",
      noteContains: "gitops",
    });
    // and does not take the field again while readiness stays below the floor
    const applies = await apiRequests(hg.operator, { verb: "apply", resource: "services" });
    await holdsFor(
      async () => {
        const svc = await readService(hg.namespace, "web");
        expect(svc.spec?.publishNotReadyAddresses ?? false).toBe(false);
        expect(publishOwners(svc)).toEqual(["gitops"]);
        expect((await readRecord(hg.namespace, "web")).status?.panic?.phase).toBe("Stopped");
      },
      { forMs: 8_000, intervalMs: 500, what: "healthgate to leave the Service alone" },
    );
    expect(await apiRequests(hg.operator, { verb: "apply", resource: "services" })).toBe(applies);
  });
  it("stops when an update (kubectl edit) sets the flag back mid-panic, though no managedFields entry names the editor", async () => {
    // Given web panicking (1 of 2 pods Ready, floor 60 %)
    await hg.createPolicy(makePolicy("web", withPanic(60, "3s")));
    await hg.apply(makeService("web"));
    await deploy("web", 2);
    await hg.startOperator();
    const [failing] = await readyPods("web", 2);
    await waitForPanic(hg.namespace, "web", "Inactive");
    hg.apps.set(failing!.metadata!.name!, "/readyz", { status: 503 });
    await waitForPanic(hg.namespace, "web", "Panicking");
    await waitFor(
      async () => (await readService(hg.namespace, "web")).spec?.publishNotReadyAddresses === true,
      { what: "Service web to publish not-ready addresses" },
    );

    // When someone edits the Service back to publishNotReadyAddresses: false (an update, not an apply)
    const { core } = testClients();
    const live = await core.readNamespacedService({ name: "web", namespace: hg.namespace });
    live.spec!.publishNotReadyAddresses = false;
    await core.replaceNamespacedService({
      name: "web",
      namespace: hg.namespace,
      body: live,
      fieldManager: "kubectl-edit",
    });

    // Then healthgate stops and says an update took it, and leaves the Service as edited
    const stopped = await waitForPanic(hg.namespace, "web", "Stopped", "ConflictingManager");
    expect(stopped.conflict).toEqual({ service: "web", manager: "" });
    expect(stopped.message).toContain("an update that left no managedFields entry");
    await holdsFor(
      async () =>
        expect((await readService(hg.namespace, "web")).spec?.publishNotReadyAddresses ?? false).toBe(false),
      { forMs: 5_000, intervalMs: 500, what: "the Service to stay as edited" },
    );
  });
});
