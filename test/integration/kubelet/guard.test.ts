// The correlated-failure guard on the real kubelet: readiness is the kubelet's own verdict from
// probing each pod's IP, and a test fails a pod by making its /readyz answer 500. Many pods going
// unready together (60 %), or a whole zone, raise CorrelatedFailure; one pod does not; pods held
// only by their deep-check gate are not failures; a pod toggled faster than the flap rate is
// reported, less often on each repeat.
import { beforeAll, describe, expect, it } from "vitest";
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import {
  makeDeployment,
  withProbe,
  withReadinessGate,
  withReplicas,
  type Modifier,
} from "../../support/builders.ts";
import { setPodCondition, testClients } from "../../support/kube.ts";
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
  type HealthPolicyObject,
} from "../controller/support.ts";

beforeAll(() => installCrd());

const GATE = "healthgate.io/deep-check";
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

  /** The operator has seen everything so far and gone quiet; then the condition is read. */
  async function settledCondition() {
    await waitUntilIdle(hg.operator, 1);
    return deploymentCondition(await readDeployment(hg.namespace, "web"), TYPE);
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
    expect((await settledCondition())?.status).toBe("False");
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
    await waitForEvent(hg.namespace, {
      type: "Warning",
      reason: "ManyPodsUnready",
      regardingKind: "Deployment",
      noteContains: "3 of 5 serving pods (60%)",
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
    const policy = await readPolicy(hg.namespace, "web");
    expect(policy.status?.targets?.[0]?.guard?.correlatedFailure?.zone).toBe(zone);
  });

  it("pods held unready by their deep-check gate are not failures; the same pods failing their probe are", async () => {
    // Given four pods whose template carries the deep-check gate, which nobody opens
    await hg.createPolicy(guardPolicy());
    await hg.apply(web(4, withReadinessGate(GATE)));
    await hg.startOperator();
    const held = await waitFor(
      async () => {
        const live = await livePods(hg.namespace, "web");
        expect(live.length).toBe(4);
        for (const pod of live) {
          expect(condition(pod, "ContainersReady"), pod.metadata?.name).toBe("True");
          expect(condition(pod, "Ready"), pod.metadata?.name).toBe("False");
        }
        return live;
      },
      {
        what: "four pods held by their gate (containers ready, pod unready)",
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
    // Then all four unready is no correlated failure
    expect((await settledCondition())?.status).toBe("False");

    // When their gates open (all Ready) and then close again on three of them
    for (const pod of held)
      await setPodCondition(hg.namespace, pod.metadata!.name!, { type: GATE, status: "True" });
    await waitForReadyPods(hg.namespace, "web", 4);
    const closed = names(held.slice(0, 3));
    for (const pod of closed) await setPodCondition(hg.namespace, pod, { type: GATE, status: "False" });
    await waitForReadyPods(hg.namespace, "web", 1);
    // Then three of four unready by their gate is still none
    expect((await settledCondition())?.status).toBe("False");

    // When those three fail their readiness probe as well, they count
    for (const pod of closed) hg.apps.set(pod, "/readyz", { status: 500 });
    await waitForDeploymentCondition(hg.namespace, "web", TYPE, {
      status: "True",
      reason: "ManyPodsUnready",
      message: "3 of 4 serving pods (75%)",
    });
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
    const policy = await readPolicy(hg.namespace, "web");
    expect(policy.status?.targets?.[0]?.guard?.flapping?.map((f) => f.pod)).toEqual([flappy]);
    const counted = await hg.operator.metrics.registry
      .getSingleMetric("healthgate_readiness_flap_reports_total")
      ?.get();
    expect(counted?.values.reduce((sum, v) => sum + v.value, 0)).toBeGreaterThanOrEqual(3);
    // and the other pods are not reported, and one flapping pod is no correlated failure
    expect(reports.every((e) => e.note.includes(flappy))).toBe(true);
    expect(deploymentCondition(await readDeployment(hg.namespace, "web"), TYPE)?.status).toBe("False");
  });
});
