// The Deployment fields a gated rollout depends on, on the real kubelet and the real Deployment
// controller: under Enforce, healthgate's released decision lowers maxUnavailable (the controller
// would take that many old pods out of service before anything is admitted) and raises
// progressDeadlineSeconds (the controller counts no progress during a bake); in Audit the same
// bake shows as ProgressDeadlineExceeded and healthgate says BakeExceedsProgressDeadline. And an
// abort during the last step, with maxUnavailable 0, never takes serving pods below the floor F,
// sampled continuously (every Ready, not terminating pod of the Deployment counts).
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/devcluster/podApps.ts";
import { imageTag } from "../../../src/devcluster/podApps.ts";
import { withRollingUpdate, type Modifier } from "../../support/builders.ts";
import { isReady, livePods } from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";
import { installCrd, readDeployment, readPolicy, useControllerHarness } from "../controller/support.ts";
import { readReleased } from "../controller/admission.ts";
import {
  DEEP,
  app,
  hash,
  readRecord,
  setImage,
  stableAtTag1,
  waitForRecord,
  web,
  withRollout,
} from "./rolloutSupport.ts";
import { fastEnforcePolicy } from "./support.ts";

beforeAll(() => installCrd());

/** Tag "late": the deep check passes until the test turns `lateFails` on. */
let lateFails = false;
const lateApp = (pod: V1Pod): App =>
  imageTag(pod) === "late" ? { ...app(pod), [DEEP]: () => (lateFails ? { status: 500 } : {}) } : app(pod);

const withDeadline =
  (seconds: number): Modifier<V1Deployment> =>
  (d) => {
    d.spec!.progressDeadlineSeconds = seconds;
  };

/** The Deployment's Progressing condition reason. */
const progressing = (d: V1Deployment) => d.status?.conditions?.find((c) => c.type === "Progressing")?.reason;

/**
 * Samples, until stopped, the Deployment's serving pods (Ready, not terminating) and its
 * Progressing reason, as fast as the API server answers (at least every 200 ms).
 */
function sampler(namespace: string) {
  let running = true;
  const serving: number[] = [];
  const reasons = new Set<string>();
  const loop = (async () => {
    while (running) {
      const [pods, d] = await Promise.all([livePods(namespace, "web"), readDeployment(namespace, "web")]);
      serving.push(pods.filter(isReady).length);
      const reason = progressing(d);
      if (reason) reasons.add(reason);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    serving,
    reasons,
    async stop() {
      running = false;
      await loop;
    },
  };
}

describe("the rollout's Deployment fields (real kubelet)", () => {
  const hg = useControllerHarness({ app: lateApp });

  it("Enforce lowers maxUnavailable and raises progressDeadlineSeconds through the release: a bake longer than the user's deadline shows no ProgressDeadlineExceeded, and serving pods stay at or above F", async () => {
    // Given an Enforce policy with a 20 s bake, and the user's Deployment with maxUnavailable 2 of
    // 3 (F = N − 1 = 2: the controller would start the rollout at 1 serving pod) and a 10 s deadline
    await hg.createPolicy(
      fastEnforcePolicy("web", withRollout({ steps: [{ weight: 33, bake: "20s" }, { weight: 100 }] })),
    );
    await hg.startOperator();
    const manifest = (tag: string) =>
      web(tag, withRollingUpdate({ maxSurge: 1, maxUnavailable: 2 }), withDeadline(10));
    await hg.apply(manifest("1"));

    // Then the release writes the decision's strategy into the Deployment: maxUnavailable 1, deadline 20 + 600
    await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(d.spec?.strategy?.rollingUpdate?.maxUnavailable).toBe(1);
        expect(d.spec?.strategy?.rollingUpdate?.maxSurge).toBe(1);
        expect(d.spec?.progressDeadlineSeconds).toBe(620);
        return d;
      },
      { what: "the release to lower maxUnavailable and raise progressDeadlineSeconds", timeoutMs: 60_000 },
    );
    expect((await readReleased(hg.namespace, "web"))?.strategy).toEqual({
      maxUnavailable: 1,
      progressDeadlineSeconds: 620,
      longestBakeSeconds: 20,
    });
    // and the revision the release rolled out becomes stable
    const stable = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Completed" && s.stableRevision !== undefined,
      "the released revision to complete and be recorded as stable",
      150_000,
    );
    await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        const pods = await livePods(hg.namespace, "web");
        expect(pods.length).toBe(3);
        expect(pods.every((p) => hash(p) === stable.stableRevision && isReady(p))).toBe(true);
        expect(d.status?.updatedReplicas).toBe(3);
        return d;
      },
      { what: "every pod on the stable revision and Ready", timeoutMs: 90_000 },
    );

    // When the user applies their manifest again with a new image, their maxUnavailable and deadline included
    const samples = sampler(hg.namespace);
    try {
      const written = await hg.apply(manifest("2"));
      // Then admission lowers and raises them again on that very write (nothing refused)
      expect(written.spec?.strategy?.rollingUpdate?.maxUnavailable).toBe(1);
      expect(written.spec?.progressDeadlineSeconds).toBe(620);
      // and the gated rollout bakes 20 s at step 1, then completes
      await waitForRecord(
        hg.namespace,
        (s) => s.phase === "Baking" && s.step === 0,
        "step 1 to bake",
        90_000,
      );
      // and while it bakes the policy's status counts the pods deep-checked, new against stable
      await waitFor(
        async () => {
          const policy = await readPolicy(hg.namespace, "web");
          const checks = policy.status?.targets?.find((t) => t.name === "web")?.rollout?.deepChecks;
          expect(checks?.canary.passing, JSON.stringify(checks)).toBeGreaterThanOrEqual(1);
          // (the stable sample is the old pods still Ready: maxUnavailable 1 leaves one or two)
          expect(checks?.stable.passing, JSON.stringify(checks)).toBeGreaterThanOrEqual(1);
          expect(checks?.canary.failing).toBe(0);
          expect(checks?.canary.unchecked).toBe(0);
          return checks;
        },
        { what: "the policy status's deepChecks counts during the bake", timeoutMs: 15_000, intervalMs: 250 },
      );
      const done = await waitForRecord(
        hg.namespace,
        (s) => s.phase === "Completed" && s.stableRevision !== stable.stableRevision,
        "the new revision to complete",
        150_000,
      );
      expect(done.message).not.toContain("BakeExceedsProgressDeadline");
    } finally {
      await samples.stop();
    }
    // with no ProgressDeadlineExceeded at any sample, and serving pods never below F
    expect([...samples.reasons]).not.toContain("ProgressDeadlineExceeded");
    expect(samples.serving.length).toBeGreaterThan(50);
    expect(
      Math.min(...samples.serving),
      `serving pods sampled: ${samples.serving.join(",")}`,
    ).toBeGreaterThanOrEqual(2);
    expect(progressing(await readDeployment(hg.namespace, "web"))).toBe("NewReplicaSetAvailable");
  });

  it("Audit changes neither field: the same bake shows as ProgressDeadlineExceeded, and healthgate says BakeExceedsProgressDeadline", async () => {
    await stableAtTag1(hg, { steps: [{ weight: 33, bake: "30s" }, { weight: 100 }] }, withDeadline(10));
    await setImage(hg.namespace, "2");
    const baking = await waitForRecord(hg.namespace, (s) => s.phase === "Baking", "step 1 to bake", 90_000);
    expect(baking.message).toContain("BakeExceedsProgressDeadline");
    expect(baking.message).toContain("set spec.progressDeadlineSeconds above 30");
    await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(progressing(d)).toBe("ProgressDeadlineExceeded");
        expect(d.spec?.progressDeadlineSeconds).toBe(10);
        return d;
      },
      { what: "the Deployment to report ProgressDeadlineExceeded during the bake", timeoutMs: 60_000 },
    );
  });

  it("an abort during the last step with maxUnavailable 0 never takes serving pods below F", async () => {
    // Given a stable revision and a rollout whose last step bakes (so it can fail there)
    lateFails = false;
    await stableAtTag1(hg, {
      steps: [
        { weight: 33, bake: "6s" },
        { weight: 100, bake: "2m" },
      ],
    });
    const samples = sampler(hg.namespace);
    let aborted;
    try {
      // When a revision passes its first step, and its deep check fails once the last step began
      await setImage(hg.namespace, "late");
      await waitForRecord(
        hg.namespace,
        (s) => s.step === 1 && s.phase !== "Aborted",
        "the last step",
        120_000,
      );
      lateFails = true;
      // Then it is aborted during the last step
      aborted = await waitForRecord(hg.namespace, (s) => s.phase === "Aborted", "the abort", 90_000);
      // and serving pods stay at or above F after the abort, too
      await new Promise((r) => setTimeout(r, 10_000));
    } finally {
      await samples.stop();
      lateFails = false;
    }
    expect(aborted.step, JSON.stringify(aborted)).toBe(1);
    expect(aborted.reason).toBe("DeepCheckFailed");
    expect(aborted.floor).toBe(2);
    const admitted = aborted.admitted ?? [];
    // (one or two new pods were admitted when the checks began failing: it depends on how far the
    // last step had come; either way old pods still served, so the abort had a floor to keep)
    expect(admitted.length, JSON.stringify(aborted)).toBeGreaterThanOrEqual(1);
    expect([...(aborted.dropped ?? []), ...(aborted.kept ?? [])].sort()).toEqual([...admitted].sort());
    expect(samples.serving.length).toBeGreaterThan(50);
    expect(
      Math.min(...samples.serving),
      `serving pods sampled: ${samples.serving.join(",")}`,
    ).toBeGreaterThanOrEqual(2);
    const state = await readRecord(hg.namespace);
    expect(state?.phase).toBe("Aborted");
  });
});
