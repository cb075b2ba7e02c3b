// The guard's memory (GuardTracker, fed by pod informer events) and its concern: what the
// reconciler gets for a Deployment, with a fake clock.
import { describe, expect, it } from "vitest";
import type { Pod } from "../../../src/api/k8s.ts";
import { healthPolicy } from "../../../src/api/v1alpha1/index.ts";
import { GuardTracker, registerGuardMetrics } from "../../../src/controller/guard.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { guardConcern } from "../../../src/policy/guard/index.ts";
import { makeDeployment, snapshotOf } from "../headroom/builders.ts";
import { FakeClock } from "../runtime/fakeClock.ts";

const policy = healthPolicy.parse({
  apiVersion: "healthgate.io/v1alpha1",
  kind: "HealthPolicy",
  metadata: { name: "web", namespace: "shop" },
  spec: {
    selector: { matchLabels: { app: "web" } },
    guardrails: { flapping: { maxTransitions: 2, windowSeconds: 60, reportBackoffSeconds: 10 } },
  },
});
const KEY = { namespace: "shop", name: "web" };

function setup() {
  const clock = new FakeClock(Date.parse("2026-12-04T10:00:00Z"));
  const metrics = createMetrics();
  const tracker = new GuardTracker({ clock, metrics: registerGuardMetrics(metrics) });
  const pods = new Map<string, Pod>();
  /** The kubelet writes Ready for pod `name` now; the informer delivers it. */
  const kubelet = (name: string, ready: boolean, zone = "node-a") => {
    const stamp = new Date(clock.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    const before = pods.get(name);
    const pod: Pod = {
      metadata: { name, uid: `uid-${name}`, labels: { "pod-template-hash": "r1" } },
      spec: { nodeName: zone, containers: [{ name: "web" }] },
      status: {
        phase: "Running",
        startTime: "2026-12-04T09:00:00Z",
        conditions: [
          { type: "Ready", status: ready ? "True" : "False", lastTransitionTime: stamp },
          { type: "ContainersReady", status: ready ? "True" : "False", lastTransitionTime: stamp },
        ],
      },
    };
    pods.set(name, pod);
    if (before) tracker.podHandlers.update!(before, pod);
    else tracker.podHandlers.add!(pod);
  };
  const look = (commit = true) => {
    const guard = tracker.assess(KEY, policy, [...pods.values()], { "node-a": "zone-a" }, commit);
    const snapshot = { ...snapshotOf(makeDeployment("web")), guard, now: new Date(clock.now()) };
    return { guard, out: guardConcern(snapshot) };
  };
  const gauge = async () =>
    (await metrics.registry.getSingleMetric("healthgate_correlated_failure")!.get()).values.find(
      (v) => v.labels.deployment === "web",
    )?.value;
  const reports = async () =>
    (await metrics.registry.getSingleMetric("healthgate_readiness_flap_reports_total")!.get()).values.reduce(
      (sum, v) => sum + v.value,
      0,
    );
  return { clock, tracker, pods, kubelet, look, gauge, reports };
}

describe("GuardTracker and the guard concern", () => {
  it("3 of 5 pods going unready together: CorrelatedFailure=True with a Warning Event, the gauge at 1; cleared after clearAfter", async () => {
    const { clock, kubelet, look, gauge } = setup();
    for (let i = 0; i < 5; i++) kubelet(`web-${i}`, true);
    expect(look().out.conditions).toEqual([
      expect.objectContaining({ status: "False", reason: "NoCorrelatedFailure" }),
    ]);
    expect(await gauge()).toBe(0);
    await clock.advance(60_000);
    for (let i = 0; i < 3; i++) kubelet(`web-${i}`, false);
    await clock.advance(1_000);
    const raised = look().out;
    expect(raised.conditions[0]).toEqual(
      expect.objectContaining({ status: "True", reason: "ManyPodsUnready" }),
    );
    expect(raised.events).toEqual([
      expect.objectContaining({ regarding: "Deployment", type: "Warning", reason: "ManyPodsUnready" }),
    ]);
    expect(raised.figures.guard?.correlatedFailure).toEqual(
      expect.objectContaining({
        unreadyPods: 3,
        servingPods: 5,
        windowSeconds: 30,
        since: "2026-12-04T10:01:00Z",
      }),
    );
    expect(await gauge()).toBe(1);
    // two recover: 1 of 5, below; clears only 60 s later, and asks to be looked at then
    for (let i = 0; i < 2; i++) kubelet(`web-${i}`, true);
    const clearing = look().out;
    expect(clearing.conditions[0]?.status).toBe("True");
    expect(clearing.requeueAfterSeconds).toBe(60);
    await clock.advance(60_000);
    expect(look().out.conditions[0]?.status).toBe("False");
    expect(await gauge()).toBe(0);
  });

  it("a flapping pod is reported once per backoff, with an immediate Event and the counter; a read-only look reports nothing", async () => {
    const { clock, kubelet, look, reports } = setup();
    kubelet("web-0", true);
    kubelet("web-1", true);
    for (let i = 0; i < 3; i++) {
      await clock.advance(2_000);
      kubelet("web-0", i % 2 === 1);
    }
    expect(look(false).out.events).toEqual([]);
    const first = look().out;
    expect(first.events).toEqual([
      expect.objectContaining({
        reason: "ReadinessFlapping",
        immediate: true,
        message: expect.stringContaining("pod web-0 changed readiness 3 times within 60s"),
      }),
    ]);
    expect(first.events[0]?.message).toContain("report 1, the next no sooner than 10s from now");
    expect(first.figures.guard?.flapping).toEqual([
      expect.objectContaining({ pod: "web-0", transitions: 3, reports: 1 }),
    ]);
    expect(look().out.events).toEqual([]);
    expect(await reports()).toBe(1);
    await clock.advance(10_000);
    kubelet("web-0", true);
    expect(look().out.events[0]?.message).toContain("report 2, the next no sooner than 20s from now");
    expect(await reports()).toBe(2);
  });

  it("keeps no history for deleted pods", () => {
    const { tracker, kubelet, pods } = setup();
    kubelet("web-0", true);
    kubelet("web-0", false);
    expect(tracker.trackedPods).toBe(1);
    tracker.podHandlers.delete!(pods.get("web-0")!);
    expect(tracker.trackedPods).toBe(0);
  });
});
