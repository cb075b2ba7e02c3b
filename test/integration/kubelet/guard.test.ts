// The correlated-failure guard on the real kubelet: readiness is the kubelet's own verdict from
// probing each pod's IP, and a test fails a pod by making its /readyz answer 500. Many pods going
// unready together (60 %), or a whole zone, raise CorrelatedFailure; one pod does not; a gated
// rollout's new pods held by their gate are not failures, and the rollout holds while it lasts; a
// pod toggled faster than the flap rate is reported, less often on each repeat.
import { beforeAll, describe, expect, it } from "vitest";
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import {
  makeDeployment,
  withProbe,
  withReplicas,
  withRollingUpdate,
  type Modifier,
} from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { isReady, livePods, onRealNodes, waitForReadyPods } from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  installCrd,
  listEvents,
  makePolicy,
  readDeployment,
  readPolicy,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
  waitForPolicyCondition,
  waitUntilIdle,
  deploymentCondition,
  type ControllerHarness,
  type HealthPolicyObject,
} from "../controller/support.ts";
import {
  app as rolloutApp,
  gateOf,
  hash,
  setImage,
  waitForRecord,
  web as rolloutWeb,
  withRollout,
} from "./rolloutSupport.ts";

beforeAll(() => installCrd());

const TYPE = "CorrelatedFailure";

/** Readiness dialled every second; one failure ejects, one success readmits (so a test flips it in seconds). */
const fastReadiness = withProbe("web", "readiness", {
  httpGet: { path: "/readyz", port: "http" },
  periodSeconds: 1,
  timeoutSeconds: 1,
  failureThreshold: 1,
  successThreshold: 1,
});

const web = (replicas: number, ...modifiers: Modifier<V1Deployment>[]) =>
  makeDeployment("web", withReplicas(replicas), onRealNodes(), fastReadiness, ...modifiers);

const guardPolicy = (guardrails: NonNullable<HealthPolicyObject["spec"]["guardrails"]> = {}) =>
  makePolicy("web", (p) => {
    p.spec.guardrails = { clearAfterSeconds: 5, ...guardrails };
  });

/** The operator has seen everything so far and gone quiet; then the condition is read. */
async function settledCondition(hg: ControllerHarness) {
  await waitUntilIdle(hg.operator, 1);
  return deploymentCondition(await readDeployment(hg.namespace, "web"), TYPE);
}

const condition = (pod: V1Pod, type: string) => pod.status?.conditions?.find((c) => c.type === type)?.status;
const names = (pods: readonly V1Pod[]) => pods.map((p) => p.metadata!.name!);

describe("the correlated-failure guard on the real kubelet", () => {
  const hg = useControllerHarness({ app: () => ({ "/readyz": {}, "/healthz": {} }) });

  /** Makes the pods' /readyz answer 500 (or 200 again) and waits for the kubelet to say so. */
  async function setReady(pods: readonly string[], ready: boolean) {
    for (const pod of pods) hg.apps.set(pod, "/readyz", ready ? undefined : { status: 500 });
    await waitFor(
      async () => {
        const live = await livePods(hg.namespace, "web");
        for (const name of pods) {
          const pod = live.find((p) => p.metadata?.name === name);
          expect(pod && isReady(pod), `${name} Ready`).toBe(ready);
        }
        return true;
      },
      {
        what: `pods ${pods.join(", ")} to be ${ready ? "Ready" : "unready"}`,
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
  }

  async function gauge(): Promise<number | undefined> {
    const metric = await hg.operator.metrics.registry.getSingleMetric("healthgate_correlated_failure")?.get();
    return metric?.values.find((v) => v.labels.deployment === "web")?.value;
  }

  it("one pod unready is not a correlated failure; 60 % at once is, with an Event and the metric, and it clears", async () => {
    // Given five Ready pods governed by a policy, and healthgate running
    await hg.createPolicy(guardPolicy());
    await hg.apply(web(5));
    const pods = names(await waitForReadyPods(hg.namespace, "web", 5));
    await hg.startOperator();
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, {
      status: "False",
      reason: "NoCorrelatedFailure",
    });

    // When one pod goes unready
    await setReady(pods.slice(0, 1), false);
    // Then nothing is raised
    expect((await settledCondition(hg))?.status).toBe("False");
    expect(await gauge()).toBe(0);
    await setReady(pods.slice(0, 1), true);

    // When three of the five go unready at once
    await setReady(pods.slice(1, 4), false);
    // Then the Deployment and the policy report it, with the fraction and the window
    const want = {
      status: "True" as const,
      reason: "ManyPodsUnready",
      message: ["3 of 5 serving pods (60%) went unready within 30s", "no capacity-shrinking action"],
    };
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, want);
    const policy = await waitForPolicyCondition(hg.namespace, "web", TYPE, want);
    expect(policy.status?.targets?.[0]?.guard?.correlatedFailure).toEqual(
      expect.objectContaining({ unreadyPods: 3, servingPods: 5, windowSeconds: 30 }),
    );
    // (the Event goes out with the flip: the kubelet may eject a zone's two pods a probe before the third)
    await waitForEvent(hg.namespace, {
      type: "Warning",
      regardingKind: "Deployment",
      noteContains: "CorrelatedFailure=True: since",
    });
    expect(await gauge()).toBe(1);

    // When they recover, it clears (after clearAfterSeconds below the threshold), with a Normal Event
    await setReady(pods.slice(1, 4), true);
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, { status: "False" });
    await waitForEvent(hg.namespace, {
      type: "Normal",
      reason: "NoCorrelatedFailure",
      regardingKind: "Deployment",
      noteContains: "correlated failure over",
    });
    expect(await gauge()).toBe(0);
  });

  it("every pod of a zone going unready is named, though it is only a third of the pods", async () => {
    // Given six pods spread two per zone
    await hg.createPolicy(guardPolicy());
    await hg.apply(
      web(6, (d) => {
        d.spec!.template.spec!.topologySpreadConstraints = [
          {
            maxSkew: 1,
            topologyKey: "topology.kubernetes.io/zone",
            whenUnsatisfiable: "DoNotSchedule",
            labelSelector: { matchLabels: { app: "web" } },
          },
        ];
      }),
    );
    const ready = await waitForReadyPods(hg.namespace, "web", 6, 90_000);
    await hg.startOperator();
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, { status: "False" });
    const zones = Object.fromEntries(
      (await testClients().core.listNode()).items.map((n) => [
        n.metadata!.name!,
        n.metadata?.labels?.["topology.kubernetes.io/zone"],
      ]),
    );
    const zone = zones[ready[0]!.spec!.nodeName!]!;
    const inZone = ready.filter((p) => zones[p.spec!.nodeName!] === zone);
    expect(inZone.length, `pods in ${zone}`).toBe(2);

    // When both pods of that zone go unready
    await setReady(names(inZone), false);

    // Then CorrelatedFailure names the zone
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, {
      status: "True",
      reason: "ZoneUnready",
      message: `every pod of zone ${zone} (2) went unready within 30s`,
    });
    // (the policy's status follows the Deployment's condition: its reconcile is paced)
    await waitFor(
      async () => {
        const policy = await readPolicy(hg.namespace, "web");
        expect(policy.status?.targets?.[0]?.guard?.correlatedFailure?.zone).toBe(zone);
        return true;
      },
      { what: `the policy's status to name zone ${zone}` },
    );
  });

  it("a pod toggled faster than the flap rate is reported, and less often on each repeat", async () => {
    // Given a policy that calls more than 4 readiness changes a minute flapping, reported again after 5 s, 10 s, 20 s…
    await hg.createPolicy(
      guardPolicy({
        flapping: {
          maxTransitions: 4,
          windowSeconds: 60,
          reportBackoffSeconds: 5,
          maxReportBackoffSeconds: 3600,
        },
      }),
    );
    await hg.apply(web(3));
    const pods = names(await waitForReadyPods(hg.namespace, "web", 3));
    await hg.startOperator();
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, { status: "False" });

    // When one pod's readiness toggles every 3 s
    const flappy = pods[0]!;
    hg.apps.set(flappy, "/readyz", () => ({ status: Math.floor(Date.now() / 3_000) % 2 === 0 ? 500 : 200 }));

    // Then it is reported three times, each report announcing twice the wait of the one before
    const reports = await waitFor(
      async () => {
        const found = (await listEvents(hg.namespace)).filter((e) => e.reason === "ReadinessFlapping");
        expect(found.length, found.map((e) => e.note).join("\n")).toBeGreaterThanOrEqual(3);
        return found;
      },
      { what: `three ReadinessFlapping Events for ${flappy}`, timeoutMs: 120_000, intervalMs: 1_000 },
    );
    hg.apps.set(flappy, "/readyz", undefined);
    const announced = reports
      .map((e) => /report (\d+), the next no sooner than (\d+)s from now/.exec(e.note))
      .map((m) => [Number(m?.[1]), Number(m?.[2])])
      .sort((a, b) => a[0]! - b[0]!);
    expect(announced.slice(0, 3)).toEqual([
      [1, 5],
      [2, 10],
      [3, 20],
    ]);
    for (const e of reports) {
      expect(e.note).toContain(`pod ${flappy} changed readiness`);
      expect(e.type).toBe("Warning");
      expect(e.regardingKind).toBe("Deployment");
    }
    // and it is listed in the policy's status, and counted
    await waitFor(
      async () => {
        const policy = await readPolicy(hg.namespace, "web");
        expect(policy.status?.targets?.[0]?.guard?.flapping?.map((f) => f.pod)).toEqual([flappy]);
        return true;
      },
      { what: `the policy's status to list ${flappy} as flapping` },
    );
    const counted = await hg.operator.metrics.registry
      .getSingleMetric("healthgate_readiness_flap_reports_total")
      ?.get();
    expect(counted?.values.reduce((sum, v) => sum + v.value, 0)).toBeGreaterThanOrEqual(3);
    // and the other pods are not reported, and one flapping pod is no correlated failure
    expect(reports.every((e) => e.note.includes(flappy))).toBe(true);
    expect(deploymentCondition(await readDeployment(hg.namespace, "web"), TYPE)?.status).toBe("False");
  });
});

describe("the guard and a gated rollout on the real kubelet", () => {
  const hg = useControllerHarness({ app: rolloutApp });

  it("new pods held by their gate are not counted; 75 % of the serving pods going unready raises it and holds the rollout mid-step, no gate dropped", async () => {
    // Given a gated rollout of 4 replicas, stable at tag 1
    await hg.createPolicy(
      makePolicy("web", withRollout({ steps: [{ weight: 50, bake: "10m" }, { weight: 100 }] }), (p) => {
        p.spec.guardrails = { clearAfterSeconds: 5 };
      }),
    );
    await hg.startOperator();
    await hg.apply(rolloutWeb("1", withReplicas(4), withRollingUpdate({ maxSurge: 2, maxUnavailable: 0 })));
    await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Completed" && s.stableRevision !== undefined,
      "tag 1 stable",
    );

    // When tag 2 rolls out: two new pods admitted (50 % of 4), baking; two more held by their gate
    await setImage(hg.namespace, "2");
    const baking = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Baking" && (s.admitted?.length ?? 0) === 2,
      "the first step to fill and bake",
    );
    const held = await waitFor(
      async () => {
        const fresh = (await livePods(hg.namespace, "web")).filter((p) => hash(p) === baking.revision);
        const waiting = fresh.filter(
          (p) => gateOf(p)?.status !== "True" && condition(p, "ContainersReady") === "True" && !isReady(p),
        );
        expect(waiting.length).toBe(2);
        return waiting;
      },
      { what: "two new pods held by their gate", timeoutMs: 60_000, intervalMs: 250 },
    );
    // Then held pods are no correlated failure
    expect((await settledCondition(hg))?.status).toBe("False");

    // When three of the four serving pods (old and admitted new) go unready
    const serving = (await livePods(hg.namespace, "web")).filter(isReady);
    expect(serving.length).toBe(4);
    const failing = names(serving.slice(0, 3));
    for (const pod of failing) hg.apps.set(pod, "/readyz", { status: 500 });

    // Then it is raised, counting only the serving pods
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, {
      status: "True",
      reason: "ManyPodsUnready",
      message: ["3 of 4 serving pods (75%)", "not counted: 2 held by their deep-check gate"],
    });
    // and the rollout holds mid-step, saying why, with every admitted gate still True
    const holding = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Holding" && s.reason === "CorrelatedFailure",
      "the rollout to hold on the correlated failure",
    );
    expect(holding.step).toBe(0);
    expect([...(holding.admitted ?? [])].sort()).toEqual([...(baking.admitted ?? [])].sort());
    await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", {
      status: "Unknown",
      reason: "CorrelatedFailure",
    });
    const now = await livePods(hg.namespace, "web");
    for (const name of baking.admitted ?? []) {
      const pod = now.find((p) => p.metadata?.name === name);
      expect(pod && gateOf(pod)?.status, `gate of admitted pod ${name}`).toBe("True");
    }
    for (const pod of held) {
      const live = now.find((p) => p.metadata?.name === pod.metadata?.name);
      expect(live && gateOf(live)?.status, `gate of held pod ${pod.metadata?.name}`).not.toBe("True");
    }
    for (const pod of failing) hg.apps.set(pod, "/readyz", undefined);
  });
});
