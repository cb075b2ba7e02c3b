// The correlated-failure guard, pure: windows, thresholds, per-revision counting, hysteresis and
// flap backoff, with time as a plain number a test moves (a fake clock).
import { describe, expect, it } from "vitest";
import type { Pod } from "../../../src/api/k8s.ts";
import { guardrailsSpec, type GuardrailsSpec } from "../../../src/api/v1alpha1/index.ts";
import { conditionEventType, worstIntent } from "../../../src/policy/conditions.ts";
import {
  assessGuard,
  backoffAfter,
  capacityShrinkHold,
  correlatedIntent,
  emptyGuardState,
  flapConfig,
  type GuardState,
  largestBurst,
  podView,
  type PodView,
  recordReadiness,
  stepCorrelated,
  stepFlaps,
  wholeZonesUnready,
} from "../../../src/policy/guard/index.ts";

const T0 = Date.parse("2026-12-04T10:00:00Z");
const s = (seconds: number) => T0 + seconds * 1000;
const iso = (ms: number) => new Date(ms).toISOString();

const guardrails = (input: Record<string, unknown> = {}): GuardrailsSpec => guardrailsSpec.parse(input);
const DEFAULTS = guardrails();
const CORRELATED = { maxUnreadyPercent: 50, windowMs: 30_000, clearAfterMs: 60_000 };

// ---- builders --------------------------------------------------------------------------------

interface PodSpecOf {
  ready?: boolean;
  /** Seconds from T0 of the Ready condition's last transition. */
  readyChangedAt?: number;
  startedAt?: number;
  gated?: boolean;
  gateOpen?: boolean;
  containersReady?: boolean;
  phase?: string;
  deleting?: boolean;
  revision?: string;
}

function pod(name: string, o: PodSpecOf = {}): Pod {
  const ready = o.ready ?? true;
  const conditions: NonNullable<NonNullable<Pod["status"]>["conditions"]> = [
    {
      type: "Ready",
      status: ready ? "True" : "False",
      lastTransitionTime: iso(s(o.readyChangedAt ?? 0)),
    },
    { type: "ContainersReady", status: (o.containersReady ?? ready) ? "True" : "False" },
  ];
  if (o.gated && o.gateOpen !== undefined) {
    conditions.push({ type: "healthgate.io/deep-check", status: o.gateOpen ? "True" : "False" });
  }
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      labels: { "pod-template-hash": o.revision ?? "r1" },
      ...(o.deleting ? { deletionTimestamp: iso(s(0)) } : {}),
    },
    spec: {
      containers: [{ name: "web" }],
      ...(o.gated ? { readinessGates: [{ conditionType: "healthgate.io/deep-check" }] } : {}),
    },
    status: { phase: o.phase ?? "Running", startTime: iso(s(o.startedAt ?? -600)), conditions },
  };
}

/** A view as the controller builds it (isHeldByGate = gated and gate not True). */
const view = (p: Pod, zone?: string, transitions: number[] = []) =>
  podView(p, {
    heldByGate:
      (p.spec.readinessGates?.length ?? 0) > 0 &&
      p.status?.conditions?.find((c) => c.type === "healthgate.io/deep-check")?.status !== "True",
    history: { transitions, seenReady: false },
    zone,
  });

/** `n` pods; those in `unready` went unready at the given second. */
function fleet(n: number, unready: Record<number, number> = {}, zoneOf?: (i: number) => string): PodView[] {
  return Array.from({ length: n }, (_, i) =>
    view(
      pod(`web-${i}`, unready[i] !== undefined ? { ready: false, readyChangedAt: unready[i] } : {}),
      zoneOf?.(i),
    ),
  );
}

// ---- pods ----------------------------------------------------------------------------------------

describe("podView: which pods count", () => {
  it.each<[string, Pod, PodView["state"]]>([
    ["Ready", pod("a"), "Ready"],
    ["unready after having been Ready", pod("a", { ready: false, readyChangedAt: 10 }), "Unready"],
    [
      "unready since it started (never Ready: starting)",
      pod("a", { ready: false, startedAt: 5, readyChangedAt: 6 }),
      "NeverReady",
    ],
    [
      "gated, containers ready, gate not admitted: held by the gate, not a failure",
      pod("a", { ready: false, readyChangedAt: 10, gated: true, containersReady: true }),
      "HeldByGate",
    ],
    [
      "gated, gate set False, containers ready: held by the gate",
      pod("a", { ready: false, readyChangedAt: 10, gated: true, gateOpen: false, containersReady: true }),
      "HeldByGate",
    ],
    [
      "gated and admitted, then its readiness probe fails: a failure",
      pod("a", { ready: false, readyChangedAt: 10, gated: true, gateOpen: true }),
      "Unready",
    ],
    [
      "gated, gate closed and containers not ready either: a failure",
      pod("a", { ready: false, readyChangedAt: 10, gated: true, containersReady: false }),
      "Unready",
    ],
    ["Pending", pod("a", { phase: "Pending", ready: false }), "Inactive"],
    ["being deleted", pod("a", { deleting: true }), "Inactive"],
  ])("%s", (_name, p, state) => {
    expect(view(p).state).toBe(state);
  });

  it("a pod the controller saw Ready counts as a failure even when it went unready right after starting", () => {
    const p = pod("a", { ready: false, startedAt: 5, readyChangedAt: 6 });
    expect(
      podView(p, { heldByGate: false, history: { transitions: [s(5), s(6)], seenReady: true } }),
    ).toEqual(expect.objectContaining({ state: "Unready", unreadySince: s(6) }));
  });
});

describe("recordReadiness: the bounded history", () => {
  const limits = { horizonMs: 60_000, maxTransitions: 3 };
  it("records changes only, not the first observation nor repeats", () => {
    let h = recordReadiness(undefined, true, s(0), limits);
    expect(h).toEqual({ transitions: [], seenReady: true, ready: true });
    h = recordReadiness(h, true, s(1), limits);
    expect(h.transitions).toEqual([]);
    h = recordReadiness(h, false, s(2), limits);
    expect(h.transitions).toEqual([s(2)]);
  });
  it("keeps at most maxTransitions, and none older than the horizon", () => {
    let h = recordReadiness(undefined, true, s(0), limits);
    for (let i = 1; i <= 5; i++) h = recordReadiness(h, i % 2 === 0, s(i), limits);
    expect(h.transitions).toEqual([s(3), s(4), s(5)]);
    h = recordReadiness(h, true, s(100), limits);
    expect(h.transitions).toEqual([s(100)]);
  });
  it("never Ready so far: seenReady false", () => {
    expect(recordReadiness(undefined, false, s(0), limits).seenReady).toBe(false);
  });
});

// ---- correlated failure ------------------------------------------------------------------------

describe("correlated failure: onset", () => {
  it.each<[string, PodView[], boolean]>([
    ["6 of 10 unready within 30s (60% > 50%)", fleet(10, { 0: 0, 1: 5, 2: 10, 3: 15, 4: 20, 5: 29 }), true],
    [
      "5 of 10 unready at once (50% is not more than 50%)",
      fleet(10, { 0: 0, 1: 0, 2: 0, 3: 0, 4: 0 }),
      false,
    ],
    ["one pod unready", fleet(10, { 3: 0 }), false],
    ["a single-pod Deployment unready: one pod is no evidence of a common cause", fleet(1, { 0: 0 }), false],
    [
      "6 of 10 unready, but spread over 5 minutes (attrition, not one event)",
      fleet(10, { 0: 0, 1: 60, 2: 120, 3: 180, 4: 240, 5: 300 }),
      false,
    ],
    ["2 of 3 unready together", fleet(3, { 0: 0, 1: 1 }), true],
  ])("%s → %s", (_name, pods, raised) => {
    expect(stepCorrelated(undefined, pods, s(400), CORRELATED) !== undefined).toBe(raised);
  });

  it("the largest burst is found anywhere in time, not only just before now (a restart finds an ongoing one)", () => {
    const pods = fleet(10, { 0: 100, 1: 101, 2: 102, 3: 103, 4: 104, 5: 105, 6: 0 });
    expect(largestBurst(pods, 30_000).map((p) => p.name)).toEqual([
      "web-0",
      "web-1",
      "web-2",
      "web-3",
      "web-4",
      "web-5",
    ]);
    expect(stepCorrelated(undefined, pods, s(3600), CORRELATED)).toEqual({
      since: s(105),
      trigger: { unready: 6, serving: 10, byFraction: true },
    });
  });

  it("gated new-revision pods held by their gate are not counted, neither in the unready nor in the serving pods", () => {
    // 3 stable pods serve, 1 of them unready; 6 new pods are held by their gate (unadmitted)
    const pods = [
      view(pod("old-0", { ready: false, readyChangedAt: 0, revision: "old" })),
      view(pod("old-1", { revision: "old" })),
      view(pod("old-2", { revision: "old" })),
      ...Array.from({ length: 6 }, (_, i) =>
        view(
          pod(`new-${i}`, {
            ready: false,
            readyChangedAt: 0,
            gated: true,
            containersReady: true,
            revision: "new",
          }),
        ),
      ),
    ];
    expect(stepCorrelated(undefined, pods, s(10), CORRELATED)).toBeUndefined();
    const { assessment } = assessGuard(emptyGuardState(), pods, s(10), DEFAULTS);
    expect(assessment.counts).toEqual({ serving: 3, unready: 1, heldByGate: 6, neverReady: 0 });
  });

  it("every pod of a zone with two or more pods going unready together names the zone", () => {
    const zoneOf = (i: number) => ["zone-a", "zone-b", "zone-c"][i % 3]!;
    // 9 pods, zone-b holds 1, 4, 7: all unready within 3 s (33%: below the fraction)
    const pods = fleet(9, { 1: 0, 4: 2, 7: 3 }, zoneOf);
    expect(wholeZonesUnready(pods, 30_000)).toEqual(["zone-b"]);
    const episode = stepCorrelated(undefined, pods, s(5), CORRELATED);
    expect(episode).toEqual({
      since: s(3),
      trigger: { unready: 3, serving: 9, byFraction: false, zone: "zone-b" },
    });
    const a = assessGuard(emptyGuardState(), pods, s(5), DEFAULTS).assessment;
    expect(correlatedIntent(a)).toEqual(
      expect.objectContaining({
        status: "True",
        reason: "ZoneUnready",
        message: expect.stringContaining("every pod of zone zone-b (3) went unready within 30s"),
      }),
    );
  });

  it("a zone of one pod is not a zone failure; a zone whose pods went unready far apart neither", () => {
    const pods = fleet(4, { 0: 0 }, (i) => (i === 0 ? "zone-a" : "zone-b"));
    expect(wholeZonesUnready(pods, 30_000)).toEqual([]);
    const apart = fleet(6, { 0: 0, 3: 100 }, (i) => (i % 3 === 0 ? "zone-a" : "zone-b"));
    expect(wholeZonesUnready(apart, 30_000)).toEqual([]);
    expect(wholeZonesUnready(apart)).toEqual(["zone-a"]);
  });
});

describe("correlated failure: hysteresis", () => {
  const unreadyAt0 = fleet(10, { 0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0 });
  const recovered = (k: number) =>
    fleet(10, Object.fromEntries(Array.from({ length: k }, (_, i) => [i, 0])) as Record<number, number>);

  it("lasts while above the threshold, clears only after clearAfter below it, and restarts the count on a relapse", () => {
    let e = stepCorrelated(undefined, unreadyAt0, s(5), CORRELATED);
    expect(e?.since).toBe(s(0));
    // still above (long after the window: an episode lasts while the pods stay unready)
    e = stepCorrelated(e, unreadyAt0, s(600), CORRELATED);
    expect(e).toEqual({ since: s(0), trigger: { unready: 6, serving: 10, byFraction: true } });
    // 4 of 10 unready: below; clearing starts
    e = stepCorrelated(e, recovered(4), s(610), CORRELATED);
    expect(e?.belowSince).toBe(s(610));
    e = stepCorrelated(e, recovered(4), s(669), CORRELATED);
    expect(e?.belowSince).toBe(s(610));
    // relapse: above again, the clearing count restarts
    e = stepCorrelated(e, unreadyAt0, s(670), CORRELATED);
    expect(e?.belowSince).toBeUndefined();
    e = stepCorrelated(e, recovered(1), s(680), CORRELATED);
    expect(e?.belowSince).toBe(s(680));
    // 60 s below: cleared
    expect(stepCorrelated(e, recovered(1), s(740), CORRELATED)).toBeUndefined();
  });

  it("the same look twice gives the same episode (a reconcile repeated changes nothing)", () => {
    const e = stepCorrelated(undefined, unreadyAt0, s(5), CORRELATED);
    expect(stepCorrelated(e, unreadyAt0, s(5), CORRELATED)).toEqual(e);
    const clearing = stepCorrelated(e, recovered(2), s(10), CORRELATED);
    expect(stepCorrelated(clearing, recovered(2), s(10), CORRELATED)).toEqual(clearing);
  });

  it("a burst the kubelet reveals one probe at a time grows the trigger: a zone first, then the fraction", () => {
    const zoneOf = (i: number) => (i < 2 ? "zone-a" : "zone-b");
    // 2 of 5 (zone-a) unready first: a zone failure
    let e = stepCorrelated(undefined, fleet(5, { 0: 0, 1: 0 }, zoneOf), s(1), CORRELATED);
    expect(e).toEqual({
      since: s(0),
      trigger: { unready: 2, serving: 5, byFraction: false, zone: "zone-a" },
    });
    // a third pod a second later: 3 of 5 went unready within the window
    e = stepCorrelated(e, fleet(5, { 0: 0, 1: 0, 2: 1 }, zoneOf), s(2), CORRELATED);
    expect(e).toEqual({ since: s(0), trigger: { unready: 3, serving: 5, byFraction: true, zone: "zone-a" } });
    // one recovers: the trigger keeps the largest burst seen
    e = stepCorrelated(e, fleet(5, { 0: 0, 2: 1 }, zoneOf), s(3), CORRELATED);
    expect(e?.trigger.unready).toBe(3);
  });

  it("a whole zone still unready keeps it active though the fraction is below", () => {
    const zoneOf = (i: number) => (i < 2 ? "zone-a" : "zone-b");
    const e = stepCorrelated(undefined, fleet(6, { 0: 0, 1: 0 }, zoneOf), s(1), CORRELATED);
    expect(e?.trigger.zone).toBe("zone-a");
    expect(
      stepCorrelated(e, fleet(6, { 0: 0, 1: 0 }, zoneOf), s(500), CORRELATED)?.belowSince,
    ).toBeUndefined();
  });

  it("clearAfterSeconds 0 clears at the first look below", () => {
    const e = stepCorrelated(undefined, unreadyAt0, s(5), { ...CORRELATED, clearAfterMs: 0 });
    expect(stepCorrelated(e, recovered(1), s(6), { ...CORRELATED, clearAfterMs: 0 })).toBeUndefined();
  });

  it("assessGuard says when it clears and asks to look again then", () => {
    let state: GuardState = emptyGuardState();
    ({ state } = assessGuard(state, unreadyAt0, s(5), DEFAULTS));
    const { assessment } = assessGuard(state, recovered(2), s(20), DEFAULTS);
    expect(assessment.correlated?.clearsAt).toBe(s(80));
    expect(assessment.nextChangeAt).toBe(s(80));
  });
});

describe("CorrelatedFailure condition and the hold", () => {
  it("says the fraction, the window, the revisions and what is not counted", () => {
    const pods = [
      ...fleet(4, { 0: 0, 1: 1, 2: 2 }),
      view(pod("canary", { revision: "r2" })),
      view(
        pod("held", { ready: false, readyChangedAt: 0, gated: true, containersReady: true, revision: "r2" }),
      ),
    ];
    const { assessment } = assessGuard(emptyGuardState(), pods, s(10), DEFAULTS);
    const intent = correlatedIntent(assessment);
    expect(intent.status).toBe("True");
    expect(intent.reason).toBe("ManyPodsUnready");
    expect(intent.message).toContain(
      "since 2026-12-04T10:00:02Z: 3 of 5 serving pods (60%) went unready within 30s, more than guardrails.maxUnreadyPercent 50%; unready by revision: r1 3/4, r2 0/1 (not counted: 1 held by their deep-check gate); now 3 of 5 unready.",
    );
    expect(capacityShrinkHold({ guard: assessment })).toEqual({
      reason: "CorrelatedFailure",
      since: new Date(s(2)),
      message: expect.stringContaining("no capacity-shrinking action"),
    });
  });

  it("False with a message that does not move with pod counts (no status write per readiness change)", () => {
    const a = assessGuard(emptyGuardState(), fleet(10, { 0: 0 }), s(10), DEFAULTS).assessment;
    const b = assessGuard(emptyGuardState(), fleet(10, { 0: 0, 5: 3 }), s(20), DEFAULTS).assessment;
    expect(correlatedIntent(a)).toEqual(correlatedIntent(b));
    expect(correlatedIntent(a).status).toBe("False");
    expect(capacityShrinkHold({ guard: a })).toBeUndefined();
    expect(capacityShrinkHold({})).toBeUndefined();
  });
});

// ---- flapping -------------------------------------------------------------------------------------

describe("flapping", () => {
  const config = flapConfig(
    guardrails({
      flapping: {
        maxTransitions: 4,
        windowSeconds: 60,
        reportBackoffSeconds: 10,
        maxReportBackoffSeconds: 80,
      },
    }),
  );
  /** A pod that changed readiness every 2 s from `from` to `to` seconds. */
  const toggling = (from: number, to: number) => {
    const t: number[] = [];
    for (let x = from; x <= to; x += 2) t.push(s(x));
    return view(pod("flappy"), undefined, t);
  };

  it.each([
    ["4 changes in the window: not flapping (the limit is 'more than')", [0, 2, 4, 6], false],
    ["5 changes in the window", [0, 2, 4, 6, 8], true],
    ["5 changes, the first outside the 60 s window", [-60, 2, 4, 6, 8], false],
  ])("%s", (_name, seconds, flapping) => {
    const p = view(pod("p"), undefined, seconds.map(s));
    expect(stepFlaps({}, [p], s(10), config).flapping.length > 0).toBe(flapping);
  });

  it("backoff doubles with each report, up to the maximum", () => {
    expect([1, 2, 3, 4, 5].map((k) => backoffAfter(k, config) / 1000)).toEqual([10, 20, 40, 80, 80]);
  });

  it("a chronic flapper is reported at once, then less and less often, and listed all along", () => {
    let records = {};
    const reportedAt: number[] = [];
    for (let t = 10; t <= 300; t++) {
      const step = stepFlaps(records, [toggling(0, t)], s(t), config);
      records = step.records;
      expect(step.flapping.map((f) => f.pod)).toEqual(["flappy"]);
      if (step.reports.length > 0) reportedAt.push(t);
    }
    expect(reportedAt).toEqual([10, 20, 40, 80, 160, 240]);
  });

  it("the same look twice reports once", () => {
    const first = stepFlaps({}, [toggling(0, 10)], s(10), config);
    expect(first.reports.length).toBe(1);
    expect(stepFlaps(first.records, [toggling(0, 10)], s(10), config).reports).toEqual([]);
  });

  it("a repeat offender keeps its backoff; one quiet for maxReportBackoff is forgiven", () => {
    let step = stepFlaps({}, [toggling(0, 10)], s(10), config);
    step = stepFlaps(step.records, [toggling(0, 20)], s(20), config);
    expect(step.reports.map((r) => r.reports)).toEqual([2]);
    // quiet: not flapping any more, still remembered for 80 s after its last report
    step = stepFlaps(step.records, [toggling(0, 20)], s(90), config);
    expect(step.flapping).toEqual([]);
    expect(Object.keys(step.records)).toEqual(["uid-flappy"]);
    // flaps again at 95: reported (its wait of 20 s is over) as the 3rd time, next in 40 s
    step = stepFlaps(step.records, [toggling(87, 95)], s(95), config);
    expect(step.reports.map((r) => [r.reports, (r.nextReportAt - s(95)) / 1000])).toEqual([[3, 40]]);
    // quiet long enough: forgiven, the next episode starts over at report 1
    step = stepFlaps(step.records, [toggling(87, 95)], s(176), config);
    expect(step.records).toEqual({});
    step = stepFlaps(step.records, [toggling(170, 180)], s(180), config);
    expect(step.reports.map((r) => r.reports)).toEqual([1]);
  });

  it("asks to look again when a report falls due or the count leaves the window, whichever comes first", () => {
    // the next report is due at 18 s; the count (5 > 4) drops when the change at 0 s leaves the window at 60 s
    expect(stepFlaps({}, [toggling(0, 8)], s(8), config).nextChangeAt).toBe(s(18));
    const slow = { ...config, backoffMs: 100_000, maxBackoffMs: 100_000 };
    expect(stepFlaps({}, [toggling(0, 8)], s(8), slow).nextChangeAt).toBe(s(60));
  });
});

describe("CorrelatedFailure's polarity: True is the abnormal state", () => {
  const intent = (status: "True" | "False") => ({
    type: "CorrelatedFailure" as const,
    status,
    reason: status === "True" ? "ManyPodsUnready" : "NoCorrelatedFailure",
    message: "",
  });
  it("the policy reports the worst Deployment: the one with a correlated failure", () => {
    expect(worstIntent([intent("False"), intent("True"), intent("False")])?.status).toBe("True");
    expect(
      worstIntent([
        { ...intent("False"), type: "HeadroomSufficient" },
        { ...intent("True"), type: "HeadroomSufficient" },
      ])?.status,
    ).toBe("False");
  });
  it("a flip to True is a Warning, back to False a Normal Event (prefixed or not)", () => {
    expect(conditionEventType("healthgate.io/CorrelatedFailure", "True")).toBe("Warning");
    expect(conditionEventType("CorrelatedFailure", "False")).toBe("Normal");
    expect(conditionEventType("healthgate.io/ProbesCompliant", "True")).toBe("Normal");
    expect(conditionEventType("ProbesCompliant", "False")).toBe("Warning");
  });
});
