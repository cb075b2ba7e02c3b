import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { KubeObject, RawObject, WatchEvent } from "../../../src/kube/client.ts";
import { LeaderElector, microTime, type Lease, type LeaseClient } from "../../../src/kube/leaderElection.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { FakeClock, settle } from "./fakeClock.ts";

/**
 * One Lease with the API server's optimistic concurrency; `down` makes every call fail. It stands
 * in for kube-apiserver so that time can be stepped (FakeClock); the real server's Lease
 * semantics are exercised by test/integration/runtime.test.ts and resilience.test.ts.
 */
class LeaseStore implements LeaseClient {
  lease: Lease | undefined;
  private version = 1;
  down = false;
  private readonly watchers = new Set<(event: WatchEvent) => void>();
  /** LeaseClient.watch is optional: without it, candidates only poll. */
  declare watch?: LeaseClient["watch"];

  /** Adds a watch: the current Lease first, then every change, until the signal aborts. */
  withWatch(): this {
    this.watch = (_ref, _ns, _query, onEvent, signal) => {
      this.check();
      if (this.lease) onEvent({ type: "ADDED", object: structuredClone(this.lease) as unknown as RawObject });
      this.watchers.add(onEvent);
      return new Promise((resolve) =>
        signal.addEventListener("abort", () => resolve(void this.watchers.delete(onEvent)), { once: true }),
      );
    };
    return this;
  }

  async get<T extends KubeObject>(): Promise<T> {
    this.check();
    if (!this.lease) throw new ApiException(404, "not found", {}, {});
    return structuredClone(this.lease) as unknown as T;
  }

  async create<T extends KubeObject>(obj: T): Promise<T> {
    this.check();
    if (this.lease) throw new ApiException(409, "already exists", {}, {});
    return this.store(obj);
  }

  async replace<T extends KubeObject>(obj: T): Promise<T> {
    this.check();
    if (obj.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) {
      throw new ApiException(409, "the object has been modified", {}, {});
    }
    return this.store(obj);
  }

  get holder(): string | null | undefined {
    return this.lease?.spec?.holderIdentity;
  }

  private store<T extends KubeObject>(obj: T): T {
    this.lease = structuredClone(obj) as Lease;
    this.lease.metadata.resourceVersion = String(++this.version);
    for (const notify of this.watchers)
      notify({ type: "MODIFIED", object: structuredClone(this.lease) as unknown as RawObject });
    return structuredClone(this.lease) as unknown as T;
  }

  private check(): void {
    if (this.down) throw new Error("connection refused");
  }
}

function elector(store: LeaseStore, clock: FakeClock, identity: string) {
  const log: string[] = [];
  let signal: AbortSignal | undefined;
  const metrics = createMetrics();
  const le = new LeaderElector({
    client: store,
    namespace: "healthgate-system",
    name: "healthgate",
    identity,
    onStartedLeading: (s) => {
      signal = s;
      log.push("started");
    },
    onStoppedLeading: () => void log.push("stopped"),
    metrics,
    logger: createLogger("silent"),
    clock,
    random: () => 0.5,
  });
  return {
    le,
    log,
    metrics,
    get signal() {
      return signal;
    },
  };
}

/** "a" leads and "b" has been standing by for 10 s. */
async function leaderAndStandby(store: LeaseStore, clock: FakeClock) {
  const a = elector(store, clock, "a");
  const b = elector(store, clock, "b");
  a.le.start();
  await settle();
  b.le.start();
  await clock.advance(10_000);
  return { a, b };
}

describe("microTime", () => {
  it("writes six fractional digits, as metav1.MicroTime requires", () => {
    expect(microTime(Date.UTC(2025, 0, 2, 3, 4, 5, 678))).toBe("2025-01-02T03:04:05.678000Z");
  });
});

describe("LeaderElector", () => {
  it("creates the lease when there is none and starts leading", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = elector(store, clock, "a");
    a.le.start();
    await settle();
    expect(a.le.isLeader()).toBe(true);
    expect(a.log).toEqual(["started"]);
    expect(store.lease?.spec).toMatchObject({
      holderIdentity: "a",
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
    });
    expect((await a.metrics.leader.get()).values[0]?.value).toBe(1);
    await a.le.release();
  });

  it("keeps a standby waiting while the leader renews, and renews every retry period", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = elector(store, clock, "a");
    const b = elector(store, clock, "b");
    a.le.start();
    await settle();
    b.le.start();
    await clock.advance(60_000);
    expect([a.le.isLeader(), b.le.isLeader()]).toEqual([true, false]);
    const renewedAgoMs = clock.now() - Date.parse(store.lease?.spec?.renewTime ?? "");
    expect(renewedAgoMs).toBeLessThanOrEqual(2_000);
    await a.le.release();
    await b.le.release();
  });

  it("hands over at once on release: the holder is emptied and a standby takes the lease", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const { a, b } = await leaderAndStandby(store, clock);
    await a.le.release();
    expect(a.log).toEqual(["started", "stopped"]);
    expect(a.signal?.aborted).toBe(true);
    expect(store.holder ?? "").toBe("");
    await clock.advance(2_000 * 2.2); // the standby's longest poll
    expect(b.le.isLeader()).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    await b.le.release();
  });

  it("with a watch on the lease, a standby takes a released lease without waiting for its poll", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore().withWatch();
    const { a, b } = await leaderAndStandby(store, clock);
    expect(b.le.isLeader()).toBe(false);
    await a.le.release();
    await settle(); // no time passes
    expect(b.le.isLeader()).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    await b.le.release();
  });

  it("when the lease cannot be watched (not granted), a standby still takes a released lease at its next poll", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    store.watch = () => Promise.reject(new Error("leases.coordination.k8s.io is forbidden"));
    const { a, b } = await leaderAndStandby(store, clock);
    await a.le.release();
    await settle();
    expect(b.le.isLeader()).toBe(false); // no watch: nothing wakes it early
    await clock.advance(2_000 * 2.2); // the standby's longest poll
    expect(b.le.isLeader()).toBe(true);
    await b.le.release();
  });

  it("with a watch on the lease, a standby takes an abandoned lease as soon as it expires", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore().withWatch();
    const { a, b } = await leaderAndStandby(store, clock);
    // a dies: it renews no more (its last renewal is the lease's renewTime).
    const replace = store.replace.bind(store);
    store.replace = async (obj) => {
      if ((obj as Lease).spec?.holderIdentity === "a") throw new Error("a is gone");
      return replace(obj);
    };
    const lastRenewal = Date.parse(store.lease!.spec!.renewTime!);
    await clock.advance(lastRenewal + 15_000 - clock.now() - 1);
    expect(b.le.isLeader()).toBe(false);
    await clock.advance(2); // not a jittered poll (up to 4.4 s) later
    expect(b.le.isLeader()).toBe(true);
    await a.le.release();
    await b.le.release();
  });

  it("takes over an abandoned lease only after the lease duration, measured on its own clock", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = elector(store, clock, "a");
    const b = elector(store, clock, "b");
    a.le.start();
    await settle();
    b.le.start();
    await settle();
    // a is cut off from the API server; b still reaches it.
    const replace = store.replace.bind(store);
    store.replace = async (obj) => {
      if ((obj as Lease).spec?.holderIdentity === "a") throw new Error("a is partitioned");
      return replace(obj);
    };
    await clock.advance(14_000);
    expect(b.le.isLeader()).toBe(false);
    await clock.advance(6_000);
    expect(b.le.isLeader()).toBe(true);
    expect(a.le.isLeader()).toBe(false);
    await a.le.release();
    await b.le.release();
  });

  it("stops acting at the renew deadline, before the lease expires for anyone else", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = elector(store, clock, "a");
    a.le.start();
    await settle();
    const lastRenewal = clock.now();
    store.down = true;
    await clock.advance(9_999);
    expect(a.signal?.aborted).toBe(false);
    await clock.advance(1);
    expect(a.signal?.aborted).toBe(true);
    expect(a.log).toEqual(["started", "stopped"]);
    expect(clock.now() - lastRenewal).toBeLessThan(15_000);
    store.down = false;
    await clock.advance(5_000);
    expect(a.le.isLeader()).toBe(true); // still its lease: it takes it back
    expect(a.log).toEqual(["started", "stopped", "started"]);
    await a.le.release();
  });

  it("starts a new term only after the previous one has fully stopped", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const log: string[] = [];
    let finishDraining = () => {};
    const le = new LeaderElector({
      client: store,
      namespace: "healthgate-system",
      name: "healthgate",
      identity: "a",
      onStartedLeading: () => void log.push("started"),
      // The first term's shutdown takes a while (reconciles in flight finishing).
      onStoppedLeading: () =>
        log.length === 1
          ? new Promise<void>((resolve) => {
              finishDraining = () => {
                log.push("drained");
                resolve();
              };
            })
          : undefined,
      metrics: createMetrics(),
      logger: createLogger("silent"),
      clock,
      random: () => 0.5,
    });
    le.start();
    await settle();
    store.down = true;
    await clock.advance(10_000); // the renew deadline passes: the term ends, and drains
    expect(le.isLeader()).toBe(false);
    store.down = false;
    await clock.advance(20_000); // the lease is still ours to take, but the old term has not stopped
    expect(log).toEqual(["started"]);
    expect(store.holder).toBe("a");
    finishDraining();
    await clock.advance(2_000);
    expect(log).toEqual(["started", "drained", "started"]);
    expect(le.isLeader()).toBe(true);
    await le.release();
  });

  it("steps down at once when another replica has taken the lease (409, re-read)", async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = elector(store, clock, "a");
    a.le.start();
    await settle();
    const current = await store.get<Lease>();
    await store.replace({ ...current, spec: { ...current.spec, holderIdentity: "intruder" } });
    await clock.advance(2_000);
    expect(a.le.isLeader()).toBe(false);
    expect(a.signal?.aborted).toBe(true);
    await a.le.release();
  });

  it("refuses timings that cannot be safe", () => {
    const make = () =>
      new LeaderElector({
        client: new LeaseStore(),
        namespace: "ns",
        name: "l",
        identity: "a",
        leaseDurationMs: 10_000,
        renewDeadlineMs: 10_000,
        onStartedLeading: () => {},
        onStoppedLeading: () => {},
        metrics: createMetrics(),
        logger: createLogger("silent"),
      });
    expect(make).toThrow(/leaseDuration > renewDeadline > retryPeriod/);
  });
});
