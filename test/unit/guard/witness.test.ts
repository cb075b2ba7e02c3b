// The liveness witness's I/O side (src/controller/livenessWitness.ts) with a fake clock, a client
// that counts its Events lists, and a prober that keeps its targets: off without the field; the
// sample is the oldest Ready pods; no API read while the deep checks pass; during an outage one
// list per failing sampled pod per interval, within the global read budget.
import { describe, expect, it } from "vitest";
import type { Pod } from "../../../src/api/k8s.ts";
import { healthPolicy } from "../../../src/api/v1alpha1/index.ts";
import { LivenessWitness } from "../../../src/controller/livenessWitness.ts";
import type { KubeClient } from "../../../src/kube/client.ts";
import type { ProberHandle } from "../../../src/prober/handle.ts";
import type { DeepCheckResult, ProbeTarget } from "../../../src/prober/types.ts";
import { FakeClock } from "../runtime/fakeClock.ts";

const policy = (background?: object) =>
  healthPolicy.parse({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "web", namespace: "shop" },
    spec: {
      selector: { matchLabels: { app: "web" } },
      endpoints: { port: 8080 },
      rollout: {
        steps: [{ weight: 100 }],
        deepCheck: { path: "/health/deep", timeoutSeconds: 1, ...(background ? { background } : {}) },
      },
    },
  });

const pod = (deployment: string, i: number, restarts = 0): Pod => ({
  metadata: {
    name: `${deployment}-${i}`,
    namespace: "shop",
    uid: `${deployment}-uid-${i}`,
    creationTimestamp: `2026-12-04T09:00:0${i}Z`,
  },
  spec: { containers: [{ name: "web", ports: [{ containerPort: 8080 }] }] },
  status: {
    phase: "Running",
    podIP: `10.0.0.${i + 1}`,
    conditions: [{ type: "Ready", status: "True" }],
    containerStatuses: [{ name: "web", ready: true, restartCount: restarts }],
  },
});

function setup(eventReads?: { perSecond: number; burst: number }) {
  const clock = new FakeClock(Date.parse("2026-12-04T10:00:00Z"));
  const lists: string[] = [];
  let events: unknown[] = [];
  const client = {
    list: async (_ref: unknown, _ns: string, query: { fieldSelector?: string }) => {
      lists.push(query.fieldSelector ?? "");
      return { apiVersion: "events.k8s.io/v1", kind: "EventList", metadata: {}, items: events };
    },
  } as unknown as KubeClient;
  const targets = new Map<string, ProbeTarget>();
  const prober = {
    upsert: (ts: ProbeTarget[]) => ts.forEach((t) => targets.set(t.key, t)),
    remove: (keys: string[]) => keys.forEach((k) => targets.delete(k)),
  } as unknown as ProberHandle;
  const enqueued: string[] = [];
  const witness = new LivenessWitness({
    client,
    clock,
    logger: { info: () => {}, warn: () => {} } as never,
    prober: () => prober,
    enqueue: (ns, name) => enqueued.push(`${ns}/${name}`),
    ...(eventReads ? { eventReads } : {}),
  });
  const result = (key: string, outcome: "pass" | "fail") =>
    ({ key, outcome, startedAt: clock.now() }) as DeepCheckResult;
  return {
    clock,
    lists,
    targets,
    enqueued,
    witness,
    setEvents: (e: unknown[]) => (events = e),
    results: (outcome: "pass" | "fail", keys = [...targets.keys()]) =>
      witness.receive(keys.map((k) => result(k, outcome))),
  };
}

const signal = new AbortController().signal;
const BACKGROUND = { intervalSeconds: 10, sample: 2, failureThreshold: 2 };

describe("LivenessWitness", () => {
  it("checks nothing and reads nothing without spec.rollout.deepCheck.background", async () => {
    const t = setup();
    const pods = [0, 1, 2].map((i) => pod("web", i));
    expect(await t.witness.observe(policy(), "shop", "web", pods, "r1", signal)).toBeUndefined();
    expect(t.targets.size).toBe(0);
    expect(t.lists).toEqual([]);
  });

  it("samples the oldest Ready pods at the background interval, and reads nothing while they pass", async () => {
    const t = setup();
    const pods = [2, 0, 1].map((i) => pod("web", i));
    await t.witness.observe(policy(BACKGROUND), "shop", "web", pods, "r1", signal);
    expect(t.witness.sampled("shop", "web")).toEqual(["web-0", "web-1"]);
    expect([...t.targets.values()].map((x) => [x.key, x.intervalMs, x.cohort])).toEqual([
      ["web-uid-0/background", 10_000, "stable"],
      ["web-uid-1/background", 10_000, "stable"],
    ]);
    t.results("pass");
    await t.clock.advance(60_000);
    await t.witness.observe(policy(BACKGROUND), "shop", "web", pods, "r1", signal);
    expect(t.lists).toEqual([]);
    // Turning it off removes the targets.
    await t.witness.observe(policy(), "shop", "web", pods, "r1", signal);
    expect(t.targets.size).toBe(0);
  });

  it("during an outage lists each failing pod's liveness Events once per interval, and finds DeepInPractice", async () => {
    const t = setup();
    const pods = [0, 1, 2].map((i) => pod("web", i));
    await t.witness.observe(policy(BACKGROUND), "shop", "web", pods, "r1", signal);
    t.results("pass");
    t.results("fail");
    t.results("fail");
    expect(t.enqueued).toEqual(["shop/web"]);
    const stamp = new Date(t.clock.now()).toISOString();
    t.setEvents([
      {
        reason: "Unhealthy",
        note: "Liveness probe failed: HTTP probe failed with statuscode: 503",
        deprecatedFirstTimestamp: stamp,
        deprecatedLastTimestamp: stamp,
        deprecatedCount: 3,
        metadata: {},
      },
    ]);
    const restarted = [pod("web", 0, 1), pod("web", 1), pod("web", 2)];
    expect(await t.witness.observe(policy(BACKGROUND), "shop", "web", restarted, "r1", signal)).toBe(10_000);
    expect(t.lists).toEqual([
      "regarding.uid=web-uid-0,reason=Unhealthy",
      "regarding.uid=web-uid-1,reason=Unhealthy",
    ]);
    expect(t.witness.finding("shop", "web")?.pods).toEqual([
      expect.objectContaining({ pod: "web-0", restarts: 1, livenessFailures: 3 }),
    ]);
    // Within the interval: no new read.
    await t.clock.advance(5_000);
    await t.witness.observe(policy(BACKGROUND), "shop", "web", restarted, "r1", signal);
    expect(t.lists).toHaveLength(2);
    await t.clock.advance(5_000);
    await t.witness.observe(policy(BACKGROUND), "shop", "web", restarted, "r1", signal);
    expect(t.lists).toHaveLength(4);
  });

  it("keeps Events reads within the budget over every Deployment; the rest wait for a later look", async () => {
    const t = setup({ perSecond: 1, burst: 3 });
    const names = ["a", "b", "c"];
    for (const d of names) {
      await t.witness.observe(
        policy(BACKGROUND),
        "shop",
        d,
        [0, 1].map((i) => pod(d, i)),
        "r1",
        signal,
      );
    }
    t.results("fail");
    t.results("fail");
    for (const d of names) {
      await t.witness.observe(
        policy(BACKGROUND),
        "shop",
        d,
        [0, 1].map((i) => pod(d, i)),
        "r1",
        signal,
      );
    }
    expect(t.lists).toHaveLength(3);
    await t.clock.advance(2_000);
    for (const d of names) {
      await t.witness.observe(
        policy(BACKGROUND),
        "shop",
        d,
        [0, 1].map((i) => pod(d, i)),
        "r1",
        signal,
      );
    }
    expect(t.lists).toHaveLength(5);
  });
});
