// Termination on the real kubelet: the preStop drain healthgate writes keeps a deleted pod's
// container running (and probed) until the drain ends; without a drain the pod goes at once.
import { beforeAll, describe, expect, it } from "vitest";
import { makeDeployment } from "../../support/builders.ts";
import { ignoreNotFound, testClients } from "../../support/kube.ts";
import { isReady, livePods, onRealNodes } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import { installCrd, useControllerHarness, withShutdown } from "../controller/support.ts";
import { fastEnforcePolicy } from "./support.ts";

beforeAll(() => installCrd());

const DRAIN_SECONDS = 8;

describe("termination on the real kubelet", () => {
  const hg = useControllerHarness({ app: () => ({ "/healthz": {}, "/readyz": {} }) });

  it("a preStop drain keeps a terminating pod serving until the drain ends", async () => {
    const { core } = testClients();
    // Given two Deployments under Enforce, one with an 8 s drain and one with none
    await hg.createPolicy(
      fastEnforcePolicy("drained", withShutdown({ drainSeconds: DRAIN_SECONDS, maxInFlightSeconds: 2 })),
    );
    await hg.createPolicy(
      fastEnforcePolicy("undrained", withShutdown({ drainSeconds: 0, maxInFlightSeconds: 2 })),
    );
    await hg.startOperator();
    for (const name of ["drained", "undrained"]) await hg.apply(makeDeployment(name, onRealNodes()));
    const settledPod = (name: string, drain: number | undefined) =>
      waitFor(
        async () => {
          const pods = await livePods(hg.namespace, name);
          expect(pods.length).toBe(1);
          const pod = pods[0]!;
          expect(pod.spec?.containers[0]?.lifecycle?.preStop?.sleep?.seconds).toBe(drain);
          expect(pod.spec?.containers[0]?.readinessProbe?.httpGet?.path).toBe("/readyz");
          expect(isReady(pod), "Ready").toBe(true);
          return pod;
        },
        {
          what: `${name}'s pod to run healthgate's template and be Ready`,
          timeoutMs: 90_000,
          intervalMs: 500,
        },
      );
    const drained = await settledPod("drained", DRAIN_SECONDS);
    const undrained = await settledPod("undrained", undefined);

    // When each pod is deleted
    const name = drained.metadata!.name!;
    const probesBefore = hg.apps.hits(name, "/readyz");
    const deletedAt = Date.now();
    await core.deleteNamespacedPod({ name, namespace: hg.namespace });
    await core.deleteNamespacedPod({ name: undrained.metadata!.name!, namespace: hg.namespace });

    // Then the drained pod stays, Terminating, its container running and still probed, for the drain
    await holdsFor(
      async () => {
        const pod = await core.readNamespacedPod({ name, namespace: hg.namespace });
        expect(pod.metadata?.deletionTimestamp, "deletionTimestamp").toBeDefined();
        expect(pod.status?.containerStatuses?.[0]?.state?.running, "container running").toBeDefined();
      },
      { forMs: (DRAIN_SECONDS - 2) * 1000, intervalMs: 500, what: `${name} to keep running while it drains` },
    );
    expect(hg.apps.hits(name, "/readyz"), "readiness probes during the drain").toBeGreaterThan(probesBefore);
    // while the undrained one is gone already
    expect(
      await ignoreNotFound(
        core.readNamespacedPod({ name: undrained.metadata!.name!, namespace: hg.namespace }),
      ),
    ).toBeUndefined();

    // and the drained pod goes once the drain has ended
    await waitFor(
      async () => !(await ignoreNotFound(core.readNamespacedPod({ name, namespace: hg.namespace }))),
      {
        what: `${name} to be gone after its drain`,
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
    expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(DRAIN_SECONDS * 1000 - 500);
  });
});
