// The prober's thread through its handle, against real servers on loopback: targets come, change
// and go without a restart; a target removed mid-probe gives no result; the worker keeps its
// schedule while the main thread is blocked; metrics carry cohorts, never pods.
import http from "node:http";
import type net from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { ProberHandle } from "../../../src/prober/handle.ts";
import { registerDeepCheckMetrics } from "../../../src/prober/metrics.ts";
import type { DeepCheckResult, ProbeTarget } from "../../../src/prober/types.ts";
import { spawnLoopbackServers, type RunningServers } from "../../support/loopbackTargets.ts";
import { sumSamples } from "../../support/promText.ts";
import { waitFor } from "../../support/waitFor.ts";

let farm: RunningServers;
let prober: ProberHandle | undefined;
let results: DeepCheckResult[] = [];

beforeAll(async () => {
  // In a process of their own: the blocked-main-thread test must block the prober's caller, not the pods.
  farm = await spawnLoopbackServers({ healthy: 4, failing: 1 }, { firstIp: "127.22.0.1" });
});
afterAll(() => farm?.close());
afterEach(async () => {
  await prober?.stop();
  prober = undefined;
  results = [];
});

function target(i: number, extra: Partial<ProbeTarget> = {}): ProbeTarget {
  const server = farm.servers.filter((s) => s.kind === "healthy")[i % 4]!;
  return {
    key: `uid-${i}`,
    namespace: "shop",
    pod: `web-${i}`,
    revision: i % 2 === 0 ? "new111" : "old000",
    cohort: i % 2 === 0 ? "new" : "stable",
    ip: server.ip,
    port: server.port,
    scheme: "HTTP",
    path: "/health/deep",
    intervalMs: 100,
    timeoutMs: 1_000,
    expect: { statuses: [200] },
    ...extra,
  };
}

function start(options: Parameters<typeof ProberHandle.start>[0] = {}): ProberHandle {
  prober = ProberHandle.start(options);
  prober.subscribe((batch) => results.push(...batch));
  return prober;
}

const of = (key: string) => results.filter((r) => r.key === key);

describe("ProberHandle", () => {
  it(
    "checks targets as they are added, changed and removed, without a restart",
    { timeout: 20_000 },
    async () => {
      const p = start();
      p.upsert([target(0), target(1)]);
      await waitFor(() => of("uid-0").length >= 2 && of("uid-1").length >= 2, {
        what: "results for both pods",
      });
      expect(of("uid-0")[0]).toMatchObject({
        pod: "web-0",
        cohort: "new",
        revision: "new111",
        outcome: "pass",
        statusCode: 200,
      });
      expect(of("uid-1")[0]).toMatchObject({ pod: "web-1", cohort: "stable", outcome: "pass" });

      // Changed: the same pod now expects a body it does not get.
      p.upsert([target(0, { expect: { statuses: [200], bodyContains: "all dependencies up" } })]);
      await waitFor(() => of("uid-0").some((r) => r.outcome === "fail" && r.bodyMatched === false), {
        what: "the changed expectation to apply",
      });

      // Removed: no result once the removal has been handled.
      p.remove(["uid-1"]);
      await delay(200); // results the worker sent before it handled the removal are in by now
      const settled = results.length;
      await waitFor(() => results.length >= settled + 5, { what: "more results of the remaining pod" });
      expect(results.slice(settled).filter((r) => r.key === "uid-1")).toEqual([]);
      expect(p.size).toBe(1);
    },
  );

  it("sync() makes the checked set exactly the given targets", { timeout: 20_000 }, async () => {
    const p = start();
    p.sync([target(0), target(1), target(2)]);
    await waitFor(() => [0, 1, 2].every((i) => of(`uid-${i}`).length > 0), {
      what: "results for three pods",
    });
    p.sync([target(2), target(3)]);
    expect(p.size).toBe(2);
    await delay(200);
    const after = results.length;
    await waitFor(() => of("uid-3").length > 0 && results.length > after + 6, {
      what: "results for the new set",
    });
    expect(new Set(results.slice(after).map((r) => r.key))).toEqual(new Set(["uid-2", "uid-3"]));
  });

  it("a pod removed while its probe runs gives no result", { timeout: 20_000 }, async () => {
    let answer: (() => void) | undefined;
    const held = http.createServer((_req, res) => {
      answer = () => res.end("deep ok");
    });
    await new Promise<void>((resolve) => held.listen(0, "127.22.1.1", resolve));
    try {
      const p = start();
      const port = (held.address() as net.AddressInfo).port;
      p.upsert([target(7, { ip: "127.22.1.1", port, intervalMs: 2_000, timeoutMs: 1_500 }), target(0)]);
      await waitFor(() => answer !== undefined, { what: "the held pod's probe to arrive" });
      p.remove(["uid-7"]);
      await delay(200); // the worker has handled the removal: this answer comes too late
      answer!();
      // Past the held probe's own timeout too: still nothing from it.
      const removedAt = Date.now();
      await waitFor(() => of("uid-0").some((r) => r.startedAt > removedAt + 2_000), {
        what: "the other pod's results from after the held probe's timeout",
        timeoutMs: 10_000,
      });
      expect(of("uid-7")).toEqual([]);
    } finally {
      held.closeAllConnections();
      held.close();
    }
  });

  it(
    "keeps probing on schedule while the main thread is blocked for 600 ms",
    { timeout: 20_000 },
    async () => {
      const p = start();
      p.upsert([0, 1, 2, 3].map((i) => target(i)));
      await waitFor(() => results.length >= 8, { what: "the first results" });
      const blockStart = Date.now();
      while (Date.now() - blockStart < 600) {
        // busy: what a relist of 10,000 pods does to the operator's main thread
      }
      const blockEnd = Date.now();
      await waitFor(() => results.some((r) => r.startedAt > blockEnd), { what: "results after the block" });
      // Every pod was checked while the main thread could not run a single callback:
      // at a 100 ms interval each should start about 6 times (a prober on the main thread: none);
      // at least 1 each leaves room for a loaded machine.
      for (const i of [0, 1, 2, 3]) {
        const during = of(`uid-${i}`).filter(
          (r) => r.startedAt >= blockStart + 50 && r.startedAt <= blockEnd,
        );
        expect(during.length, `probes of pod ${i} started during the block`).toBeGreaterThanOrEqual(1);
        expect(during.every((r) => r.outcome === "pass")).toBe(true);
      }
    },
  );

  it(
    "counts probes, results by cohort, outcome and class, duration and lateness — never by pod",
    { timeout: 20_000 },
    async () => {
      const metrics = createMetrics();
      const deep = registerDeepCheckMetrics(metrics);
      const failing = farm.servers.find((s) => s.kind === "failing")!;
      const p = start({ metrics: deep });
      p.upsert([
        target(0),
        target(1, { ip: failing.ip, port: failing.port }),
        target(2, { ip: "127.22.255.254", port: 9 }),
      ]);
      await waitFor(() => ["uid-0", "uid-1", "uid-2"].every((k) => of(k).length >= 2), {
        what: "results of three pods",
      });
      const text = await metrics.registry.metrics();
      expect(
        sumSamples(text, "healthgate_deep_check_probes_total", { cohort: "new" }),
      ).toBeGreaterThanOrEqual(4);
      expect(
        sumSamples(text, "healthgate_deep_check_results_total", {
          cohort: "new",
          outcome: "pass",
          class: "answered",
        }),
      ).toBeGreaterThanOrEqual(2);
      expect(
        sumSamples(text, "healthgate_deep_check_results_total", {
          cohort: "stable",
          outcome: "fail",
          class: "answered",
        }),
      ).toBeGreaterThanOrEqual(2);
      expect(
        sumSamples(text, "healthgate_deep_check_results_total", {
          cohort: "new",
          outcome: "error",
          class: "refused",
        }),
      ).toBeGreaterThanOrEqual(2);
      expect(
        sumSamples(text, "healthgate_deep_check_duration_seconds_count", { cohort: "new", outcome: "pass" }),
      ).toBeGreaterThanOrEqual(2);
      expect(sumSamples(text, "healthgate_deep_check_start_lateness_seconds_count")).toBeGreaterThanOrEqual(
        6,
      );
      expect(sumSamples(text, "healthgate_deep_check_targets", { cohort: "new" })).toBe(2);
      expect(text).not.toMatch(/healthgate_deep_check\w*\{[^}]*(pod|namespace)=/);
    },
  );
});
