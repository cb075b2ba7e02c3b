import { describe, expect, it } from "vitest";
import { WorkQueue } from "../../../src/controller/workqueue.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { FakeClock, settle } from "./fakeClock.ts";

/** A handler whose runs the test finishes by hand, recording what ran and what overlapped. */
function controlledHandler() {
  const runs: string[] = [];
  const inFlight = new Map<string, () => void>();
  let maxInFlight = 0;
  let overlappingSameKey = false;
  const handler = (key: string) =>
    new Promise<void>((resolve) => {
      if (inFlight.has(key)) overlappingSameKey = true;
      runs.push(key);
      inFlight.set(key, resolve);
      maxInFlight = Math.max(maxInFlight, inFlight.size);
    });
  const finish = async (key: string) => {
    const resolve = inFlight.get(key);
    if (!resolve) throw new Error(`${key} is not running`);
    inFlight.delete(key);
    resolve();
    await settle();
  };
  return {
    handler,
    finish,
    runs,
    inFlight: () => [...inFlight.keys()],
    get maxInFlight() {
      return maxInFlight;
    },
    get overlappingSameKey() {
      return overlappingSameKey;
    },
  };
}

function makeQueue(handler: (key: string) => Promise<void>, concurrency = 1, clock = new FakeClock()) {
  const metrics = createMetrics();
  const queue = new WorkQueue(handler, {
    name: "test",
    concurrency,
    metrics,
    logger: createLogger("silent"),
    clock,
  });
  return { queue, metrics, clock };
}

describe("WorkQueue", () => {
  it("keeps a waiting key once however often it is added", async () => {
    const h = controlledHandler();
    const { queue } = makeQueue(h.handler);
    queue.add("a");
    queue.add("b");
    queue.add("b");
    queue.add("b");
    expect(queue.depth).toBe(1);
    await h.finish("a");
    await h.finish("b");
    expect(h.runs).toEqual(["a", "b"]);
  });

  it("never runs one key twice at once; a key added while running runs once more afterwards", async () => {
    const h = controlledHandler();
    const { queue } = makeQueue(h.handler, 4);
    queue.add("a");
    queue.add("a");
    queue.add("a");
    await settle();
    expect(h.inFlight()).toEqual(["a"]);
    await h.finish("a");
    expect(h.inFlight()).toEqual(["a"]);
    await h.finish("a");
    expect(h.runs).toEqual(["a", "a"]);
    expect(h.overlappingSameKey).toBe(false);
  });

  it("runs at most `concurrency` keys at once, in arrival order", async () => {
    const h = controlledHandler();
    const { queue } = makeQueue(h.handler, 2);
    for (const key of ["a", "b", "c", "d", "e"]) queue.add(key);
    expect(h.inFlight()).toEqual(["a", "b"]);
    expect(queue.depth).toBe(3);
    await h.finish("b");
    expect(h.inFlight()).toEqual(["a", "c"]);
    for (const key of ["a", "c", "d", "e"]) await h.finish(key);
    expect(h.maxInFlight).toBe(2);
    expect(h.runs).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("grows a key's backoff exponentially and resets it on forget", () => {
    const { queue } = makeQueue(async () => {});
    expect([queue.backoff("a"), queue.backoff("a"), queue.backoff("a"), queue.backoff("a")]).toEqual([
      5, 10, 20, 40,
    ]);
    expect(queue.backoff("b")).toBe(5);
    queue.forget("a");
    expect(queue.backoff("a")).toBe(5);
  });

  it("caps the backoff at five minutes", () => {
    const { queue } = makeQueue(async () => {});
    let delay = 0;
    for (let i = 0; i < 40; i++) delay = queue.backoff("a");
    expect(delay).toBe(300_000);
  });

  it("lets the shared token bucket slow retries of many keys down", () => {
    const clock = new FakeClock();
    const queue = new WorkQueue(async () => {}, {
      name: "test",
      concurrency: 1,
      retryRate: { perSecond: 10, burst: 2 },
      metrics: createMetrics(),
      logger: createLogger("silent"),
      clock,
    });
    expect(["a", "b", "c", "d"].map((key) => queue.backoff(key))).toEqual([5, 5, 100, 200]);
  });

  it.each([
    { name: "earlier second request wins", first: 100, second: 50, runsAt: 50 },
    { name: "later second request is ignored", first: 50, second: 100, runsAt: 50 },
  ])("addAfter keeps the earliest deadline: $name", async ({ first, second, runsAt }) => {
    const runs: number[] = [];
    const clock = new FakeClock(0);
    const { queue } = makeQueue(async () => void runs.push(clock.now()), 1, clock);
    queue.addAfter("a", first);
    queue.addAfter("a", second);
    await clock.advance(1_000);
    expect(runs).toEqual([runsAt]);
  });

  it("drops a key's pending deadline when a worker takes it (the run re-decides)", async () => {
    const runs: number[] = [];
    const clock = new FakeClock(0);
    const { queue } = makeQueue(async () => void runs.push(clock.now()), 1, clock);
    queue.addAfter("a", 100);
    queue.add("a");
    await clock.advance(1_000);
    expect(runs).toEqual([0]);
  });

  it("shutdown drops waiting keys, waits for running ones and ignores later adds", async () => {
    const h = controlledHandler();
    const { queue } = makeQueue(h.handler);
    queue.add("a");
    queue.add("b");
    queue.addAfter("c", 10);
    let stopped = false;
    const done = queue.shutdown().then(() => (stopped = true));
    queue.add("d");
    await settle();
    expect(stopped).toBe(false);
    await h.finish("a");
    await done;
    expect(h.runs).toEqual(["a"]);
  });

  it("runs keys added without `low` before every low one; a low key added again without it moves up", async () => {
    const h = controlledHandler();
    const { queue } = makeQueue(h.handler);
    queue.add("first");
    // A policy edit's fan-out...
    for (const key of ["d1", "d2", "d3", "d4"]) queue.add(key, { low: true });
    // ...and, meanwhile, single changes: one to a Deployment the fan-out holds too.
    queue.add("single");
    queue.add("d3");
    queue.add("d2", { low: true }); // still d2 once, still low
    expect(queue.depth).toBe(5);
    for (const key of ["first", "single", "d3", "d1", "d2"]) await h.finish(key);
    expect(h.runs).toEqual(["first", "single", "d3", "d1", "d2", "d4"]);
  });

  it("addPaced runs a key at once, then at most once per interval however often it is added", async () => {
    const clock = new FakeClock(0);
    const runs: number[] = [];
    const { queue } = makeQueue(
      async () => {
        runs.push(clock.now());
      },
      1,
      clock,
    );
    // Added every 10 ms for 2.5 s (a Deployment reconcile finishing each time): at 0, then once
    // per second from the previous start.
    for (let t = 0; t < 2_500; t += 10) {
      queue.addPaced("policy", 1_000);
      await clock.advance(10);
    }
    await clock.advance(5_000);
    expect(runs).toEqual([0, 1_000, 2_000, 3_000]);
    // Quiet for longer than the interval: the next add runs at once again.
    queue.addPaced("policy", 1_000);
    await settle();
    expect(runs).toEqual([0, 1_000, 2_000, 3_000, 7_500]);
    // A plain add is not paced.
    queue.add("policy");
    await settle();
    expect(runs.length).toBe(6);
  });

  it("addPaced with `low`: when due, the key still waits behind keys added without it", async () => {
    const h = controlledHandler();
    const clock = new FakeClock(0);
    const { queue } = makeQueue(h.handler, 1, clock);
    queue.add("busy");
    queue.addPaced("policy", 1_000, { low: true });
    queue.add("deployment");
    await h.finish("busy");
    await h.finish("deployment");
    await h.finish("policy"); // started at 0
    // Asked again at once: due at 1,000, then behind what was added without `low` meanwhile.
    queue.addPaced("policy", 1_000, { low: true });
    queue.add("a");
    await clock.advance(1_000);
    queue.add("b");
    await h.finish("a");
    await h.finish("b");
    expect(h.runs).toEqual(["busy", "deployment", "policy", "a", "b", "policy"]);
  });

  it("shutdown with drain processes the keys already waiting", async () => {
    const h = controlledHandler();
    const { queue } = makeQueue(h.handler);
    queue.add("a");
    queue.add("b");
    const done = queue.shutdown({ drain: true });
    await h.finish("a");
    await h.finish("b");
    await done;
    expect(h.runs).toEqual(["a", "b"]);
  });

  it("reports depth, adds and retries", async () => {
    const h = controlledHandler();
    const { queue, metrics } = makeQueue(h.handler);
    queue.add("a");
    queue.add("b");
    queue.add("b");
    queue.backoff("a");
    const value = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.queue === "test")
        ?.value;
    expect(await value("healthgate_workqueue_depth")).toBe(1);
    expect(await value("healthgate_workqueue_adds_total")).toBe(3);
    expect(await value("healthgate_workqueue_retries_total")).toBe(1);
  });
});
