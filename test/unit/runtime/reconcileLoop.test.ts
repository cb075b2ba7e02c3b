import { describe, expect, it } from "vitest";
import {
  awaitChange,
  ReconcileLoop,
  requeueAfter,
  type Action,
  type Reconciler,
} from "../../../src/controller/reconcileLoop.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { FakeClock, settle } from "./fakeClock.ts";

function startLoop(reconciler: Reconciler, clock: FakeClock, initialKeys: string[] = ["shop/web"]) {
  const metrics = createMetrics();
  const loop = new ReconcileLoop(reconciler, {
    name: "test",
    concurrency: 2,
    retryRate: { perSecond: 1_000, burst: 1_000 },
    metrics,
    logger: createLogger("silent"),
    clock,
  });
  const leadership = new AbortController();
  const running = loop.run(leadership.signal, initialKeys);
  return { metrics, loop, leadership, running };
}

/** Records when each key ran and answers with the next scripted outcome. */
function scripted(outcomes: (Action | Error)[], clock: FakeClock) {
  const runs: number[] = [];
  const reconciler: Reconciler = {
    async reconcile() {
      runs.push(clock.now());
      const outcome = outcomes.shift() ?? awaitChange();
      if (outcome instanceof Error) throw outcome;
      return outcome;
    },
  };
  return { runs, reconciler };
}

describe("ReconcileLoop", () => {
  it("runs the initial keys and stops there when reconcile awaits change", async () => {
    const clock = new FakeClock(0);
    const { runs, reconciler } = scripted([awaitChange()], clock);
    startLoop(reconciler, clock);
    await clock.advance(60_000);
    expect(runs).toEqual([0]);
  });

  it("requeues after the delay a reconcile asks for", async () => {
    const clock = new FakeClock(0);
    const { runs, reconciler } = scripted([requeueAfter(30_000), awaitChange()], clock);
    startLoop(reconciler, clock);
    await clock.advance(120_000);
    expect(runs).toEqual([0, 30_000]);
  });

  it("backs off exponentially on errors and starts over after a success", async () => {
    const clock = new FakeClock(0);
    const boom = new Error("boom");
    const { runs, reconciler } = scripted([boom, boom, boom, requeueAfter(1_000), boom], clock);
    startLoop(reconciler, clock);
    await clock.advance(10_000);
    // 5, 10, 20 ms of backoff; then the success's 1 s; then the backoff is back at 5 ms.
    expect(runs).toEqual([0, 5, 15, 35, 1_035, 1_040]);
  });

  it("lets errorPolicy choose the retry", async () => {
    const clock = new FakeClock(0);
    const { runs, reconciler } = scripted([new Error("quota"), awaitChange()], clock);
    reconciler.errorPolicy = (_key, _err, backoffMs) => requeueAfter(backoffMs + 2_000);
    startLoop(reconciler, clock);
    await clock.advance(10_000);
    expect(runs).toEqual([0, 2_005]);
  });

  it("counts reconciles by kind and result", async () => {
    const clock = new FakeClock(0);
    const deployment = scripted([new Error("x"), requeueAfter(10), awaitChange()], clock).reconciler;
    const reconciler: Reconciler = {
      reconcile: (key, signal) =>
        key.startsWith("Deployment/") ? deployment.reconcile(key, signal) : Promise.resolve(awaitChange()),
    };
    const started = startLoop(reconciler, clock, ["Deployment/shop/web", "HealthPolicy/shop/strict"]);
    await clock.advance(1_000);
    const values = (await started.metrics.reconcileTotal.get()).values;
    const count = (kind: string, result: string) =>
      values.find((v) => v.labels.kind === kind && v.labels.result === result)?.value ?? 0;
    expect(
      ["Deployment", "HealthPolicy"].map((kind) =>
        ["error", "requeue", "success"].map((r) => count(kind, r)),
      ),
    ).toEqual([
      [1, 1, 1],
      [0, 0, 1],
    ]);
  });

  it("stops when leadership ends: aborts the signal, waits for reconciles in flight, drops the rest", async () => {
    let release!: () => void;
    const seen: { key: string; signal: AbortSignal }[] = [];
    const reconciler: Reconciler = {
      reconcile: (key, signal) =>
        new Promise<Action>((resolve) => {
          seen.push({ key, signal });
          release = () => resolve(requeueAfter(10));
        }),
    };
    const clock = new FakeClock(0);
    const { leadership, running, loop } = startLoop(reconciler, clock, ["a"]);
    await settle();
    leadership.abort();
    let finished = false;
    void running.then(() => (finished = true));
    await settle();
    expect(seen[0]?.signal.aborted).toBe(true);
    expect(finished).toBe(false);
    loop.enqueue("b");
    release();
    await running;
    await clock.advance(1_000);
    expect(seen.map((s) => s.key)).toEqual(["a"]);
  });
});
