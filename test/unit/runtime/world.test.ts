// The operator's caches: every informer relists on the period `--resync-seconds` asks for.
// The list/watch client stands in for kube-apiserver so that time can be stepped (FakeClock);
// the informer's behaviour against the real server is in test/integration/runtime.test.ts.
import { describe, expect, it } from "vitest";
import type { RawObject, WatchEvent } from "../../../src/kube/client.ts";
import type { ListWatchClient } from "../../../src/kube/informer.ts";
import { createWorld } from "../../../src/controller/world.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { FakeClock, settle } from "./fakeClock.ts";

/** Empty lists; watches that stay open (quiet) until aborted. */
const quietApi: ListWatchClient = {
  list: async () => ({
    apiVersion: "v1",
    kind: "List",
    metadata: { resourceVersion: "1" },
    items: [] as RawObject[],
  }),
  watch: (_ref, _ns, _query, _onEvent: (event: WatchEvent) => void, signal: AbortSignal) =>
    new Promise<void>((_resolve, reject) =>
      signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
    ),
};

async function resyncs(metrics: ReturnType<typeof createMetrics>): Promise<Map<string, number>> {
  const metric = await metrics.registry.getSingleMetric("healthgate_watch_relists_total")?.get();
  return new Map(
    (metric?.values ?? [])
      .filter((v) => v.labels.reason === "resync")
      .map((v) => [String(v.labels.resource), v.value]),
  );
}

describe("createWorld", () => {
  it("relists every informer on the resync period", async () => {
    const clock = new FakeClock();
    const metrics = createMetrics();
    const world = createWorld({
      client: quietApi,
      metrics,
      logger: createLogger("silent"),
      watchdogMs: 3_600_000,
      resyncMs: 60_000,
      clock,
    });
    world.start();
    await settle();
    expect(world.hasSynced()).toBe(true);
    await clock.advance(60_000);
    const counted = await resyncs(metrics);
    expect([...counted.keys()].sort()).toEqual([
      "deployments",
      "healthpolicies",
      "healthreleases",
      "healthtargets",
      "horizontalpodautoscalers",
      "nodes",
      "poddisruptionbudgets",
      "pods",
      "replicasets",
      "services",
    ]);
    expect([...counted.values()].every((n) => n === 1)).toBe(true);
    await world.stop();
  });

  it("computes node zones once per version of the node cache", async () => {
    const node = (zone: string, resourceVersion: string): RawObject => ({
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: "node-1",
        uid: "n1",
        resourceVersion,
        labels: { "topology.kubernetes.io/zone": zone },
      },
    });
    let nodes = [node("zone-a", "1")];
    const api: ListWatchClient = {
      ...quietApi,
      list: async (ref) => ({
        apiVersion: "v1",
        kind: "List",
        metadata: { resourceVersion: "1" },
        items: ref.plural === "nodes" ? nodes : [],
      }),
    };
    const clock = new FakeClock();
    const world = createWorld({
      client: api,
      metrics: createMetrics(),
      logger: createLogger("silent"),
      watchdogMs: 3_600_000,
      resyncMs: 60_000,
      clock,
    });
    world.start();
    await settle();
    const first = world.nodeZones();
    expect(first).toEqual({ "node-1": "zone-a" });
    expect(world.nodeZones()).toBe(first); // nothing changed: the same object, not recomputed
    nodes = [node("zone-b", "2")];
    await clock.advance(60_000); // the resync relist brings the change
    expect(world.nodeZones()).not.toBe(first);
    expect(world.nodeZones()).toEqual({ "node-1": "zone-b" });
    await world.stop();
  });
});
