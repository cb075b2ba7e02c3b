// The runtime against a real API server: informers (paging, events, a broken and a silent
// watch), leader election between two electors, and server-side apply.
import { afterEach, describe, expect, it } from "vitest";
import { KubeClient, resources, type KubeObject, type RawObject } from "../../src/kube/client.ts";
import { eventFor } from "../../src/kube/events.ts";
import { Informer, type ListWatchClient } from "../../src/kube/informer.ts";
import { LeaderElector, type Lease } from "../../src/kube/leaderElection.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createMetrics, type HealthgateMetrics } from "../../src/observability/metrics.ts";
import { testKubeConfig, useTestNamespace } from "../support/kube.ts";
import { waitFor } from "../support/waitFor.ts";

const logger = createLogger("silent");
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function client(metrics: HealthgateMetrics = createMetrics()): KubeClient {
  return new KubeClient(testKubeConfig(), { metrics });
}

function lease(namespace: string, name: string, holderIdentity = "nobody"): Lease {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { namespace, name },
    spec: { holderIdentity },
  };
}

async function counter(metrics: HealthgateMetrics, name: string, labels: Record<string, string> = {}) {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

/** An informer over the namespace's Leases that records what its handlers saw. */
function leaseInformer(namespace: string, source: ListWatchClient, options: { watchdogMs?: number } = {}) {
  const metrics = createMetrics();
  const events: string[] = [];
  const informer = new Informer<Lease>({
    client: source,
    resource: resources.leases,
    namespace,
    pageSize: 2,
    transform: (obj: RawObject) => ({ metadata: obj.metadata, spec: (obj as Lease).spec }),
    metrics,
    logger,
    ...options,
  });
  informer.addHandlers({
    add: (obj) => events.push(`add ${obj.metadata.name}`),
    update: (_old, obj) => events.push(`update ${obj.metadata.name} ${obj.spec?.holderIdentity}`),
    delete: (obj) => events.push(`delete ${obj.metadata.name}`),
  });
  informer.start();
  cleanups.push(() => informer.stop());
  return { informer, events, metrics };
}

describe("Informer against a real API server", () => {
  const ns = useTestNamespace();

  it("lists in pages, then sees adds, updates and deletes through its watch", async () => {
    const kube = client();
    for (const name of ["a", "b", "c"]) await kube.create(lease(ns.name, name));
    const { informer, events, metrics } = leaseInformer(ns.name, kube);
    await informer.waitForSync();
    expect(informer.keys().sort()).toEqual([`${ns.name}/a`, `${ns.name}/b`, `${ns.name}/c`]);
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "initial" })).toBe(1);

    await kube.create(lease(ns.name, "d"));
    const b = await kube.get<Lease>(resources.leases, { namespace: ns.name, name: "b" });
    await kube.replace({ ...b, spec: { holderIdentity: "someone" } });
    await kube.delete(resources.leases, { namespace: ns.name, name: "c" });

    await waitFor(() => events.includes("delete c") && events, { what: "the informer to see the delete" });
    expect(events.slice(3)).toEqual(["add d", "update b someone", "delete c"]);
    expect(informer.get(`${ns.name}/b`)?.metadata.managedFields).toBeUndefined();
  });

  it("resumes a quiet watch the server ended at its timeout without counting a restart or relisting", async () => {
    const kube = client();
    let watches = 0;
    const counting: ListWatchClient = {
      list: (...args) => kube.list(...args),
      watch: (...args) => {
        watches++;
        return kube.watch(...args);
      },
    };
    // A 4 s watchdog asks the server for 2–3 s watches.
    const { informer, events, metrics } = leaseInformer(ns.name, counting, { watchdogMs: 4_000 });
    await informer.waitForSync();
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    expect(watches).toBeGreaterThanOrEqual(3);
    expect(await counter(metrics, "healthgate_watch_restarts_total")).toBe(0);
    expect(await counter(metrics, "healthgate_watch_relists_total")).toBe(1);
    await kube.create(lease(ns.name, "still-watching"));
    await waitFor(() => events.includes("add still-watching"), { what: "the resumed watch to deliver" });
  });

  it("recovers from a watch that breaks mid-stream and replays what changed while it was down", async () => {
    const kube = client();
    let watches = 0;
    // The first watch dies like a reset connection; a lease appears before the informer re-watches.
    const flaky: ListWatchClient = {
      list: (...args) => kube.list(...args),
      watch: async (ref, namespace, query, onEvent, signal) => {
        if (watches++ > 0) return kube.watch(ref, namespace, query, onEvent, signal);
        const cut = new AbortController();
        const watching = kube.watch(ref, namespace, query, onEvent, AbortSignal.any([signal, cut.signal]));
        await new Promise((resolve) => setTimeout(resolve, 300));
        cut.abort();
        await watching.catch(() => {});
        await kube.create(lease(ns.name, "while-disconnected"));
        throw new Error("socket hang up");
      },
    };
    const { informer, events, metrics } = leaseInformer(ns.name, flaky);
    await informer.waitForSync();
    await waitFor(() => events.includes("add while-disconnected"), {
      what: "the informer to see the new lease",
    });
    expect(await counter(metrics, "healthgate_watch_restarts_total")).toBe(1);
    expect(await counter(metrics, "healthgate_watch_relists_total")).toBe(1);
  });

  it("relists a watch that went silent and counts the changes it missed", async () => {
    const kube = client();
    let watches = 0;
    // The first watch hangs without a byte, like a half-open connection.
    const silent: ListWatchClient = {
      list: (...args) => kube.list(...args),
      watch: (ref, namespace, query, onEvent, signal) => {
        if (watches++ > 0) return kube.watch(ref, namespace, query, onEvent, signal);
        return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
      },
    };
    const { informer, events, metrics } = leaseInformer(ns.name, silent, { watchdogMs: 2_000 });
    await informer.waitForSync();
    await kube.create(lease(ns.name, "missed"));
    await waitFor(() => events.includes("add missed"), { what: "the watchdog relist to find the lease" });
    expect(await counter(metrics, "healthgate_watch_relists_total", { reason: "watchdog" })).toBe(1);
    expect(await counter(metrics, "healthgate_watch_silent_changes_total")).toBe(1);
  });
});

describe("LeaderElector against a real API server", () => {
  const ns = useTestNamespace();

  function candidate(identity: string) {
    const state = { leading: false, signal: undefined as AbortSignal | undefined };
    const elector = new LeaderElector({
      client: client(),
      namespace: ns.name,
      name: "healthgate",
      identity,
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 500,
      onStartedLeading: (signal) => {
        state.leading = true;
        state.signal = signal;
      },
      onStoppedLeading: () => {
        state.leading = false;
      },
      metrics: createMetrics(),
      logger,
    });
    elector.start();
    cleanups.push(() => elector.release());
    return { elector, state };
  }

  it("elects one leader, keeps the other standing by, and hands over at once on release", async () => {
    const a = candidate("replica-a");
    await waitFor(() => a.elector.isLeader(), { what: "replica-a to lead" });
    const b = candidate("replica-b");
    await new Promise((resolve) => setTimeout(resolve, 4_000)); // longer than the lease duration
    expect([a.elector.isLeader(), b.elector.isLeader()]).toEqual([true, false]);

    const held = await client().get<Lease>(resources.leases, { namespace: ns.name, name: "healthgate" });
    const heldUntil = Date.parse(held.spec?.renewTime ?? "") + (held.spec?.leaseDurationSeconds ?? 0) * 1000;
    await a.elector.release();
    expect(a.state).toMatchObject({ leading: false });
    expect(a.state.signal?.aborted).toBe(true);
    // The lease lasts 3 s, but a released lease has no holder: replica-b takes it at its next
    // poll. Proving "at once" without a timing assertion: the Lease records that b acquired it
    // before the old holder's lease would have expired.
    await waitFor(() => b.elector.isLeader(), { what: "replica-b to take over", timeoutMs: 10_000 });

    const stored = await client().get<Lease>(resources.leases, { namespace: ns.name, name: "healthgate" });
    expect(stored.spec).toMatchObject({ holderIdentity: "replica-b", leaseTransitions: 1 });
    expect(Date.parse(stored.spec?.acquireTime ?? "")).toBeLessThan(heldUntil);
  });
});

describe("server-side apply against a real API server", () => {
  const ns = useTestNamespace();

  const deployment = (namespace: string): KubeObject & Record<string, unknown> => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace, labels: { app: "web" } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "web" } },
      template: {
        metadata: { labels: { app: "web" } },
        spec: { containers: [{ name: "web", image: "web:1" }] },
      },
    },
  });

  // A Lease, because no controller writes to it: a Deployment's RV also moves with its status.
  it("creates with apply, and a second identical apply changes nothing", async () => {
    const metrics = createMetrics();
    const kube = client(metrics);
    const first = await kube.applyObject(lease(ns.name, "applied", "me"), {
      fieldManager: "healthgate-test",
    });
    const second = await kube.applyObject(lease(ns.name, "applied", "me"), {
      fieldManager: "healthgate-test",
    });
    expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    expect(second.metadata.managedFields?.map((f) => f.manager)).toEqual(["healthgate-test"]);
    expect(await counter(metrics, "healthgate_api_requests_total", { verb: "apply", code: "201" })).toBe(1);
    expect(await counter(metrics, "healthgate_api_requests_total", { verb: "apply", code: "200" })).toBe(1);
  });

  it("applies a Deployment, then a condition on its status subresource under another field manager", async () => {
    const kube = client();
    const created = await kube.applyObject(deployment(ns.name), { fieldManager: "healthgate-test" });
    expect(created.metadata.generation).toBe(1);
    const condition = { type: "healthgate.io/Ready", status: "True", reason: "Compliant", message: "ok" };
    const applied = await kube.applyObject(
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "web", namespace: ns.name },
        status: { conditions: [condition] },
      },
      { fieldManager: "healthgate-status", subresource: "status" },
    );
    expect((applied as { status?: { conditions?: unknown[] } }).status?.conditions).toContainEqual(
      expect.objectContaining(condition),
    );
  });

  it("a write that discards its reply lands, reads each reply to its end, and still reports refusals", async () => {
    const kube = client();
    await kube.applyObject(deployment(ns.name), { fieldManager: "healthgate-test" });
    // Twenty in a row over the client's connections: a reply left unread would hold its
    // connection and stall the writes after it.
    for (let i = 0; i < 20; i++) {
      await kube.applyDiscardingReply(
        {
          apiVersion: "apps/v1",
          kind: "Deployment",
          metadata: { name: "web", namespace: ns.name },
          status: {
            conditions: [{ type: "healthgate.io/Ready", status: "True", reason: "R", message: `#${i}` }],
          },
        } as KubeObject,
        { fieldManager: "healthgate-status", subresource: "status", force: true },
      );
    }
    const stored = await kube.get<KubeObject & { status?: { conditions?: { message?: string }[] } }>(
      resources.deployments,
      { namespace: ns.name, name: "web" },
    );
    expect(stored.status?.conditions?.map((c) => c.message)).toContain("#19");
    await expect(
      kube.applyDiscardingReply(
        {
          apiVersion: "apps/v1",
          kind: "Deployment",
          metadata: { name: "absent", namespace: ns.name },
          status: {},
        } as KubeObject,
        { fieldManager: "healthgate-status", subresource: "status" },
      ),
    ).rejects.toMatchObject({ code: 404 });
  });

  it("reports API errors as ApiException with the server's reason", async () => {
    const kube = client();
    await expect(
      kube.get(resources.deployments, { namespace: ns.name, name: "absent" }),
    ).rejects.toMatchObject({
      code: 404,
    });
  });
});

describe("Events against a real API server", () => {
  const ns = useTestNamespace();

  it("a long note of multi-byte characters is cut to the server's 1,024-byte limit and accepted", async () => {
    // Given a note of 600 "—" (3 bytes each: 1,800 bytes, but only 600 UTF-16 units)
    const note = "—".repeat(600);
    const regarding = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: ns.name } };
    const body = eventFor(regarding, "Normal", "Test", note, {
      identity: "healthgate-test",
      now: new Date(),
      random: 0.5,
    });

    // When it is recorded
    const created = await client().create(body);

    // Then the server accepted it, cut at a character boundary and marked as cut
    const stored = (created as { note?: string }).note ?? "";
    expect(Buffer.byteLength(stored, "utf8")).toBeLessThanOrEqual(1024);
    expect(stored).toMatch(/^—+…$/);
  });

  it("an Event created without reading its reply is stored", async () => {
    const regarding = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: ns.name } };
    const body = eventFor(regarding, "Normal", "Test", "created by createDiscardingReply", {
      identity: "healthgate-test",
      now: new Date(),
      random: 0.25,
    });
    await client().createDiscardingReply(body);
    const stored = await client().get<KubeObject & { note?: string }>(resources.events, {
      namespace: ns.name,
      name: body.metadata.name!,
    });
    expect(stored.note).toBe("created by createDiscardingReply");
  });
});
