import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  diffRelist,
  Informer,
  labelIndexer,
  type InformerOptions,
  type ListWatchClient,
} from "../../../src/kube/informer.ts";
import {
  resources,
  type KubeObject,
  type RawObject,
  type WatchEvent,
  type WatchQuery,
} from "../../../src/kube/client.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics, type HealthgateMetrics } from "../../../src/observability/metrics.ts";
import { FakeClock, settle } from "./fakeClock.ts";

function pod(name: string, resourceVersion: string, { uid = `uid-${name}`, app = "web" } = {}): RawObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: "shop",
      uid,
      resourceVersion,
      labels: { app },
      managedFields: [{ manager: "kubectl" }],
    },
    spec: { nodeName: "node-1", containers: [{ name: "web", image: "web:1" }] },
    status: { phase: "Running" },
  };
}

describe("diffRelist", () => {
  const a1 = pod("a", "1");
  const a2 = pod("a", "2");
  const aRecreated = pod("a", "3", { uid: "uid-a-2" });
  const b1 = pod("b", "1");
  const c1 = pod("c", "1");
  const map = (...objs: KubeObject[]) => new Map(objs.map((o) => [`shop/${o.metadata.name}`, o]));

  it.each([
    { name: "nothing cached, nothing listed", cached: map(), listed: map(), want: [] },
    { name: "unchanged resourceVersion is no change", cached: map(a1, b1), listed: map(a1, b1), want: [] },
    { name: "new object is an add", cached: map(a1), listed: map(a1, c1), want: [["add", c1]] },
    { name: "missing object is a delete", cached: map(a1, b1), listed: map(a1), want: [["delete", b1]] },
    { name: "new resourceVersion is an update", cached: map(a1), listed: map(a2), want: [["update", a2]] },
    {
      name: "same name, new uid: deleted and recreated unseen → delete then add",
      cached: map(a1),
      listed: map(aRecreated),
      want: [
        ["delete", a1],
        ["add", aRecreated],
      ],
    },
    {
      name: "deletes come first, then adds and updates in list order",
      cached: map(a1, b1),
      listed: map(c1, a2),
      want: [
        ["delete", b1],
        ["add", c1],
        ["update", a2],
      ],
    },
  ])("$name", ({ cached, listed, want }) => {
    expect(diffRelist(cached, listed).map((c) => [c.type, c.obj])).toEqual(want);
  });

  it("an update carries the cached object as `old`", () => {
    expect(diffRelist(map(a1), map(a2))).toEqual([{ type: "update", old: a1, obj: a2 }]);
  });
});

/** An API server in memory: lists in pages, and watches the test drives by hand. */
class FakeApi implements ListWatchClient {
  readonly objects = new Map<string, RawObject>();
  resourceVersion = 100;
  listCalls = 0;
  failLists: unknown[] = [];
  readonly watches: {
    query: WatchQuery;
    emit(type: WatchEvent["type"], object: RawObject): void;
    close(): void;
    fail(err: unknown): void;
  }[] = [];

  put(obj: RawObject): RawObject {
    this.objects.set(obj.metadata.name, obj);
    return obj;
  }

  async list(_ref: unknown, _ns: unknown, query: { limit?: number; continue?: string }) {
    this.listCalls++;
    const failure = this.failLists.shift();
    if (failure) throw failure;
    const all = [...this.objects.values()];
    const start = Number(query.continue ?? 0);
    const end = start + (query.limit ?? all.length);
    return {
      apiVersion: "v1",
      kind: "PodList",
      metadata: {
        resourceVersion: String(this.resourceVersion),
        continue: end < all.length ? String(end) : undefined,
      },
      items: structuredClone(all.slice(start, end)),
    };
  }

  watch(
    _ref: unknown,
    _ns: unknown,
    query: WatchQuery,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      this.watches.push({
        query,
        emit: (type, object) => onEvent({ type, object: structuredClone(object) }),
        close: resolve,
        fail: reject,
      });
    });
  }

  get currentWatch() {
    const watch = this.watches.at(-1);
    if (!watch) throw new Error("no watch open");
    return watch;
  }
}

interface Harness {
  api: FakeApi;
  clock: FakeClock;
  metrics: HealthgateMetrics;
  informer: Informer;
  events: string[];
}

async function startInformer(
  api: FakeApi,
  options: Partial<InformerOptions<KubeObject>> = {},
): Promise<Harness> {
  const clock = new FakeClock(0);
  const metrics = createMetrics();
  const informer = new Informer({
    client: api,
    resource: resources.pods,
    namespace: "shop",
    pageSize: 2,
    watchdogMs: 10_000,
    backoff: { baseMs: 1_000, capMs: 30_000 },
    metrics,
    logger: createLogger("silent"),
    clock,
    random: () => 0.5,
    ...options,
  });
  const events: string[] = [];
  informer.addHandlers({
    add: (obj) => events.push(`add ${obj.metadata.name}@${obj.metadata.resourceVersion}`),
    update: (old, obj) =>
      events.push(
        `update ${obj.metadata.name}@${old.metadata.resourceVersion}→${obj.metadata.resourceVersion}`,
      ),
    delete: (obj) => events.push(`delete ${obj.metadata.name}`),
  });
  informer.start();
  await settle();
  return { api, clock, metrics, informer, events };
}

async function counter(metrics: HealthgateMetrics, name: string, labels: Record<string, string> = {}) {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

function seeded(...names: string[]): FakeApi {
  const api = new FakeApi();
  for (const name of names) api.put(pod(name, "10"));
  return api;
}

describe("Informer", () => {
  it("lists in pages, then watches from the list's resourceVersion with bookmarks", async () => {
    const { api, informer, events } = await startInformer(seeded("a", "b", "c"));
    expect(api.listCalls).toBe(2);
    expect(informer.hasSynced()).toBe(true);
    expect(events).toEqual(["add a@10", "add b@10", "add c@10"]);
    expect(api.currentWatch.query).toMatchObject({ resourceVersion: "100", allowWatchBookmarks: true });
    await informer.stop();
  });

  it("caches the transformed object, without managedFields, deeply frozen", async () => {
    const transform = (obj: RawObject) => ({
      metadata: obj.metadata,
      spec: { nodeName: (obj.spec as { nodeName: string }).nodeName },
    });
    const { informer } = await startInformer(seeded("a"), { transform });
    const cached = informer.get("shop/a") as KubeObject & { spec: { nodeName: string } };
    expect(cached).toEqual({
      metadata: expect.not.objectContaining({ managedFields: expect.anything() }),
      spec: { nodeName: "node-1" },
    });
    expect(Object.isFrozen(cached) && Object.isFrozen(cached.metadata) && Object.isFrozen(cached.spec)).toBe(
      true,
    );
    expect(() => {
      cached.spec.nodeName = "elsewhere";
    }).toThrow(TypeError);
    await informer.stop();
  });

  it("turns watch events into add/update/delete and keeps indexes current", async () => {
    const { api, informer, events } = await startInformer(seeded("a", "b"), {
      indexers: { app: labelIndexer("app") },
    });
    events.length = 0;
    api.currentWatch.emit("ADDED", pod("c", "11", { app: "db" }));
    api.currentWatch.emit("MODIFIED", pod("a", "12", { app: "db" }));
    api.currentWatch.emit("DELETED", pod("b", "13"));
    expect(events).toEqual(["add c@11", "update a@10→12", "delete b"]);
    expect(
      informer
        .byIndex("app", "shop/db")
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(["a", "c"]);
    expect(informer.byIndex("app", "shop/web")).toEqual([]);
    expect(informer.keys().sort()).toEqual(["shop/a", "shop/c"]);
    await informer.stop();
  });

  it("re-watches from the last bookmark when the server ends a watch at its timeout, without counting a restart", async () => {
    const { api, clock, metrics, informer } = await startInformer(seeded("a"));
    api.currentWatch.emit("BOOKMARK", { metadata: { name: "", resourceVersion: "200" } });
    await clock.advance(7_000); // watchdog 10 s × (0.5 + 0.4 × 0.5) → timeoutSeconds 7
    api.currentWatch.close();
    await settle();
    expect(api.watches).toHaveLength(2);
    expect(api.currentWatch.query.resourceVersion).toBe("200");
    expect(api.listCalls).toBe(1);
    expect(await counter(metrics, "healthgate_watch_restarts_total")).toBe(0);
    await informer.stop();
  });

  it("on 410 Gone relists at once and emits only what changed", async () => {
    const { api, metrics, informer, events } = await startInformer(seeded("a", "b"));
    events.length = 0;
    api.put(pod("a", "20"));
    api.objects.delete("b");
    api.put(pod("c", "21"));
    api.currentWatch.fail(new ApiException(410, "too old resource version", {}, {}));
    await settle();
    expect(events).toEqual(["delete b", "update a@10→20", "add c@21"]);
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "gone" })).toBe(1);
    expect(await counter(metrics, "healthgate_watch_silent_changes_total")).toBe(0);
    await informer.stop();
  });

  it("after another error re-watches from the last resourceVersion after a jittered backoff, without relisting", async () => {
    const { api, clock, metrics, informer } = await startInformer(seeded("a"));
    api.currentWatch.emit("MODIFIED", pod("a", "150"));
    api.currentWatch.fail(new ApiException(500, "etcd leader changed", {}, {}));
    await clock.advance(499); // full jitter: 0.5 × 1 s
    expect(api.watches).toHaveLength(1);
    await clock.advance(1);
    expect(api.watches).toHaveLength(2);
    expect(api.currentWatch.query.resourceVersion).toBe("150");
    expect(api.listCalls).toBe(1);
    expect(await counter(metrics, "healthgate_watch_restarts_total")).toBe(1);
    await informer.stop();
  });

  it("waits as long as Retry-After says after a 429", async () => {
    const { api, clock, informer } = await startInformer(seeded("a"));
    api.currentWatch.fail(new ApiException(429, "too many requests", {}, { "retry-after": "7" }));
    await clock.advance(6_999);
    expect(api.watches).toHaveLength(1);
    await clock.advance(1);
    expect(api.watches).toHaveLength(2);
    await informer.stop();
  });

  it("backs off further while a watch keeps closing early, and resets once it delivers", async () => {
    const { api, clock, informer } = await startInformer(seeded("a"));
    api.currentWatch.close(); // failure 1: 0.5 × 1 s
    await clock.advance(500);
    api.currentWatch.close(); // failure 2: 0.5 × 2 s
    await clock.advance(999);
    expect(api.watches).toHaveLength(2);
    await clock.advance(1);
    expect(api.watches).toHaveLength(3);
    api.currentWatch.emit("MODIFIED", pod("a", "150"));
    api.currentWatch.close(); // healthy again: back to 0.5 × 1 s
    await clock.advance(500);
    expect(api.watches).toHaveLength(4);
    await informer.stop();
  });

  it("retries a failed list with backoff and labels the relist 'error'", async () => {
    const api = seeded("a");
    api.failLists.push(new ApiException(503, "unavailable", {}, {}));
    const { clock, metrics, informer } = await startInformer(api);
    expect(informer.hasSynced()).toBe(false);
    await clock.advance(500);
    expect(informer.hasSynced()).toBe(true);
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "initial" })).toBe(1);
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "error" })).toBe(1);
    await informer.stop();
  });

  it("a successful relist resets the backoff: the next failure waits the base delay again", async () => {
    const api = seeded("a");
    const unavailable = () => new ApiException(503, "unavailable", {}, {});
    api.failLists.push(unavailable(), unavailable(), unavailable());
    const { clock, informer } = await startInformer(api);
    await clock.advance(500 + 1_000 + 2_000); // three failed lists: 0.5 × 1, 2 and 4 s
    expect(informer.hasSynced()).toBe(true);
    expect(api.watches).toHaveLength(1);
    api.currentWatch.close(); // the first failure after a good list: 0.5 × 1 s, not 0.5 × 8 s
    await clock.advance(499);
    expect(api.watches).toHaveLength(1);
    await clock.advance(1);
    expect(api.watches).toHaveLength(2);
    await informer.stop();
  });

  it("keeps only what `keep` accepts; prune drops what it stops accepting; refilter fetches what it starts accepting", async () => {
    let wanted = new Set(["a"]);
    const { api, clock, metrics, informer, events } = await startInformer(seeded("a", "b"), {
      keep: (obj) => wanted.has(obj.metadata.name),
    });
    expect(informer.keys()).toEqual(["shop/a"]);
    api.currentWatch.emit("MODIFIED", pod("b", "11")); // never kept: no event
    api.currentWatch.emit("ADDED", pod("c", "12"));
    expect(events).toEqual(["add a@10"]);

    wanted = new Set(["b"]);
    informer.prune();
    expect(informer.keys()).toEqual([]);
    expect(events.at(-1)).toBe("delete a");

    informer.refilter();
    await clock.advance(0);
    expect(informer.keys()).toEqual(["shop/b"]);
    expect(events.at(-1)).toBe("add b@10"); // as the relist serves it
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "filter" })).toBe(1);
    await informer.stop();
  });

  it("a watch that answers 410 again right after its relist backs off instead of relisting in a loop", async () => {
    const { api, clock, informer } = await startInformer(seeded("a"));
    const gone = () => new ApiException(410, "too old resource version", {}, {});
    api.currentWatch.fail(gone()); // routine: relist at once
    await clock.advance(0);
    expect(api.listCalls).toBe(2);
    api.currentWatch.fail(gone()); // again at once: now 0.5 × 2 s
    await clock.advance(999);
    expect(api.listCalls).toBe(2);
    await clock.advance(1);
    expect(api.listCalls).toBe(3);
    await informer.stop();
  });

  it("relists a silent watch after the watchdog bound and counts what the watch missed", async () => {
    const { api, clock, metrics, informer, events } = await startInformer(seeded("a", "b"));
    events.length = 0;
    await clock.advance(6_000);
    api.currentWatch.emit("BOOKMARK", { metadata: { name: "", resourceVersion: "101" } }); // a sign of life
    api.put(pod("a", "30")); // …then changes the watch never delivers
    api.objects.delete("b");
    await clock.advance(9_999);
    expect(api.listCalls).toBe(1);
    await clock.advance(1);
    expect(api.listCalls).toBe(2);
    expect(events).toEqual(["delete b", "update a@10→30"]);
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "watchdog" })).toBe(1);
    expect(await counter(metrics, "healthgate_watch_silent_changes_total")).toBe(2);
    await informer.stop();
  });

  it("resyncs on its period when asked to", async () => {
    const { api, clock, metrics, informer } = await startInformer(seeded("a"), {
      resyncMs: 60_000,
      watchdogMs: 600_000,
    });
    await clock.advance(60_000);
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "resync" })).toBe(1);
    expect(api.watches).toHaveLength(2);
    await informer.stop();
  });

  it("keeps going when a handler throws", async () => {
    const { api, informer, events } = await startInformer(seeded("a"));
    informer.addHandlers({
      update: () => {
        throw new Error("handler bug");
      },
    });
    api.currentWatch.emit("MODIFIED", pod("a", "11"));
    api.currentWatch.emit("MODIFIED", pod("a", "12"));
    expect(events.slice(-2)).toEqual(["update a@10→11", "update a@11→12"]);
    expect(informer.get("shop/a")?.metadata.resourceVersion).toBe("12");
    await informer.stop();
  });

  it("stop() ends the watch and leaves no timers behind", async () => {
    const { api, clock, informer } = await startInformer(seeded("a"), { resyncMs: 60_000 });
    await informer.stop();
    expect(clock.pendingTimers).toBe(0);
    expect(api.watches).toHaveLength(1);
  });
});
