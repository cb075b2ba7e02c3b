// Enforce on the real kubelet: the probes healthgate makes a Deployment's pods carry are dialled
// by the kubelet against the application and pass, so the rollout completes; a readiness path
// the application does not serve keeps it from completing. Only the outcome on the live
// Deployment and its pods is asserted, not how healthgate writes.
import { beforeAll, describe, expect, it } from "vitest";
import { makeDeployment, withReplicas } from "../../support/builders.ts";
import { isReady, livePods, onRealNodes } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import {
  installCrd,
  readDeployment,
  useControllerHarness,
  waitForRolloutComplete,
} from "../controller/support.ts";
import { testClients } from "../../support/kube.ts";
import { fastEnforcePolicy, probePath, withEndpoints } from "./support.ts";

/** The kubelet's probe-failure Event messages (reason Unhealthy) for one pod. */
async function probeFailures(namespace: string, pod: string): Promise<string[]> {
  const events = await testClients().core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod},reason=Unhealthy`,
  });
  return events.items.map((e) => e.message ?? "");
}

beforeAll(() => installCrd());

describe("Enforce on the real kubelet", () => {
  // The application serves its shallow endpoints; nothing else (404).
  const hg = useControllerHarness({ app: () => ({ "/healthz": {}, "/readyz": {} }) });

  it("the rewritten probes pass against the application and the rollout completes", async () => {
    // Given an Enforce policy and healthgate running
    await hg.createPolicy(fastEnforcePolicy("web"));
    await hg.startOperator();
    // When a Deployment without probes is applied
    await hg.apply(makeDeployment("web", withReplicas(2), onRealNodes()));

    // Then its pods run healthgate's probes and are Ready, by the kubelet's own dialling
    const pods = await waitFor(
      async () => {
        const live = await livePods(hg.namespace, "web");
        expect(live.length).toBe(2);
        for (const pod of live) {
          expect(probePath(pod, "readiness"), pod.metadata?.name).toBe("/readyz");
          expect(probePath(pod, "liveness"), pod.metadata?.name).toBe("/healthz");
          expect(isReady(pod), `${pod.metadata?.name} Ready`).toBe(true);
        }
        return live;
      },
      { what: "web's pods to carry healthgate's probes and be Ready", timeoutMs: 90_000, intervalMs: 500 },
    );
    for (const pod of pods) {
      expect(hg.apps.hits(pod.metadata!.name!, "/readyz"), "readiness probes served").toBeGreaterThan(0);
      expect(hg.apps.hits(pod.metadata!.name!, "/healthz"), "liveness probes served").toBeGreaterThan(0);
      // The application never answered a probe wrongly ("HTTP probe failed with statuscode: …").
      // Refusals while the pod's server starts, and timeouts when the loaded 2-core machine stalls
      // the test process serving the pods' HTTP, say nothing about the probes healthgate wrote;
      // a restart is allowed only after such liveness failures.
      const failures = await probeFailures(hg.namespace, pod.metadata!.name!);
      expect(
        failures.filter((m) => /statuscode/i.test(m)),
        `${pod.metadata?.name}: probes the application answered wrongly`,
      ).toEqual([]);
      if (!failures.some((m) => m.startsWith("Liveness probe failed")))
        expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    }
    // and the rollout completes
    await waitForRolloutComplete(hg.namespace, "web", 60_000);
  });

  it("a readiness path the application does not serve keeps the rollout from completing", async () => {
    // Given an Enforce policy whose readiness path the application answers 404 on
    await hg.createPolicy(
      fastEnforcePolicy("web", withEndpoints({ readiness: { path: "/ready-not-served" } })),
    );
    await hg.startOperator();
    await hg.apply(makeDeployment("web", withReplicas(2), onRealNodes()));

    // When pods carrying that probe run
    await waitFor(
      async () =>
        (await livePods(hg.namespace, "web")).some((p) => probePath(p, "readiness") === "/ready-not-served"),
      {
        what: "a pod of web to carry the readiness probe on /ready-not-served",
        timeoutMs: 60_000,
        intervalMs: 500,
      },
    );

    // Then none of them turns Ready and the rollout does not complete
    await holdsFor(
      async () => {
        const probed = (await livePods(hg.namespace, "web")).filter(
          (p) => probePath(p, "readiness") === "/ready-not-served",
        );
        expect(probed.filter(isReady).map((p) => p.metadata?.name)).toEqual([]);
        const d = await readDeployment(hg.namespace, "web");
        const s = d.status ?? {};
        const complete = s.updatedReplicas === 2 && s.availableReplicas === 2 && s.replicas === 2;
        expect(complete, `rollout complete: ${JSON.stringify(s)}`).toBe(false);
      },
      { forMs: 20_000, intervalMs: 1_000, what: "the rollout to stay incomplete" },
    );
    // and the kubelet did dial the path (the 404s are real answers, not a harness gap)
    const probed = (await livePods(hg.namespace, "web")).filter(
      (p) => probePath(p, "readiness") === "/ready-not-served",
    );
    expect(probed.some((p) => hg.apps.hits(p.metadata!.name!, "/ready-not-served") > 0)).toBe(true);
  });
});
