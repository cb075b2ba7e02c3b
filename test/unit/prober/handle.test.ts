// What the ProberHandle keeps for others on the main thread: each checked pod's latest result
// (what `healthgate rollout status` will show, from memory), and the pods it was handed but does
// not check — hostNetwork, no pod IP, … — with their reason, in a metric by reason and a query,
// never silently. Real servers on loopback (in a process of their own); results as they come.
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Pod } from "../../../src/api/k8s.ts";
import { healthPolicySpec } from "../../../src/api/v1alpha1/index.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { ProberHandle } from "../../../src/prober/handle.ts";
import { registerDeepCheckMetrics } from "../../../src/prober/metrics.ts";
import { deepCheckTarget } from "../../../src/prober/targets.ts";
import type { DeepCheckResult } from "../../../src/prober/types.ts";
import { spawnLoopbackServers, type RunningServers } from "../../support/loopbackTargets.ts";
import { sumSamples } from "../../support/promText.ts";
import { waitFor } from "../../support/waitFor.ts";

let farm: RunningServers;
let prober: ProberHandle | undefined;
let results: DeepCheckResult[] = [];

beforeAll(async () => {
  farm = await spawnLoopbackServers({ healthy: 2 }, { firstIp: "127.22.2.1" });
});
afterAll(() => farm?.close());
afterEach(async () => {
  await prober?.stop();
  prober = undefined;
  results = [];
});

const policy = healthPolicySpec.parse({
  selector: { matchLabels: { app: "web" } },
  endpoints: { port: "http" },
  rollout: {
    steps: [{ weight: 100 }],
    deepCheck: { path: "/health/deep", intervalSeconds: 2, timeoutSeconds: 1 },
  },
});

/** A Running pod whose IP and declared `http` port are healthy server `i`'s. */
function pod(i: number, change: (p: Pod) => void = () => {}): Pod {
  const server = farm.servers[i % farm.servers.length]!;
  const p: Pod = {
    metadata: {
      name: `web-${i}`,
      namespace: "shop",
      uid: `uid-${i}`,
      labels: { "pod-template-hash": "abc" },
    },
    spec: { containers: [{ name: "web", ports: [{ name: "http", containerPort: server.port }] }] },
    status: { phase: "Running", podIP: server.ip },
  };
  change(p);
  return p;
}
const who = (p: Pod) => ({
  key: p.metadata.uid!,
  namespace: p.metadata.namespace!,
  pod: p.metadata.name,
  cohort: "new" as const,
});

function start() {
  const metrics = createMetrics();
  prober = ProberHandle.start({ metrics: registerDeepCheckMetrics(metrics) });
  prober.subscribe((batch) => results.push(...batch));
  const uncheckedMetric = async (reason: string) =>
    sumSamples(await metrics.registry.metrics(), "healthgate_deep_check_unchecked_pods", { reason });
  return { p: prober, uncheckedMetric };
}

describe("ProberHandle: its thread", () => {
  it(
    "starts with the first pod to check, not before (an idle thread costs a V8 isolate)",
    { timeout: 20_000 },
    async () => {
      const { p } = start();
      expect(p.threadStarted).toBe(false);
      const host = pod(0, (x) => void (x.spec.hostNetwork = true));
      p.track(who(host), deepCheckTarget(policy, host, "new"));
      p.remove(["uid-0"]);
      expect(p.threadStarted).toBe(false);
      p.track(who(pod(1)), deepCheckTarget(policy, pod(1), "new"));
      expect(p.threadStarted).toBe(true);
      await waitFor(() => p.latest("uid-1") !== undefined, { what: "a result from the thread" });
      await p.stop();
      expect(p.threadStarted).toBe(false);
    },
  );

  it("stops at once when it never started", async () => {
    const { p } = start();
    await p.stop();
    expect(p.threadStarted).toBe(false);
  });
});

describe("ProberHandle: what it keeps for the main thread", () => {
  it(
    "answers each checked pod's latest result, and forgets it when the pod goes",
    { timeout: 20_000 },
    async () => {
      const { p } = start();
      for (const i of [0, 1]) p.track(who(pod(i)), deepCheckTarget(policy, pod(i), "new"));
      await waitFor(() => p.latest("uid-0") !== undefined && p.latest("uid-1") !== undefined, {
        what: "a result for both pods",
      });
      expect(p.latest("uid-0")).toMatchObject({ pod: "web-0", outcome: "pass", statusCode: 200 });
      // The latest, not the first.
      await waitFor(() => results.filter((r) => r.key === "uid-0").length >= 2, { what: "a second result" });
      const newest = results.filter((r) => r.key === "uid-0").at(-1)!;
      expect(p.latest("uid-0")!.startedAt).toBeGreaterThanOrEqual(newest.startedAt);
      expect(
        p
          .latestAll("shop")
          .map((r) => r.pod)
          .sort(),
      ).toEqual(["web-0", "web-1"]);
      expect(p.latestAll("elsewhere")).toEqual([]);

      p.remove(["uid-1"]);
      expect(p.latest("uid-1")).toBeUndefined();
      await delay(2_500); // a result that crossed the removal is not kept either
      expect(p.latest("uid-1")).toBeUndefined();
      expect(p.latestAll().map((r) => r.pod)).toEqual(["web-0"]);
    },
  );

  it(
    "reports a hostNetwork pod and a pod without IP as unchecked, by reason, and probes neither",
    { timeout: 20_000 },
    async () => {
      const { p, uncheckedMetric } = start();
      const host = pod(0, (x) => void (x.spec.hostNetwork = true));
      const noIp = pod(1, (x) => void delete x.status!.podIP);
      p.track(who(host), deepCheckTarget(policy, host, "new"));
      p.track(who(noIp), deepCheckTarget(policy, noIp, "new"));
      expect(p.size).toBe(0);
      expect(p.unchecked("shop").map((u) => [u.pod, u.reason])).toEqual([
        ["web-0", "HostNetwork"],
        ["web-1", "NoPodIP"],
      ]);
      expect(p.unchecked("shop")[0]!.message).toMatch(/hostNetwork/);
      expect(await uncheckedMetric("HostNetwork")).toBe(1);
      expect(await uncheckedMetric("NoPodIP")).toBe(1);

      // The pod gets its IP: checked from now on, no longer reported.
      p.track(who(pod(1)), deepCheckTarget(policy, pod(1), "new"));
      expect(p.unchecked().map((u) => u.pod)).toEqual(["web-0"]);
      expect(await uncheckedMetric("NoPodIP")).toBe(0);
      await waitFor(() => p.latest("uid-1") !== undefined, { what: "a result for the pod with an IP" });

      // A checked pod that loses what makes it checkable stops being probed and is reported.
      p.track(who(noIp), deepCheckTarget(policy, noIp, "new"));
      expect(p.size).toBe(0);
      expect(p.latest("uid-1")).toBeUndefined();
      await delay(300);
      const after = results.length;
      await delay(2_500); // longer than the interval
      expect(results.slice(after)).toEqual([]);
      expect(results.some((r) => r.key === "uid-0")).toBe(false);

      // Gone altogether: no longer reported either.
      p.remove(["uid-0", "uid-1"]);
      expect(p.unchecked()).toEqual([]);
      expect(await uncheckedMetric("HostNetwork")).toBe(0);
    },
  );
});
