// Rollouts gated on out-of-band deep checks, on the real kubelet: healthgate deep-checks each new
// pod (and a sample of stable pods) at the pod's own IP, and opens the pod's
// healthgate.io/deep-check readiness gate only as the step budget allows. The Deployment
// controller does the rolling update (maxSurge 1, maxUnavailable 0), so it halts where healthgate
// stops admitting. A revision's behaviour comes from its image tag. Every pod carries the gate
// (in the template), as the gate webhook would give new-revision pods: healthgate must open at
// once those it does not hold.
import { beforeAll, describe, expect, it } from "vitest";
import { makeService } from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { isReady, livePods } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import {
  installCrd,
  kubectl,
  makePolicy,
  readDeployment,
  useControllerHarness,
  waitForDeploymentCondition,
} from "../controller/support.ts";
import {
  DEEP,
  LATE_READY_MS,
  app,
  gateOf,
  hash,
  readRecord,
  readyOf,
  setImage,
  stableAtTag1,
  waitForRecord,
  web,
  withRollout,
} from "./rolloutSupport.ts";

beforeAll(() => installCrd());

describe("rollouts gated on deep checks (real kubelet)", () => {
  const hg = useControllerHarness({ app });

  it("a good revision walks every step in order, honouring bakes, and becomes stable", async () => {
    const stable = await stableAtTag1(hg, {
      steps: [{ weight: 33, bake: "12s" }, { weight: 66, bake: "12s" }, { weight: 100 }],
    });
    await setImage(hg.namespace, "2");

    // RolloutHealthy turns Unknown (NewRevision) on the new revision
    const seen = await waitForRecord(
      hg.namespace,
      (s) => s.revision !== stable,
      "the new revision to be seen",
    );
    const revision = seen.revision!;

    // Step 1 (33% of 3 = 1 pod) bakes with exactly one new pod Ready, however long it passes
    await waitForRecord(hg.namespace, (s) => s.phase === "Baking" && s.step === 0, "step 1 to bake");
    await holdsFor(
      async () => {
        expect((await readyOf(hg.namespace, revision)).length).toBe(1);
        expect((await readRecord(hg.namespace))?.step).toBe(0);
      },
      { forMs: 5_000, intervalMs: 500, what: "step 1 to hold at one Ready new pod while it bakes" },
    );
    // Step 2 (66%: 2 pods) bakes with two
    await waitForRecord(hg.namespace, (s) => s.phase === "Baking" && s.step === 1, "step 2 to bake");
    await holdsFor(
      async () => {
        expect((await readyOf(hg.namespace, revision)).length).toBe(2);
        expect((await readRecord(hg.namespace))?.step).toBe(1);
      },
      { forMs: 5_000, intervalMs: 500, what: "step 2 to hold at two Ready new pods while it bakes" },
    );
    // and the last step completes: the new revision is recorded as stable, RolloutHealthy True
    const done = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Completed" && s.stableRevision === revision,
      "the new revision to complete and become stable",
    );
    expect(done.admitted?.length).toBe(3);
    const deployment = await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", {
      status: "True",
      reason: "RolloutComplete",
    });
    expect(done.observedGeneration).toBe(deployment.metadata?.generation);
    expect((await readyOf(hg.namespace, revision)).length).toBe(3);
    // and the metrics say the same
    await waitFor(
      async () => {
        const text = await hg.operator.metrics.registry.metrics();
        expect(text).toContain(
          `healthgate_rollout_phase{namespace="${hg.namespace}",deployment="web",phase="Completed"} 1`,
        );
        expect(text).toContain(
          `healthgate_rollout_admitted_pods{namespace="${hg.namespace}",deployment="web"} 3`,
        );
        return true;
      },
      { what: "the rollout metrics", timeoutMs: 10_000, intervalMs: 250 },
    );
    // A restarted operator (no memory) resumes from the record and writes nothing
    await hg.expectSecondReconcileWritesNothing();
  });

  it("a revision applied before the first one was marked stable, while it serves, is gated against it", async () => {
    // Given healthgate seeing the first revision (tag "late": not Ready yet) and stopping before it
    // marks it stable
    await hg.createPolicy(makePolicy("web", withRollout({ steps: [{ weight: 33 }, { weight: 100 }] })));
    await hg.startOperator();
    await hg.apply(web("late"));
    const first = await waitForRecord(
      hg.namespace,
      (s) => s.revision !== undefined && s.stableRevision === undefined && s.reason === "FirstRevision",
      "the first revision to be seen, not yet stable",
    );
    await hg.stopOperator();
    // and its pods turning Ready meanwhile
    await waitFor(async () => (await readyOf(hg.namespace, first.revision!)).length === 3, {
      what: "the first revision's 3 pods to be Ready",
      timeoutMs: LATE_READY_MS + 60_000,
      intervalMs: 500,
    });

    // When a new revision (its deep check fails) is applied before healthgate looks again
    await setImage(hg.namespace, "broken");
    await hg.startOperator();

    // Then it is gated against the first (before: taken for a first revision, its pods admitted
    // unchecked), and aborted on its deep check; none of its pods is ever Ready
    let ready = 0;
    const aborted = await waitFor(
      async () => {
        const state = await readRecord(hg.namespace);
        const fresh = (await livePods(hg.namespace, "web")).filter((p) => hash(p) !== first.revision);
        ready = Math.max(ready, fresh.filter(isReady).length);
        expect(ready, "Ready pods of the new revision").toBe(0);
        expect(state?.phase, JSON.stringify(state)).toBe("Aborted");
        return state!;
      },
      { what: "the new revision to be gated and aborted", timeoutMs: 90_000, intervalMs: 250 },
    );
    expect(aborted).toMatchObject({ stableRevision: first.revision, reason: "DeepCheckFailed" });
    expect(aborted.revision).not.toBe(first.revision);
  });

  it("a bad revision never has more Ready new pods than the first step allows; the abort takes its admitted pod out of the Service", async () => {
    await hg.apply(makeService("web"));
    const stable = await stableAtTag1(hg, { steps: [{ weight: 33, bake: "2m" }, { weight: 100 }] });
    await setImage(hg.namespace, "bad");
    const seen = await waitForRecord(
      hg.namespace,
      (s) => s.revision !== stable,
      "the new revision to be seen",
    );
    const revision = seen.revision!;

    // The bad revision passes at first, so one new pod is admitted (the step's budget) ...
    let mostReady = 0;
    const aborted = await waitFor(
      async () => {
        mostReady = Math.max(mostReady, (await readyOf(hg.namespace, revision)).length);
        expect(mostReady, "Ready new pods").toBeLessThanOrEqual(1);
        const state = await readRecord(hg.namespace);
        expect(state?.phase).toBe("Aborted");
        return state!;
      },
      { what: "the bad revision to be aborted", timeoutMs: 120_000, intervalMs: 250 },
    );
    expect(mostReady, "the first step admitted one new pod").toBe(1);
    // ... then fails its deep check while the stable pods pass: aborted, its gate closed
    expect(aborted.reason).toBe("DeepCheckFailed");
    expect(aborted.admitted?.length).toBe(1);
    const admitted = aborted.admitted![0]!;
    expect(aborted.dropped).toEqual([admitted]);
    const condition = await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", {
      status: "False",
      reason: "DeepCheckFailed",
    });
    expect(JSON.stringify(condition.status?.conditions)).toContain(admitted);
    // and the pod leaves the Service: its endpoint is not ready
    await waitFor(
      async () => {
        const slices = await testClients().discovery.listNamespacedEndpointSlice({
          namespace: hg.namespace,
          labelSelector: "kubernetes.io/service-name=web",
        });
        const endpoint = slices.items
          .flatMap((s) => s.endpoints ?? [])
          .find((e) => e.targetRef?.name === admitted);
        expect(endpoint, `endpoint of ${admitted}`).toBeDefined();
        expect(endpoint?.conditions?.ready).toBe(false);
        return true;
      },
      { what: `${admitted}'s endpoint to be not ready`, timeoutMs: 30_000, intervalMs: 250 },
    );
    // Nothing more is admitted: no new pod turns Ready afterwards
    await holdsFor(async () => expect((await readyOf(hg.namespace, revision)).length).toBe(0), {
      forMs: 6_000,
      intervalMs: 500,
      what: "no new pod to be Ready after the abort",
    });
    expect((await livePods(hg.namespace, "web")).filter((p) => hash(p) === stable && isReady(p)).length).toBe(
      2,
    );
  });

  it("the CI recipe (observed generation, then RolloutHealthy) never returns on the previous rollout's True", async () => {
    // Given a completed rollout: RolloutHealthy True
    await stableAtTag1(hg, { steps: [{ weight: 33, bake: "2m" }, { weight: 100 }] });
    await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", { status: "True" });
    // When a bad revision is applied while healthgate is not running (as slow as it gets)
    await hg.stopOperator();
    await setImage(hg.namespace, "bad");
    const { generation } = (await readDeployment(hg.namespace, "web")).metadata!;
    // and CI waits as docs/rollouts.md says: first the record's observed generation ...
    const waited = kubectl([
      "wait",
      "-n",
      hg.namespace,
      "htgt/web",
      `--for=jsonpath={.status.rollout.observedGeneration}=${generation}`,
      "--timeout=120s",
    ]).then(() =>
      kubectl([
        "get",
        "-n",
        hg.namespace,
        "deploy/web",
        "-o",
        `jsonpath={.status.conditions[?(@.type=="healthgate.io/RolloutHealthy")].status}`,
      ]),
    );
    await hg.startOperator();
    // Then RolloutHealthy, read the moment the generation is observed, is no longer the old True
    expect(["Unknown", "False"]).toContain(await waited);
    // and the bad revision ends False
    await waitForDeploymentCondition(
      hg.namespace,
      "web",
      "RolloutHealthy",
      { status: "False", reason: "DeepCheckFailed" },
      120_000,
    );
  });

  it("a shared-dependency outage (stable pods fail too) holds as DependencyDegraded, then the rollout continues", async () => {
    const stable = await stableAtTag1(hg, { steps: [{ weight: 33, bake: "20s" }, { weight: 100 }] });
    await setImage(hg.namespace, "2");
    await waitForRecord(hg.namespace, (s) => s.phase === "Baking" && s.step === 0, "step 1 to bake");
    // When the deep path fails on every pod, old and new
    const pods = await livePods(hg.namespace, "web");
    for (const pod of pods) hg.apps.set(pod.metadata!.name!, DEEP, { status: 503 });
    // Then healthgate holds as DependencyDegraded: nothing aborted, no stable pod touched
    await waitForRecord(hg.namespace, (s) => s.reason === "DependencyDegraded", "DependencyDegraded", 60_000);
    await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", {
      status: "Unknown",
      reason: "DependencyDegraded",
    });
    const degraded = await readRecord(hg.namespace);
    expect(degraded?.phase).toBe("Inconclusive");
    for (const pod of await livePods(hg.namespace, "web")) {
      expect(gateOf(pod)?.status, `${pod.metadata?.name}: no gate closed`).not.toBe("False");
      if (hash(pod) === stable) {
        expect(gateOf(pod)?.status, pod.metadata?.name).toBe("True");
        expect(isReady(pod), pod.metadata?.name).toBe(true);
      }
    }
    expect(degraded?.admitted?.length, "still the first step's one admitted pod").toBe(1);
    // When the dependency recovers, the rollout continues and completes
    for (const pod of pods) hg.apps.set(pod.metadata!.name!, DEEP, undefined);
    await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Completed" && s.stableRevision !== stable,
      "the rollout to complete after the recovery",
      120_000,
    );
  });
});
