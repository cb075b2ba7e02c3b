// The metrics.k8s.io history: what it keeps, what it forgets, and when it says "unavailable".
// The client is a stub of `list` only (what PodMetricsHistory uses); the integration test
// test/integration/metrics-source.test.ts drives the same code through the real aggregator.
import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ObjectList } from "../../../src/kube/client.ts";
import { PodMetricsHistory } from "../../../src/kube/podMetrics.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { FakeClock } from "./fakeClock.ts";

const NS = "shop";
const MINUTE = 60_000;

/** A PodMetrics item: one container `web` using `cpu`, sampled at `at`. */
function podMetrics(pod: string, at: number, cpu: string) {
  return {
    metadata: { name: pod, namespace: NS },
    timestamp: new Date(at).toISOString(),
    window: "15s",
    containers: [{ name: "web", usage: { cpu, memory: "64Mi" } }],
  };
}

type Answer = ReturnType<typeof podMetrics>[] | ApiException<unknown> | Error;

/** A history over one namespace whose `list` answers whatever the test last set. */
function makeHistory({
  windowSeconds = 3600,
  maxSamplesPerPod,
}: { windowSeconds?: number; maxSamplesPerPod?: number } = {}) {
  const clock = new FakeClock();
  const changes: string[] = [];
  let answer: Answer = [];
  let lists = 0;
  const history = new PodMetricsHistory({
    client: {
      list: async (ref, namespace) => {
        lists++;
        expect(ref).toMatchObject({ group: "metrics.k8s.io", version: "v1beta1", plural: "pods" });
        expect(namespace).toBe(NS);
        if (answer instanceof Error) throw answer;
        return {
          apiVersion: "metrics.k8s.io/v1beta1",
          kind: "PodMetricsList",
          metadata: { resourceVersion: "" },
          items: answer,
        } as unknown as ObjectList;
      },
    },
    targets: () => new Map([[NS, windowSeconds]]),
    clock,
    logger: createLogger("silent"),
    onChange: (namespace) => changes.push(namespace),
    intervalMs: 30_000,
    ...(maxSamplesPerPod !== undefined ? { maxSamplesPerPod } : {}),
  });
  return {
    history,
    clock,
    changes,
    lists: () => lists,
    answer: (next: Answer) => {
      answer = next;
    },
    samples: (pods: string[], window = windowSeconds) =>
      history.samples(NS, pods, window, new Date(clock.now())),
  };
}

const cpus = (samples: ReturnType<PodMetricsHistory["samples"]>) =>
  samples === "unavailable" ? samples : samples.map((s) => `${s.pod}:${s.containers[0]?.cpu}`);

describe("PodMetricsHistory", () => {
  it("is unavailable before anything was collected", () => {
    const h = makeHistory();
    expect(h.samples(["web-1"])).toBe("unavailable");
  });

  it.each([
    { name: "404: no APIService for metrics.k8s.io", code: 404 },
    { name: "503: the APIService's backend does not answer", code: 503 },
  ])("is unavailable when the API answers $name", async ({ code }) => {
    const h = makeHistory();
    h.answer([podMetrics("web-1", h.clock.now(), "100m")]);
    await h.history.poll();
    expect(cpus(h.samples(["web-1"]))).toEqual(["web-1:100m"]);

    h.answer(new ApiException(code, "the server could not find the requested resource", {}, {}));
    await h.history.poll();
    expect(h.samples(["web-1"])).toBe("unavailable");
  });

  it("answers an empty list, not unavailable, when metrics.k8s.io has no sample of those pods", async () => {
    const h = makeHistory();
    h.answer([]);
    await h.history.poll();
    expect(h.samples(["web-1"])).toEqual([]);
  });

  it("keeps its history through a transient error (neither 404 nor 503)", async () => {
    const h = makeHistory();
    h.answer([podMetrics("web-1", h.clock.now(), "100m")]);
    await h.history.poll();
    h.answer(new Error("connection reset"));
    await h.history.poll();
    expect(cpus(h.samples(["web-1"]))).toEqual(["web-1:100m"]);
  });

  it("keeps one sample per metrics-server timestamp, and calls back only when something is new", async () => {
    const h = makeHistory();
    const at = h.clock.now();
    h.answer([podMetrics("web-1", at, "450m")]);
    await h.history.poll();
    await h.history.poll(); // the same sample again: metrics-server has not scraped since
    expect(cpus(h.samples(["web-1"]))).toEqual(["web-1:450m"]);
    expect(h.changes).toEqual([NS]);

    h.answer([podMetrics("web-1", at + 15_000, "100m")]);
    await h.clock.advance(30_000);
    await h.history.poll();
    expect(cpus(h.samples(["web-1"]))).toEqual(["web-1:450m", "web-1:100m"]);
    expect(h.changes).toEqual([NS, NS]);
  });

  it("answers only the samples inside the asked window, and forgets those older than the policy's window", async () => {
    const h = makeHistory({ windowSeconds: 600 }); // a 10m window
    const start = h.clock.now();
    for (const [minute, cpu] of [
      [0, "900m"],
      [5, "500m"],
      [9, "300m"],
    ] as const) {
      await h.clock.advance(start + minute * MINUTE - h.clock.now());
      h.answer([podMetrics("web-1", h.clock.now(), cpu)]);
      await h.history.poll();
    }
    // at 9m: a 5m window sees the 5m and 9m samples; the 10m window all three
    expect(cpus(h.samples(["web-1"], 300))).toEqual(["web-1:500m", "web-1:300m"]);
    expect(cpus(h.samples(["web-1"]))).toEqual(["web-1:900m", "web-1:500m", "web-1:300m"]);

    // at 12m the 0m sample is older than the 10m window: dropped on the next poll, even for a longer ask
    await h.clock.advance(3 * MINUTE);
    h.answer([podMetrics("web-1", h.clock.now(), "200m")]);
    await h.history.poll();
    expect(cpus(h.samples(["web-1"], 3600))).toEqual(["web-1:500m", "web-1:300m", "web-1:200m"]);
  });

  it("keeps at most maxSamplesPerPod samples per pod, the newest", async () => {
    const h = makeHistory({ maxSamplesPerPod: 2 });
    for (const cpu of ["100m", "200m", "300m"]) {
      h.answer([podMetrics("web-1", h.clock.now(), cpu)]);
      await h.history.poll();
      await h.clock.advance(30_000);
    }
    expect(cpus(h.samples(["web-1"]))).toEqual(["web-1:200m", "web-1:300m"]);
  });

  it("drops pods that vanished from metrics.k8s.io, and answers only the pods asked for", async () => {
    const h = makeHistory();
    h.answer([podMetrics("web-1", h.clock.now(), "100m"), podMetrics("web-2", h.clock.now(), "200m")]);
    await h.history.poll();
    expect(cpus(h.samples(["web-2"]))).toEqual(["web-2:200m"]);

    h.answer([podMetrics("web-2", h.clock.now(), "200m")]);
    await h.history.poll();
    expect(cpus(h.samples(["web-1", "web-2"]))).toEqual(["web-2:200m"]);
    expect(h.changes).toEqual([NS, NS]);
  });

  it("polls every interval from start until stop, and not after", async () => {
    const h = makeHistory();
    const operator = new AbortController();
    h.history.start(operator.signal);
    await h.clock.advance(0);
    expect(h.lists()).toBe(1);
    await h.clock.advance(30_000);
    expect(h.lists()).toBe(2);
    await h.history.stop();
    await h.clock.advance(120_000);
    expect(h.lists()).toBe(2);
    expect(h.clock.pendingTimers).toBe(0);
  });

  it("stops polling when the operator's signal aborts", async () => {
    const h = makeHistory();
    const operator = new AbortController();
    h.history.start(operator.signal);
    await h.clock.advance(0);
    operator.abort();
    await h.clock.advance(120_000);
    expect(h.lists()).toBe(1);
  });
});
