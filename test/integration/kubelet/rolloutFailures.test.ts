// Gated rollouts on the real kubelet, the ways a revision fails without a deep check to answer,
// and capacity: a revision whose containers crash-loop, or whose image cannot be pulled, is
// aborted with no new pod Ready; a rolling update allowed to take serving pods below the floor is
// held with the number to change; an HPA-style scale-up mid-rollout adds stable pods that are
// never held and recomputes the step's budget.
import { beforeAll, describe, expect, it } from "vitest";
import { withRollingUpdate } from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { EXIT_CODE_ANNOTATION, isReady, livePods } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import { installCrd, useControllerHarness, waitForDeploymentCondition } from "../controller/support.ts";
import {
  app,
  gateOf,
  hash,
  readRecord,
  readyOf,
  setImage,
  stableAtTag1,
  waitForRecord,
} from "./rolloutSupport.ts";

beforeAll(() => installCrd());

const STEPS = [{ weight: 33, bake: "2m" }, { weight: 100 }];

describe("gated rollouts that fail or lack capacity (real kubelet)", () => {
  const hg = useControllerHarness({ app });

  const patchTemplate = (operations: object[]) =>
    testClients().apps.patchNamespacedDeployment({ name: "web", namespace: hg.namespace, body: operations });

  /** Waits for the abort with `reason`, asserting all along that no new pod is Ready. */
  async function expectAbortWithNoNewReadyPod(stable: string, reason: string) {
    const state = await waitFor(
      async () => {
        const pods = await livePods(hg.namespace, "web");
        expect(pods.filter((p) => hash(p) !== stable && isReady(p)).map((p) => p.metadata?.name)).toEqual([]);
        const s = await readRecord(hg.namespace);
        expect(s?.phase, JSON.stringify(s)).toBe("Aborted");
        return s!;
      },
      { what: `the rollout to abort (${reason})`, timeoutMs: 150_000, intervalMs: 250 },
    );
    expect(state.reason).toBe(reason);
    await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", { status: "False", reason });
  }

  it("a revision whose containers crash-loop is aborted", async () => {
    const stable = await stableAtTag1(hg, { steps: STEPS });
    await patchTemplate([
      { op: "add", path: "/spec/template/metadata/annotations", value: { [EXIT_CODE_ANNOTATION]: "1" } },
    ]);
    await expectAbortWithNoNewReadyPod(stable, "CrashLoop");
  });

  it("a revision whose image cannot be pulled is aborted", async () => {
    const stable = await stableAtTag1(hg, { steps: STEPS });
    await patchTemplate([
      {
        op: "replace",
        path: "/spec/template/spec/containers/0/image",
        value: "registry.invalid/healthgate/test-app:2",
      },
    ]);
    await expectAbortWithNoNewReadyPod(stable, "ImagePullFailed");
  });

  it("a new pod whose deep check flaps is never admitted and aborts the revision at newPodDeadline", async () => {
    const stable = await stableAtTag1(hg, { steps: STEPS, newPodDeadline: "30s" });
    await setImage(hg.namespace, "flap");
    // It passes every other check: never successThreshold (2) in a row, never failureLimit (3) failures in a row
    await expectAbortWithNoNewReadyPod(stable, "NewPodDeadlineExceeded");
    const state = await readRecord(hg.namespace);
    expect(state?.admitted ?? []).toEqual([]);
    expect(state?.message).toContain("newPodDeadline 30s");
  });

  it("a deep-check port closed on every pod holds as DeepCheckUnreachable, aborting nothing", async () => {
    // Nothing listens on 9999: new and stable pods alike refuse the connection
    const stable = await stableAtTag1(hg, { steps: STEPS, port: 9999 });
    await setImage(hg.namespace, "2");
    const held = await waitForRecord(
      hg.namespace,
      (s) => s.reason === "DeepCheckUnreachable",
      "the DeepCheckUnreachable hold",
    );
    expect(held.phase).toBe("Holding");
    await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", {
      status: "Unknown",
      reason: "DeepCheckUnreachable",
    });
    const pods = await livePods(hg.namespace, "web");
    expect(pods.filter((p) => hash(p) !== stable && isReady(p))).toEqual([]);
    expect(pods.filter((p) => hash(p) === stable && isReady(p)).length).toBe(3);
  });

  it("an unschedulable new pod holds the rollout (cluster capacity), it does not abort it", async () => {
    const stable = await stableAtTag1(hg, { steps: STEPS });
    await patchTemplate([
      { op: "add", path: "/spec/template/spec/nodeSelector", value: { "healthgate.io/no-such-node": "x" } },
    ]);
    const held = await waitForRecord(
      hg.namespace,
      (s) => s.reason === "Unschedulable",
      "the Unschedulable hold",
    );
    expect(held.phase).toBe("Holding");
    expect((await livePods(hg.namespace, "web")).filter((p) => hash(p) === stable && isReady(p)).length).toBe(
      3,
    );
  });

  it("a step the rolling update would take below the serving floor is held, naming the number to change", async () => {
    // 3 replicas, no spec.headroom: F = 2; maxUnavailable 2 lets the controller take 2 at once
    const stable = await stableAtTag1(
      hg,
      { steps: STEPS },
      withRollingUpdate({ maxSurge: 1, maxUnavailable: 2 }),
    );
    await setImage(hg.namespace, "2");
    const held = await waitForRecord(
      hg.namespace,
      (s) => s.reason === "ServingFloor",
      "the ServingFloor hold",
    );
    expect(held.message).toContain("set spec.strategy.rollingUpdate.maxUnavailable to 1");
    await holdsFor(
      async () => {
        const pods = await livePods(hg.namespace, "web");
        expect(pods.filter((p) => hash(p) !== stable && isReady(p)).length).toBe(0);
      },
      { forMs: 6_000, intervalMs: 500, what: "no new pod admitted while held" },
    );
  });

  it("an HPA-style scale-up mid-rollout adds stable pods that are never held and recomputes the budget", async () => {
    const stable = await stableAtTag1(hg, { steps: STEPS });
    await setImage(hg.namespace, "2");
    const baking = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Baking" && s.step === 0,
      "step 1 to bake",
    );
    expect(baking.budget).toBe(1);
    const revision = baking.revision!;
    // When the replicas go from 3 to 6 (what an HPA does)
    await testClients().apps.patchNamespacedDeploymentScale({
      name: "web",
      namespace: hg.namespace,
      body: [{ op: "replace", path: "/spec/replicas", value: 6 }],
    });
    // Then the budget is ceil(33% × 6) = 2, and two new pods are admitted
    await waitForRecord(
      hg.namespace,
      (s) => s.budget === 2 && (s.admitted?.length ?? 0) === 2,
      "budget 2, 2 admitted",
    );
    await waitFor(async () => expect((await readyOf(hg.namespace, revision)).length).toBe(2), {
      what: "two Ready new pods",
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    // and every stable pod, the ones the scale-up added included, is Ready with its gate open
    const pods = await livePods(hg.namespace, "web");
    const stablePods = pods.filter((p) => hash(p) === stable);
    for (const pod of stablePods) {
      expect(gateOf(pod)?.status, pod.metadata?.name).toBe("True");
    }
    await waitFor(
      async () => {
        const ready = (await livePods(hg.namespace, "web")).filter((p) => hash(p) === stable && isReady(p));
        expect(ready.length).toBe(stablePods.length);
        return true;
      },
      { what: "every stable pod Ready", timeoutMs: 30_000, intervalMs: 250 },
    );
  });
});
