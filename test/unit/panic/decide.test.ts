// Panic mode's decision, table by table, with a fake clock: enter below the floor; refuse while
// gated pods are held, pods terminate, during a gated rollout, or for a shared Service; leave once readiness has
// stayed above the floor for the hold, before a gated step, or when panic is disabled; stop when
// another field manager takes the flag back.
import { describe, expect, it } from "vitest";
import type { PanicState } from "../../../src/api/v1alpha1/index.ts";
import {
  belowFloor,
  decidePanic,
  readyPercent,
  type PanicInput,
  type PanicService,
} from "../../../src/policy/panic/decide.ts";

const T0 = new Date("2026-12-04T10:00:00Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

const settings = { floorPercent: 50, holdSeconds: 60 };
const web: PanicService = { name: "web", publishes: false, ownedByPanic: false };
const webOurs: PanicService = { name: "web", publishes: true, ownedByPanic: true };

/** The pool reached the floor once: panic may start. */
const armed: PanicState = {
  phase: "Inactive",
  reason: "Armed",
  message: "…",
  since: iso(at(-3600)),
  readyPercent: 100,
};

const input = (over: Partial<PanicInput> = {}): PanicInput => ({
  settings,
  servingPods: 4,
  desiredReplicas: 4,
  readyPods: 4,
  heldPods: [],
  terminatingPods: [],
  gatedRollout: false,
  services: [web],
  previous: armed,
  now: T0,
  ...over,
});

const panicking = (over: Partial<PanicState> = {}): PanicState => ({
  phase: "Panicking",
  reason: "BelowFloor",
  message: "…",
  since: iso(T0),
  readyPercent: 25,
  services: [{ name: "web", original: false }],
  ...over,
});

describe("readyPercent and belowFloor", () => {
  it.each([
    { name: "1 of 4 = 25%, below 50", ready: 1, serving: 4, floor: 50, percent: 25, below: true },
    {
      name: "2 of 4 = 50%, at the floor is not below",
      ready: 2,
      serving: 4,
      floor: 50,
      percent: 50,
      below: false,
    },
    {
      name: "1 of 3 = 33.3% rounds down, below 34",
      ready: 1,
      serving: 3,
      floor: 34,
      percent: 33,
      below: true,
    },
    { name: "1 of 3 = 33.3% is above 33", ready: 1, serving: 3, floor: 33, percent: 33, below: false },
    {
      name: "no serving pod: nothing to spread over",
      ready: 0,
      serving: 0,
      floor: 50,
      percent: 0,
      below: false,
    },
  ])("$name", ({ ready, serving, floor, percent, below }) => {
    expect(readyPercent(ready, serving)).toBe(percent);
    expect(belowFloor(ready, serving, floor)).toBe(below);
  });
});

describe("decidePanic: entering", () => {
  it.each<{ name: string; in: Partial<PanicInput>; phase?: string; reason?: string; publish: string[] }>([
    {
      name: "above the floor: nothing new recorded",
      in: { readyPods: 3 },
      phase: "Inactive",
      reason: "Armed",
      publish: [],
    },
    {
      name: "never armed, above the floor: armed (recorded once)",
      in: { readyPods: 3, previous: undefined },
      phase: "Inactive",
      reason: "Armed",
      publish: [],
    },
    {
      name: "never armed, 1 of 1 running pod Ready but 4 desired (the rest still Pending): not yet armed",
      in: { readyPods: 1, servingPods: 1, previous: undefined },
      publish: [],
    },
    {
      name: "never armed, below the floor (a new Deployment's pods starting): nothing",
      in: { readyPods: 0, previous: undefined },
      publish: [],
    },
    {
      name: "below the floor: panic on the workload's own Service",
      in: { readyPods: 1 },
      phase: "Panicking",
      reason: "BelowFloor",
      publish: ["web"],
    },
    {
      name: "gated pods held: refused",
      in: { readyPods: 1, heldPods: ["web-new-1"] },
      phase: "Refused",
      reason: "GatedPodsHeld",
      publish: [],
    },
    {
      name: "pods terminating: refused (their drain stays)",
      in: { readyPods: 1, terminatingPods: ["web-old-1"] },
      phase: "Refused",
      reason: "PodsTerminating",
      publish: [],
    },
    {
      name: "a gated rollout under way: refused",
      in: { readyPods: 1, gatedRollout: true },
      phase: "Refused",
      reason: "GatedRollout",
      publish: [],
    },
    {
      name: "the only Service also selects another workload: refused",
      in: { readyPods: 1, services: [{ ...web, sharedWith: "Deployment other" }] },
      phase: "Refused",
      reason: "SharedService",
      publish: [],
    },
    {
      name: "a shared and an own Service: panic on the own one only",
      in: { readyPods: 1, services: [{ ...web, name: "front", sharedWith: "Deployment other" }, web] },
      phase: "Panicking",
      reason: "BelowFloor",
      publish: ["web"],
    },
    {
      name: "no Service: refused",
      in: { readyPods: 1, services: [] },
      phase: "Refused",
      reason: "NoService",
      publish: [],
    },
    {
      name: "the Service already publishes not-ready addresses: nothing to do",
      in: { readyPods: 1, services: [{ ...web, publishes: true }] },
      phase: "Refused",
      reason: "NoService",
      publish: [],
    },
    {
      name: "not enabled: nothing",
      in: { readyPods: 0, settings: undefined },
      phase: "Inactive",
      reason: "Armed",
      publish: [],
    },
  ])("$name", ({ in: over, phase, reason, publish }) => {
    const d = decidePanic(input(over));
    expect(d.state?.phase).toBe(phase);
    expect(d.state?.reason).toBe(reason);
    expect(d.publish).toEqual(publish);
    expect(d.restore).toEqual([]);
  });

  it("records the original value of each Service it publishes, and says so in an Event", () => {
    const d = decidePanic(input({ readyPods: 1 }));
    expect(d.state?.services).toEqual([{ name: "web", original: false }]);
    expect(d.state?.since).toBe(iso(T0));
    expect(d.events.map((e) => [e.type, e.reason])).toEqual([["Warning", "PanicEntered"]]);
  });

  it("a refusal is announced once, not on every look", () => {
    const first = decidePanic(input({ readyPods: 1, heldPods: ["p"] }));
    const again = decidePanic(input({ readyPods: 0, heldPods: ["p"], previous: first.state, now: at(30) }));
    expect(first.events.map((e) => e.reason)).toEqual(["PanicRefused"]);
    expect(again.events).toEqual([]);
    expect(again.state?.since).toBe(iso(T0));
  });

  it("a refusal ends when the blocker goes: panic then starts", () => {
    const refused = decidePanic(input({ readyPods: 1, heldPods: ["p"] })).state;
    const d = decidePanic(input({ readyPods: 1, previous: refused, now: at(10) }));
    expect(d.state?.phase).toBe("Panicking");
    expect(d.publish).toEqual(["web"]);
  });
});

describe("decidePanic: staying and leaving", () => {
  const during = (over: Partial<PanicInput>) =>
    decidePanic(input({ previous: panicking(), services: [webOurs], ...over }));

  it.each<{
    name: string;
    in: Partial<PanicInput>;
    previous?: PanicState;
    phase: string;
    reason: string;
    restore: string[];
    requeue?: number;
  }>([
    {
      name: "still below: keep",
      in: { readyPods: 1, now: at(5) },
      phase: "Panicking",
      reason: "BelowFloor",
      restore: [],
    },
    {
      name: "back above the floor: the hold starts (look again when it ends)",
      in: { readyPods: 3, now: at(10) },
      phase: "Panicking",
      reason: "BelowFloor",
      restore: [],
      requeue: 60,
    },
    {
      name: "above for part of the hold: keep, look again for the rest",
      in: { readyPods: 3, now: at(50) },
      previous: panicking({ aboveFloorSince: iso(at(10)) }),
      phase: "Panicking",
      reason: "BelowFloor",
      restore: [],
      requeue: 20,
    },
    {
      name: "above for the whole hold: leave and restore",
      in: { readyPods: 3, now: at(70) },
      previous: panicking({ aboveFloorSince: iso(at(10)) }),
      phase: "Inactive",
      reason: "Recovered",
      restore: ["web"],
    },
    {
      name: "gated pods appear: leave at once, before the hold",
      in: { readyPods: 1, heldPods: ["web-new-1"], now: at(5) },
      phase: "Refused",
      reason: "GatedPodsHeld",
      restore: ["web"],
    },
    {
      name: "a pod starts terminating: leave at once, its drain stays",
      in: { readyPods: 1, terminatingPods: ["web-1"], now: at(5) },
      phase: "Refused",
      reason: "PodsTerminating",
      restore: ["web"],
    },
    {
      name: "a gated rollout begins: leave before its first step",
      in: { readyPods: 1, gatedRollout: true, now: at(5) },
      phase: "Refused",
      reason: "GatedRollout",
      restore: ["web"],
    },
    {
      name: "panic disabled: leave",
      in: { settings: undefined, now: at(5) },
      phase: "Inactive",
      reason: "Disabled",
      restore: ["web"],
    },
    {
      name: "another field manager took the flag: stop, give back nothing of that Service",
      in: {
        readyPods: 1,
        services: [{ name: "web", publishes: false, ownedByPanic: false, otherManager: "gitops" }],
        now: at(5),
      },
      phase: "Stopped",
      reason: "ConflictingManager",
      restore: [],
    },
    {
      name: "removed by an update this process saw it publish: stop, naming no manager",
      in: {
        readyPods: 1,
        services: [{ name: "web", publishes: false, ownedByPanic: false, takenBack: true }],
        now: at(5),
      },
      phase: "Stopped",
      reason: "ConflictingManager",
      restore: [],
    },
  ])("$name", ({ in: over, previous, phase, reason, restore, requeue }) => {
    const d = during({ ...over, ...(previous ? { previous } : {}) });
    expect(d.state?.phase, d.state?.message).toBe(phase);
    expect(d.state?.reason).toBe(reason);
    expect(d.restore.map((r) => r.name)).toEqual(restore);
    expect(d.requeueAfterSeconds).toBe(requeue);
    if (phase !== "Panicking") expect(d.publish).toEqual([]);
  });

  it("dipping below the floor again resets the hold", () => {
    const d = during({ readyPods: 1, now: at(50), previous: panicking({ aboveFloorSince: iso(at(10)) }) });
    expect(d.state?.aboveFloorSince).toBeUndefined();
    expect(d.publish).toEqual(["web"]);
  });

  it("a recorded Service with no owner and no sign of a revert (a write that never landed) is published again", () => {
    const d = during({ readyPods: 1, services: [web], now: at(5) });
    expect(d.state?.phase).toBe("Panicking");
    expect(d.publish).toEqual(["web"]);
  });

  it("a Service that turns shared mid-panic is given back; the others stay", () => {
    const d = decidePanic(
      input({
        readyPods: 1,
        previous: panicking({
          services: [
            { name: "web", original: false },
            { name: "web-b", original: false },
          ],
        }),
        services: [webOurs, { ...webOurs, name: "web-b", sharedWith: "pod stray" }],
        now: at(5),
      }),
    );
    expect(d.publish).toEqual(["web"]);
    expect(d.restore).toEqual([{ name: "web-b", original: false }]);
  });

  it("the conflict names the manager, in status and in a Warning Event", () => {
    const d = during({
      readyPods: 1,
      services: [{ name: "web", publishes: false, ownedByPanic: false, otherManager: "argocd-controller" }],
    });
    expect(d.state?.conflict).toEqual({ service: "web", manager: "argocd-controller" });
    expect(d.events).toEqual([expect.objectContaining({ type: "Warning", reason: "PanicConflict" })]);
    expect(d.events[0]?.message).toContain("argocd-controller");
  });
});

describe("decidePanic: after a stop", () => {
  const stopped: PanicState = {
    phase: "Stopped",
    reason: "ConflictingManager",
    message: "…",
    since: iso(T0),
    readyPercent: 25,
    conflict: { service: "web", manager: "gitops" },
  };

  it.each([
    {
      name: "still below: stay stopped, write nothing",
      readyPods: 1,
      now: at(30),
      prev: stopped,
      phase: "Stopped",
      publish: [],
    },
    {
      name: "above, hold not over: stay stopped",
      readyPods: 4,
      now: at(30),
      prev: stopped,
      phase: "Stopped",
      publish: [],
    },
    {
      name: "above for the hold: back to Inactive (the next incident may panic again)",
      readyPods: 4,
      now: at(100),
      prev: { ...stopped, aboveFloorSince: iso(at(30)) },
      phase: "Inactive",
      publish: [],
    },
  ])("$name", ({ readyPods, now, prev, phase, publish }) => {
    const d = decidePanic(input({ readyPods, now, previous: prev }));
    expect(d.state?.phase).toBe(phase);
    expect(d.publish).toEqual(publish);
    expect(d.restore).toEqual([]);
  });

  it("is idempotent: the same input twice gives the same state", () => {
    const once = decidePanic(input({ readyPods: 1 }));
    const twice = decidePanic(input({ readyPods: 1, previous: once.state }));
    expect(twice.state).toEqual(once.state);
    expect(twice.events).toEqual([]);
  });
});
