// Readiness gates on the real kubelet: a new pod whose containers pass their readiness probe
// stays unready while its gate is not True, so a rolling update (maxSurge 1, maxUnavailable 0)
// holds at the step boundary; admitting the pod moves it on by exactly one step.
import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import {
  makeDeployment,
  withProbe,
  withReadinessGate,
  withReplicas,
  withRollingUpdate,
} from "../../support/builders.ts";
import { setPodCondition, testClients } from "../../support/kube.ts";
import { APP_IMAGE, isReady, livePods, onRealNodes, useRealNodeNamespace } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";

const GATE = "healthgate.io/deep-check";

const condition = (pod: V1Pod, type: string) => pod.status?.conditions?.find((c) => c.type === type)?.status;
const tagOf = (pod: V1Pod) => pod.spec!.containers[0]!.image!.split(":").pop();

describe("readiness gates on the real kubelet", () => {
  const ns = useRealNodeNamespace(() => ({ "/readyz": {} }));

  it("hold a rolling update at the step boundary until the new pod is admitted", async () => {
    const { apps, core } = testClients();
    const admit = (pod: V1Pod) =>
      setPodCondition(ns.name, pod.metadata!.name!, { type: GATE, status: "True" });
    // Given three gated replicas of tag 1, admitted and Ready
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: makeDeployment(
        "web",
        withReplicas(3),
        onRealNodes("1"),
        withRollingUpdate({ maxSurge: 1, maxUnavailable: 0 }),
        withReadinessGate(GATE),
        withProbe("web", "readiness", { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 1 }),
      ),
    });
    await waitFor(
      async () => {
        const pods = await livePods(ns.name, "web");
        expect(pods.length).toBe(3);
        for (const pod of pods.filter((p) => condition(p, GATE) !== "True" && p.status?.podIP))
          await admit(pod);
        expect(pods.filter(isReady).length).toBe(3);
        return true;
      },
      { what: "three admitted Ready pods of tag 1", timeoutMs: 60_000, intervalMs: 500 },
    );

    // When the image changes to tag 2
    await apps.patchNamespacedDeployment({
      name: "web",
      namespace: ns.name,
      body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: `${APP_IMAGE}:2` }],
    });

    // Then one new pod runs with its containers ready by the kubelet's probe but the pod unready
    const first = await waitFor(
      async () => {
        const fresh = (await livePods(ns.name, "web")).filter((p) => tagOf(p) === "2");
        expect(fresh.length).toBe(1);
        expect(condition(fresh[0]!, "ContainersReady")).toBe("True");
        expect(condition(fresh[0]!, "Ready")).toBe("False");
        return fresh[0]!;
      },
      { what: "one new pod with ContainersReady=True and Ready=False", timeoutMs: 60_000, intervalMs: 250 },
    );
    // and the rollout holds there: three old pods Ready, one new pod, no second one
    await holdsFor(
      async () => {
        const pods = await livePods(ns.name, "web");
        expect(pods.filter((p) => tagOf(p) === "1" && isReady(p)).length).toBe(3);
        expect(pods.filter((p) => tagOf(p) === "2").map((p) => p.metadata?.name)).toEqual([
          first.metadata?.name,
        ]);
      },
      { forMs: 8_000, intervalMs: 500, what: "the rollout to hold at the first step" },
    );

    // When the new pod is admitted, the rollout moves on by one step: one old pod goes, a second new one comes
    await admit(first);
    await waitFor(
      async () => {
        const pods = await livePods(ns.name, "web");
        expect(pods.filter((p) => tagOf(p) === "1").length).toBe(2);
        expect(pods.filter((p) => tagOf(p) === "2").length).toBe(2);
        return true;
      },
      { what: "the rollout to take its next step", timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(isReady(await core.readNamespacedPod({ name: first.metadata!.name!, namespace: ns.name }))).toBe(
      true,
    );
  });
});
