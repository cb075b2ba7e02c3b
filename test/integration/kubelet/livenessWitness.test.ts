// The runtime proof that liveness is shallow, on the real kubelet. Two Deployments whose liveness
// probes both point at /healthz (a path no linter calls deep), under policies with the background
// deep check on. In "coupled" /healthz checks the dependency (it answers 503 while the dependency
// is down); in "decoupled" it does not. A dependency outage (every pod's /health/deep answers 503):
// the kubelet restarts coupled's pods on liveness, and healthgate reports LivenessShallow=False,
// reason DeepInPractice, with the pods, restarts and times; decoupled's liveness holds and its
// condition stays Shallow, though healthgate saw the same outage there.
import { beforeAll, describe, expect, it } from "vitest";
import type { V1Deployment } from "@kubernetes/client-node";
import { makeDeployment, withProbe, withReplicas, type Modifier } from "../../support/builders.ts";
import { livePods, onRealNodes, restarts, waitForReadyPods } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import {
  deploymentCondition,
  installCrd,
  makePolicy,
  readDeployment,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
  waitForPolicyCondition,
} from "../controller/support.ts";

beforeAll(() => installCrd());

const DEEP = "/health/deep";

/**
 * Liveness every 2 s, restarting after 2 failures (a 2 s timeout: a busy test machine does not
 * fail it by itself); readiness on /readyz (never touched here).
 */
const probes = (container: string): Modifier<V1Deployment>[] => [
  withProbe(container, "liveness", {
    httpGet: { path: "/healthz", port: "http" },
    periodSeconds: 2,
    timeoutSeconds: 2,
    failureThreshold: 2,
  }),
  withProbe(container, "readiness", { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 1 }),
];

const app = (name: string) => makeDeployment(name, withReplicas(3), onRealNodes(), ...probes(name));

/** Audit policy with a deep check and the background check every 2 s (2 failures to count). */
const policy = (name: string) =>
  makePolicy(name, (p) => {
    p.spec.rollout = {
      steps: [{ weight: 100 }],
      deepCheck: {
        path: DEEP,
        intervalSeconds: 2,
        timeoutSeconds: 1,
        background: { intervalSeconds: 2, sample: 2, failureThreshold: 2 },
      },
    };
  });

describe("liveness deep in practice, seen at runtime", () => {
  const hg = useControllerHarness({ app: () => ({ "/healthz": {}, "/readyz": {}, [DEEP]: {} }) });

  it("a dependency outage during which liveness restarts pods yields DeepInPractice; one it holds through does not", async () => {
    // Given two Deployments with liveness on /healthz under policies with the background deep check
    for (const name of ["coupled", "decoupled"]) await hg.createPolicy(policy(name));
    await hg.startOperator();
    for (const name of ["coupled", "decoupled"]) await hg.apply(app(name));
    const coupled = await waitForReadyPods(hg.namespace, "coupled", 3, 90_000);
    await waitForReadyPods(hg.namespace, "decoupled", 3, 90_000);
    for (const name of ["coupled", "decoupled"]) {
      await waitForDeploymentCondition(hg.namespace, name, "LivenessShallow", {
        status: "True",
        reason: "Shallow",
      });
    }
    // and the background check deep-checks two pods of each
    const sampled = await waitFor(
      () => {
        const names = hg.operator.liveness.sampled(hg.namespace, "decoupled");
        expect(names.length).toBe(2);
        for (const pod of names) expect(hg.apps.hits(pod, DEEP), `${pod} deep-checked`).toBeGreaterThan(0);
        return names;
      },
      { what: "the background check to deep-check two pods of decoupled", timeoutMs: 30_000 },
    );

    // When the shared dependency goes down: every deep endpoint fails, and coupled's /healthz with it
    hg.apps.set("*", DEEP, { status: 503 });
    for (const pod of coupled) hg.apps.set(pod.metadata!.name!, "/healthz", { status: 503 });

    // Then the kubelet restarts coupled's pods on liveness
    await waitFor(
      async () => {
        const pods = await livePods(hg.namespace, "coupled");
        expect(pods.some((p) => restarts(p) > 0)).toBe(true);
        return true;
      },
      { what: "a coupled pod to be restarted by its liveness probe", timeoutMs: 60_000, intervalMs: 500 },
    );
    // and healthgate reports liveness deep in practice, with the evidence, on the Deployment and the policy
    const want = {
      status: "False" as const,
      reason: "DeepInPractice",
      message: ["liveness is deep in practice", "liveness failure", "restart"],
    };
    const found = await waitForDeploymentCondition(hg.namespace, "coupled", "LivenessShallow", want, 90_000);
    const message = deploymentCondition(found, "LivenessShallow")?.message ?? "";
    const sampledCoupled = hg.operator.liveness.sampled(hg.namespace, "coupled");
    expect(
      sampledCoupled.some((pod) => message.includes(`pod ${pod}:`)),
      message,
    ).toBe(true);
    await waitForPolicyCondition(hg.namespace, "coupled", "LivenessShallow", want, 60_000);
    await waitForEvent(hg.namespace, { type: "Warning", reason: "DeepInPractice", regardingName: "coupled" });

    // and decoupled, whose liveness holds through the same outage, stays Shallow
    await waitFor(
      () => {
        expect(hg.operator.liveness.stateOf(hg.namespace, "decoupled")?.outage?.pods).toEqual(sampled);
        return true;
      },
      { what: "healthgate to see the outage on decoupled's sampled pods", timeoutMs: 30_000 },
    );
    await holdsFor(
      async () => {
        const d = await readDeployment(hg.namespace, "decoupled");
        const c = deploymentCondition(d, "LivenessShallow");
        expect(c, c?.message).toMatchObject({ status: "True", reason: "Shallow" });
        for (const pod of await livePods(hg.namespace, "decoupled")) expect(restarts(pod)).toBe(0);
      },
      { forMs: 8_000, intervalMs: 1_000, what: "decoupled to stay Shallow without restarts" },
    );

    // When the dependency recovers, the outage ends: decoupled's is recorded as one liveness held
    // through; coupled's finding stays (it is about the probe, not the moment)
    hg.apps.set("*", DEEP, undefined);
    for (const pod of coupled) hg.apps.set(pod.metadata!.name!, "/healthz", undefined);
    await waitFor(
      () => {
        const state = hg.operator.liveness.stateOf(hg.namespace, "decoupled");
        expect(state?.outage).toBeUndefined();
        expect(state?.held?.deepFailing).toEqual(sampled);
        return true;
      },
      { what: "decoupled's outage to end with liveness held", timeoutMs: 60_000 },
    );
    expect(
      deploymentCondition(await readDeployment(hg.namespace, "coupled"), "LivenessShallow"),
    ).toMatchObject({ status: "False", reason: "DeepInPractice" });
    expect(
      deploymentCondition(await readDeployment(hg.namespace, "decoupled"), "LivenessShallow"),
    ).toMatchObject({ status: "True", reason: "Shallow" });
  });
});
