// Release pacing, pure and with a fake clock: which releases take a rollout slot, which wait,
// which need none, and when a slot frees — table tests with named cases.
import { describe, expect, it } from "vitest";
import type { Deployment } from "../../../src/api/k8s.ts";
import { RELEASED_LABEL } from "../../../src/policy/enforce.ts";
import {
  nextInLine,
  pace,
  queuedAhead,
  rolloutComplete,
  slotHeld,
  type PaceInput,
  type PacingSettings,
} from "../../../src/policy/pacing.ts";
import { ReleasePacer } from "../../../src/controller/pacing.ts";
import type { CachedTarget } from "../../../src/controller/world.ts";
import type { Clock } from "../../../src/kube/clock.ts";

const T0 = Date.parse("2026-12-04T10:00:00Z");
const settings: PacingSettings = { maxConcurrentRollouts: 2, slotTimeoutMs: 600_000 };

function deployment(
  over: {
    label?: string;
    generation?: number;
    observed?: number;
    replicas?: number;
    updated?: number;
    available?: number;
    statusReplicas?: number;
  } = {},
): Deployment {
  const replicas = over.replicas ?? 3;
  return {
    metadata: {
      name: "web",
      namespace: "shop",
      generation: over.generation ?? 2,
      labels: over.label ? { [RELEASED_LABEL]: over.label } : {},
    },
    spec: {
      replicas,
      selector: { matchLabels: { app: "web" } },
      template: { spec: { containers: [{ name: "web", image: "web:1" }] } },
    },
    status: {
      observedGeneration: over.observed ?? over.generation ?? 2,
      replicas: over.statusReplicas ?? replicas,
      updatedReplicas: over.updated ?? replicas,
      availableReplicas: over.available ?? replicas,
    },
  } as Deployment;
}

describe("rolloutComplete", () => {
  it.each([
    { name: "every replica updated and available", d: deployment(), want: true },
    {
      name: "the controller has not seen the latest spec",
      d: deployment({ generation: 3, observed: 2 }),
      want: false,
    },
    { name: "an old pod is still there", d: deployment({ statusReplicas: 4 }), want: false },
    { name: "not every replica updated", d: deployment({ updated: 2 }), want: false },
    { name: "an updated replica is not available yet", d: deployment({ available: 2 }), want: false },
    { name: "scaled to zero", d: deployment({ replicas: 0 }), want: true },
  ])("$name: $want", ({ d, want }) => {
    expect(rolloutComplete(d)).toBe(want);
  });
});

describe("slotHeld", () => {
  const slot = { revision: "r2", since: T0 };
  it.each([
    {
      name: "the release write has not landed (label names the previous revision): held even though complete",
      d: deployment({ label: "r1" }),
      now: T0 + 1_000,
      want: true,
    },
    { name: "landed and rolling", d: deployment({ label: "r2", available: 1 }), now: T0 + 1_000, want: true },
    { name: "landed and complete: freed", d: deployment({ label: "r2" }), now: T0 + 1_000, want: false },
    {
      name: "landed and complete, but admission did not apply it yet (a release write that came too early): held",
      d: deployment({ label: "r2" }),
      applied: false,
      now: T0 + 1_000,
      want: true,
    },
    {
      name: "held (never available) until just before the timeout",
      d: deployment({ label: "r2", available: 0 }),
      now: T0 + 599_999,
      want: true,
    },
    {
      name: "held or aborted past the timeout: freed",
      d: deployment({ label: "r2", available: 0 }),
      now: T0 + 600_000,
      want: false,
    },
    { name: "the Deployment is gone: freed", d: undefined, now: T0 + 1_000, want: false },
  ])("$name", ({ d, now, want, ...rest }) => {
    const applied = "applied" in rest ? (rest.applied as boolean) : true;
    expect(slotHeld(slot, d, applied, now, settings)).toBe(want);
  });
});

describe("pace", () => {
  const base: PaceInput = {
    settings,
    now: T0,
    revision: "r2",
    changesTemplate: true,
    rolling: false,
    inUse: 0,
    queuedAhead: 0,
  };
  it.each([
    {
      name: "a free slot and nobody ahead: released, taking a slot now",
      input: {},
      want: { release: true, reason: "SlotGranted", slot: { revision: "r2", since: T0 } },
    },
    {
      name: "one slot left",
      input: { inUse: 1 },
      want: { release: true, reason: "SlotGranted", slot: { revision: "r2", since: T0 } },
    },
    {
      name: "every slot in use: queued first in line",
      input: { inUse: 2 },
      want: { release: false, position: 1, inUse: 2 },
    },
    {
      name: "one slot free but one queued before: it goes first",
      input: { inUse: 1, queuedAhead: 1 },
      want: { release: false, position: 2, inUse: 1 },
    },
    {
      name: "a release that changes no template is not paced",
      input: { inUse: 2, queuedAhead: 5, changesTemplate: false },
      want: { release: true, reason: "NoTemplateChange" },
    },
    {
      name: "the Deployment rolls anyway (a user's write changed its template): rides along, no slot",
      input: { inUse: 2, queuedAhead: 5, rolling: true },
      want: { release: true, reason: "RidesAlong" },
    },
    {
      name: "its own slot is still held: the newer decision follows in it, since unchanged",
      input: { inUse: 2, ownSlot: { revision: "r1", since: T0 - 5_000 }, rolling: true },
      want: { release: true, reason: "SlotHeld", slot: { revision: "r2", since: T0 - 5_000 } },
    },
    {
      name: "its own release has landed (the template carries it) before the record says so: the slot it holds, since unchanged",
      input: { inUse: 2, ownSlot: { revision: "r2", since: T0 - 5_000 }, changesTemplate: false },
      want: { release: true, reason: "SlotHeld", slot: { revision: "r2", since: T0 - 5_000 } },
    },
    {
      name: "pacing off (0)",
      input: { settings: { ...settings, maxConcurrentRollouts: 0 }, inUse: 9 },
      want: { release: true, reason: "Unpaced" },
    },
  ])("$name", ({ input, want }) => {
    expect(pace({ ...base, ...input })).toEqual(want);
  });
});

describe("the queue", () => {
  const queue = [
    { key: "b/x", since: T0 + 2 },
    { key: "a/y", since: T0 + 1 },
    { key: "a/z", since: T0 + 1 },
  ];
  it("serves first come first, the key breaking ties", () => {
    expect(nextInLine(queue, 3)).toEqual(["a/y", "a/z", "b/x"]);
    expect(nextInLine(queue, 1)).toEqual(["a/y"]);
    expect(nextInLine(queue, 0)).toEqual([]);
    expect(queuedAhead(queue, { key: "b/x", since: T0 + 2 })).toBe(2);
    expect(queuedAhead(queue, { key: "new/one", since: T0 + 3 })).toBe(3);
    expect(queuedAhead(queue, { key: "a/y", since: T0 + 1 })).toBe(0);
  });
});

/** The controller's slots and queue over a fake clock and a fake cache. */
describe("ReleasePacer", () => {
  function harness(records: CachedTarget[] = [], released: Record<string, string> = {}) {
    let now = T0;
    const clock: Clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {} };
    const deployments = new Map<string, Deployment>();
    const woken: string[] = [];
    const notApplied = new Set<string>();
    const pacer = new ReleasePacer({
      settings,
      clock,
      deployment: (key) => deployments.get(key),
      applied: (key) => !notApplied.has(key),
      records: () => records,
      released: (key) => released[key],
      wake: (ns, name) => woken.push(`${ns}/${name}`),
    });
    return {
      pacer,
      deployments,
      woken,
      notApplied,
      advance: (ms: number) => (now += ms),
    };
  }

  it("grants two slots, queues the third and fourth in order, and hands slots on as rollouts complete or time out", () => {
    const h = harness();
    for (const k of ["ns/a", "ns/b", "ns/c", "ns/d"]) h.deployments.set(k, deployment({ label: "r1" }));
    expect(h.pacer.decide("ns/a", "r2", true)).toMatchObject({ release: true, reason: "SlotGranted" });
    h.advance(10);
    expect(h.pacer.decide("ns/b", "r2", true)).toMatchObject({ release: true, reason: "SlotGranted" });
    h.advance(10);
    expect(h.pacer.decide("ns/c", "r2", true)).toMatchObject({ release: false, position: 1, inUse: 2 });
    h.advance(10);
    expect(h.pacer.decide("ns/d", "r2", true)).toMatchObject({ release: false, position: 2, inUse: 2 });
    // d asks again: still second, its place kept
    expect(h.pacer.decide("ns/d", "r2", true)).toMatchObject({ release: false, position: 2 });
    expect([h.pacer.inUse(), h.pacer.queued()]).toEqual([2, 2]);

    // a's release lands and rolls: still held; a label that landed without the template
    // change (admission ran before its cache held the decision) holds it too; then completes:
    // c (first in line) is woken
    h.deployments.set("ns/a", deployment({ label: "r2", generation: 3, observed: 3, available: 1 }));
    h.pacer.tick();
    expect(h.woken).toEqual([]);
    h.notApplied.add("ns/a");
    h.deployments.set("ns/a", deployment({ label: "r2", generation: 2, observed: 2 }));
    h.pacer.tick();
    expect(h.woken).toEqual([]);
    h.notApplied.delete("ns/a");
    h.deployments.set("ns/a", deployment({ label: "r2", generation: 3, observed: 3 }));
    h.pacer.tick();
    expect(h.woken).toEqual(["ns/c"]);
    // d cannot jump the line while c has not taken the slot
    expect(h.pacer.decide("ns/d", "r2", true)).toMatchObject({ release: false, position: 2, inUse: 1 });
    expect(h.pacer.decide("ns/c", "r2", true)).toMatchObject({ release: true, reason: "SlotGranted" });

    // b is held (never available): its slot frees at the timeout, and d gets it
    h.deployments.set("ns/b", deployment({ label: "r2", generation: 3, observed: 3, available: 0 }));
    h.advance(599_000);
    expect(h.pacer.decide("ns/d", "r2", true)).toMatchObject({ release: false, position: 1 });
    h.advance(1_000);
    expect(h.pacer.decide("ns/d", "r2", true)).toMatchObject({ release: true, reason: "SlotGranted" });
    expect(h.pacer.queued()).toBe(0);
  });

  it("tells a queued Deployment to look again by the time the oldest slot times out", () => {
    const h = harness();
    for (const k of ["ns/a", "ns/b", "ns/c"]) h.deployments.set(k, deployment({ label: "r1" }));
    h.pacer.decide("ns/a", "r2", true);
    h.pacer.decide("ns/b", "r2", true);
    const queued = h.pacer.decide("ns/c", "r2", true);
    expect(queued).toMatchObject({ release: false, recheckMs: 30_000, queuedSince: T0 });
    h.advance(590_000);
    expect(h.pacer.decide("ns/c", "r2", true)).toMatchObject({
      release: false,
      recheckMs: 10_000,
      queuedSince: T0,
    });
  });

  it("gives a refused release's slot to the next in line (nothing rolls)", () => {
    const h = harness();
    for (const k of ["ns/a", "ns/b", "ns/c"]) h.deployments.set(k, deployment({ label: "r1" }));
    h.pacer.decide("ns/a", "r2", true);
    h.pacer.decide("ns/b", "r2", true);
    expect(h.pacer.decide("ns/c", "r2", true)).toMatchObject({ release: false, position: 1 });
    h.pacer.refused("ns/a");
    expect(h.woken).toEqual(["ns/c"]);
    expect([h.pacer.inUse(), h.pacer.queued()]).toEqual([1, 1]);
  });

  it("frees a forgotten Deployment's slot and queue place at once", () => {
    const h = harness();
    for (const k of ["ns/a", "ns/b", "ns/c"]) h.deployments.set(k, deployment({ label: "r1" }));
    h.pacer.decide("ns/a", "r2", true);
    h.pacer.decide("ns/b", "r2", true);
    h.pacer.decide("ns/c", "r2", true);
    h.pacer.forget("ns/a");
    expect(h.woken).toEqual(["ns/c"]);
    h.pacer.settled("ns/c");
    expect(h.pacer.queued()).toBe(0);
  });

  it("resumes from the records: slots of releases still rolling, and the queue in its order", () => {
    const record = (name: string, status: CachedTarget["status"]): CachedTarget => ({
      apiVersion: "healthgate.io/v1alpha1",
      kind: "HealthTarget",
      metadata: { name, namespace: "ns" },
      status,
    });
    const h = harness(
      [
        record("a", { pacing: { state: "Released", since: new Date(T0 - 1_000).toISOString() } }),
        record("b", { pacing: { state: "Released", since: new Date(T0 - 2_000).toISOString() } }),
        record("done", { pacing: { state: "Released", since: new Date(T0 - 3_000).toISOString() } }),
        // Released with a slot, but the index names nothing for it: no slot to resume.
        record("unindexed", { pacing: { state: "Released", since: new Date(T0 - 500).toISOString() } }),
        record("q2", {
          pacing: { state: "Queued", pendingRevision: "r2", since: new Date(T0 - 10).toISOString() },
        }),
        record("q1", {
          pacing: { state: "Queued", pendingRevision: "r2", since: new Date(T0 - 20).toISOString() },
        }),
      ],
      // The revisions the release index names (it holds the released decisions; records do not).
      { "ns/a": "r2", "ns/b": "r2", "ns/done": "r2" },
    );
    h.deployments.set("ns/a", deployment({ label: "r2", available: 1 }));
    h.deployments.set("ns/b", deployment({ label: "r2", available: 0 }));
    h.deployments.set("ns/done", deployment({ label: "r2" }));
    // Rolling like b, but nothing released for it: it holds no slot (else inUse would be 3).
    h.deployments.set("ns/unindexed", deployment({ label: "r2", available: 0 }));
    for (const k of ["ns/q1", "ns/q2", "ns/new"]) h.deployments.set(k, deployment({ label: "r1" }));
    expect(h.pacer.decide("ns/new", "r2", true)).toMatchObject({ release: false, position: 3, inUse: 2 });
    expect(h.pacer.decide("ns/q1", "r2", true)).toMatchObject({ release: false, position: 1 });
  });
});
