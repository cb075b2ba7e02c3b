// Rollout gating, pure: revisions, the step budget, bakes, the control group, deadlines, the
// serving floor and an abort that never empties the pool — with a fake clock (`now` is an input).
import { describe, expect, it } from "vitest";
import type { RolloutState } from "../../../src/api/v1alpha1/healthtarget.ts";
import { rolloutSpec } from "../../../src/api/v1alpha1/index.ts";
import { NO_ASSESSMENT, type PodAssessment } from "../../../src/policy/rollout/deepCheck.ts";
import {
  decideRollout,
  stepBudget,
  type RolloutInput,
  type RolloutOutcome,
} from "../../../src/policy/rollout/gating.ts";
import type { GatePod } from "../../../src/policy/rollout/revisions.ts";

const T0 = Date.parse("2026-12-04T10:00:00Z");
const sec = (s: number) => T0 + s * 1000;

const spec = (over: Record<string, unknown> = {}) =>
  rolloutSpec.parse({
    steps: [{ weight: 25, bake: "1m" }, { weight: 50, bake: "1m" }, { weight: 100 }],
    deepCheck: { path: "/health/deep", successThreshold: 3, failureLimit: 3, stableSample: 2 },
    ...over,
  });

const passes = (n: number): PodAssessment => ({
  ...NO_ASSESSMENT,
  consecutivePasses: n,
  passes: n,
  last: "pass",
});
const fails = (n: number): PodAssessment => ({
  ...NO_ASSESSMENT,
  consecutiveFailures: n,
  failures: n,
  last: "fail",
});
const errors = (n: number): PodAssessment => ({
  ...NO_ASSESSMENT,
  consecutiveErrors: n,
  errors: n,
  last: "error",
});

const pod = (name: string, revision: string, over: Partial<GatePod> = {}): GatePod => ({
  name,
  uid: `uid-${name}`,
  revision,
  createdAt: T0,
  deleting: false,
  gated: true,
  containersReady: true,
  ready: false,
  ...over,
});
/** A Ready stable pod (admitted, or never gated). */
const stablePod = (name: string, a: PodAssessment | undefined = passes(50)) =>
  pod(name, "old", { gate: "True", ready: true, ...(a ? { assessment: a } : {}) });

const FLOOR = { floor: 3, why: "N − 1 (no spec.headroom)", maxUnavailable: 0, rawMaxUnavailable: "0" };
const inProgress = (over: Partial<RolloutState> = {}): RolloutState => ({
  phase: "Progressing",
  revision: "new",
  stableRevision: "old",
  step: 0,
  admitted: [],
  ...over,
});

const input = (over: Partial<RolloutInput> = {}): RolloutInput => ({
  deployment: { name: "web", generation: 2, observedGeneration: 2, replicas: 4 },
  newestRevision: "new",
  complete: false,
  pods: [stablePod("s1"), stablePod("s2"), stablePod("s3"), stablePod("s4")],
  rollout: spec(),
  floor: FLOOR,
  previous: inProgress(),
  now: T0,
  ...over,
});

const opened = (o: RolloutOutcome) => o.gates.filter((g) => g.status === "True").map((g) => g.pod);
const closed = (o: RolloutOutcome) => o.gates.filter((g) => g.status === "False").map((g) => g.pod);

describe("stepBudget", () => {
  it.each([
    { weight: 10, replicas: 4, want: 1 }, // 0.4 rounds up: a step admits at least one pod
    { weight: 25, replicas: 4, want: 1 },
    { weight: 50, replicas: 3, want: 2 }, // 1.5
    { weight: 33, replicas: 3, want: 1 }, // 0.99
    { weight: 100, replicas: 7, want: 7 },
    { weight: 50, replicas: 0, want: 0 },
  ])("$weight% of $replicas → $want", ({ weight, replicas, want }) => {
    expect(stepBudget(weight, replicas)).toBe(want);
  });
});

describe("revisions", () => {
  it("first sight of a new revision: Unknown NewRevision before anything else (no gate opens)", () => {
    const o = decideRollout(
      input({
        previous: { phase: "Completed", revision: "old", stableRevision: "old" },
        pods: [stablePod("s1"), pod("n1", "new", { assessment: passes(5) })],
      }),
    );
    expect(o.condition).toMatchObject({ type: "RolloutHealthy", status: "Unknown", reason: "NewRevision" });
    expect(o.condition?.message).toContain("new");
    expect(o.gates).toEqual([]);
    expect(o.state).toMatchObject({
      revision: "new",
      stableRevision: "old",
      phase: "Progressing",
      observedGeneration: 2,
    });
  });

  it("the first revision is not gated and becomes stable once fully available", () => {
    const pods = [pod("a", "r1"), pod("b", "r1", { gate: "True" })];
    const during = decideRollout(
      input({ newestRevision: "r1", previous: { phase: "Progressing", revision: "r1" }, pods }),
    );
    expect(opened(during)).toEqual(["a"]);
    expect(during.condition).toMatchObject({ status: "Unknown", reason: "FirstRevision" });
    expect(during.state?.stableRevision).toBeUndefined();
    const done = decideRollout(input({ newestRevision: "r1", complete: true, previous: during.state, pods }));
    expect(done.state).toMatchObject({ phase: "Completed", stableRevision: "r1" });
    expect(done.condition).toMatchObject({ status: "True", reason: "RolloutComplete" });
  });

  it("a revision applied while the first one serves, before healthgate marked it stable, is gated against it", () => {
    // The first revision r1 was seen (not yet fully available when healthgate last looked), and
    // serves; r2 appears
    const pods = [pod("a", "r1", { ready: true }), pod("b", "r1", { ready: true }), pod("n1", "r2")];
    const seen = decideRollout(
      input({ newestRevision: "r2", previous: { phase: "Progressing", revision: "r1" }, pods }),
    );
    expect(seen.state).toMatchObject({ phase: "Progressing", revision: "r2", stableRevision: "r1" });
    expect(seen.condition?.message).toContain("gated against stable revision r1");
    // and its pod stays held until its deep checks pass (it was opened as a "first revision" before)
    const next = decideRollout(input({ newestRevision: "r2", previous: seen.state, pods }));
    expect(opened(next)).not.toContain("n1");
    expect(next.state).toMatchObject({ revision: "r2", stableRevision: "r1" });
  });

  it("a revision applied before kube-controller-manager ever let healthgate see the first one is gated against the one serving", () => {
    // healthgate looked while the controller had not caught up (no revision: Idle); by its next
    // look r2 is the newest, and r1's pods serve
    const pods = [pod("a", "r1", { ready: true }), pod("b", "r1", { ready: true }), pod("n1", "r2")];
    const seen = decideRollout(input({ newestRevision: "r2", previous: { phase: "Idle" }, pods }));
    expect(seen.state).toMatchObject({ revision: "r2", stableRevision: "r1" });
  });

  it("a Deployment healthgate first looks at mid-rollout is not gated (no earlier look: nothing was known to be stable)", () => {
    const pods = [pod("a", "r1", { ready: true }), pod("n1", "r2")];
    const seen = decideRollout(input({ newestRevision: "r2", previous: undefined, pods }));
    expect(seen.state?.stableRevision).toBeUndefined();
  });

  it("a newer revision after a first one that never served is still a first revision (nothing to judge it against)", () => {
    const pods = [pod("a", "r1", { ready: false }), pod("n1", "r2")];
    const seen = decideRollout(
      input({ newestRevision: "r2", previous: { phase: "Progressing", revision: "r1" }, pods }),
    );
    expect(seen.state?.stableRevision).toBeUndefined();
    const next = decideRollout(input({ newestRevision: "r2", previous: seen.state, pods }));
    expect(opened(next)).toContain("n1");
  });

  it("no spec.rollout: every gated pod is admitted at once and no state is kept", () => {
    const o = decideRollout(input({ rollout: undefined, pods: [pod("n1", "new"), stablePod("s1")] }));
    expect(opened(o)).toEqual(["n1"]);
    expect(o.state).toBeUndefined();
    expect(o.condition).toBeUndefined();
  });

  it("gated pods of the stable revision (an HPA scale-up) are admitted at once, mid-rollout too", () => {
    const o = decideRollout(
      input({ pods: [pod("s5", "old", { ready: false }), stablePod("s1"), pod("n1", "new")] }),
    );
    expect(opened(o)).toEqual(["s5"]);
  });

  it("observedGeneration is published only once the controller has seen the generation", () => {
    const o = decideRollout(
      input({
        deployment: { name: "web", generation: 3, observedGeneration: 2, replicas: 4 },
        newestRevision: undefined,
        previous: inProgress({ observedGeneration: 2 }),
      }),
    );
    expect(o.state?.observedGeneration).toBe(2);
  });
});

describe("step budget and bakes", () => {
  it("admits a pod only after successThreshold consecutive passes, and only up to the budget", () => {
    const pods = [
      ...[1, 2, 3, 4].map((i) => stablePod(`s${i}`)),
      pod("n1", "new", { assessment: passes(3), createdAt: sec(0) }),
      pod("n2", "new", { assessment: passes(3), createdAt: sec(1) }),
      pod("n3", "new", { assessment: passes(2), createdAt: sec(2) }),
    ];
    const o = decideRollout(input({ pods }));
    // 25% of 4 = 1: the oldest passing pod only
    expect(opened(o)).toEqual(["n1"]);
    expect(o.state).toMatchObject({
      phase: "Baking",
      step: 0,
      budget: 1,
      admitted: ["n1"],
      bakeStartedAt: "2026-12-04T10:00:00Z",
    });
    expect(o.requeueAfterSeconds).toBeGreaterThan(0);
  });

  it("the bake runs from when the budget filled; then the next step admits more", () => {
    const pods = [
      ...[1, 2, 3, 4].map((i) => stablePod(`s${i}`)),
      pod("n1", "new", { gate: "True", ready: true, assessment: passes(20) }),
      pod("n2", "new", { assessment: passes(3), createdAt: sec(1) }),
    ];
    const baking = inProgress({ phase: "Baking", admitted: ["n1"], bakeStartedAt: "2026-12-04T10:00:00Z" });
    const early = decideRollout(input({ pods, previous: baking, now: sec(59) }));
    expect(opened(early)).toEqual([]);
    expect(early.state?.phase).toBe("Baking");
    const after = decideRollout(input({ pods, previous: baking, now: sec(60) }));
    expect(opened(after)).toEqual(["n2"]);
    expect(after.state).toMatchObject({ step: 1, weight: 50, budget: 2, phase: "Baking" });
    expect(after.state?.bakeStartedAt).toBe("2026-12-04T10:01:00Z");
  });

  it("a bake as long as progressDeadlineSeconds says so (BakeExceedsProgressDeadline), a shorter one does not", () => {
    const pods = [
      ...[1, 2, 3, 4].map((i) => stablePod(`s${i}`)),
      pod("n1", "new", { assessment: passes(3) }),
    ];
    const long = spec({ steps: [{ weight: 25, bake: "15m" }, { weight: 100 }] });
    const exceeds = decideRollout(input({ pods, rollout: long }));
    expect(exceeds.condition?.message).toContain("BakeExceedsProgressDeadline");
    expect(exceeds.condition?.message).toContain("set spec.progressDeadlineSeconds above 900");
    const raised = decideRollout(
      input({
        pods,
        rollout: long,
        deployment: {
          name: "web",
          generation: 2,
          observedGeneration: 2,
          replicas: 4,
          progressDeadlineSeconds: 1200,
        },
      }),
    );
    expect(raised.condition?.message).not.toContain("BakeExceedsProgressDeadline");
  });

  it("the gate latches: an admitted pod that fails a check later keeps its gate (no write)", () => {
    const pods = [
      ...[1, 2, 3, 4].map((i) => stablePod(`s${i}`)),
      pod("n1", "new", {
        gate: "True",
        ready: true,
        assessment: { ...passes(0), consecutiveFailures: 1, last: "fail" },
      }),
    ];
    const o = decideRollout(
      input({ pods, previous: inProgress({ admitted: ["n1"], bakeStartedAt: "2026-12-04T10:00:00Z" }) }),
    );
    expect(o.gates).toEqual([]);
    expect(o.state?.admitted).toEqual(["n1"]);
  });

  it("an HPA scale-up mid-rollout recomputes the budget", () => {
    const pods = [
      ...[1, 2, 3, 4, 5, 6, 7].map((i) => stablePod(`s${i}`)),
      pod("n1", "new", { gate: "True", ready: true, assessment: passes(9) }),
      pod("n2", "new", { assessment: passes(3) }),
    ];
    const o = decideRollout(
      input({
        pods,
        deployment: { name: "web", generation: 3, observedGeneration: 3, replicas: 8 },
        floor: { ...FLOOR, floor: 7 },
        previous: inProgress({ admitted: ["n1"], bakeStartedAt: "2026-12-04T10:00:00Z" }),
      }),
    );
    // 25% of 8 = 2
    expect(opened(o)).toEqual(["n2"]);
    expect(o.state?.budget).toBe(2);
  });

  it("after the last step, once the Deployment completed, the revision is stable and True", () => {
    const pods = [1, 2, 3, 4].map((i) =>
      pod(`n${i}`, "new", { gate: "True", ready: true, assessment: passes(9) }),
    );
    const o = decideRollout(
      input({ pods, complete: true, previous: inProgress({ step: 2, admitted: ["n1", "n2", "n3", "n4"] }) }),
    );
    expect(o.state).toMatchObject({ phase: "Completed", stableRevision: "new" });
    expect(o.condition).toMatchObject({ status: "True", reason: "RolloutComplete" });
  });
});

describe("the control group", () => {
  const withNew = (
    a: PodAssessment,
    stable: PodAssessment | undefined = passes(50),
    over: Partial<RolloutInput> = {},
  ) =>
    decideRollout(
      input({
        pods: [
          stablePod("s1", stable),
          stablePod("s2", stable),
          stablePod("s3", stable),
          pod("n1", "new", { gate: "True", ready: true, assessment: a }),
        ],
        previous: inProgress({ admitted: ["n1"] }),
        floor: { ...FLOOR, floor: 3 },
        ...over,
      }),
    );

  it.each([
    {
      name: "new fail, stable pass → abort",
      a: fails(3),
      s: passes(50),
      phase: "Aborted",
      reason: "DeepCheckFailed",
    },
    { name: "below failureLimit → not yet", a: fails(2), s: passes(50), phase: "Baking", reason: "Baking" },
    {
      name: "both fail → DependencyDegraded",
      a: fails(5),
      s: fails(1),
      phase: "Inconclusive",
      reason: "DependencyDegraded",
    },
    {
      name: "transport errors on both → DeepCheckUnreachable",
      a: errors(3),
      s: errors(2),
      phase: "Holding",
      reason: "DeepCheckUnreachable",
    },
    {
      name: "transport errors on new only → failures of the revision",
      a: errors(3),
      s: passes(50),
      phase: "Aborted",
      reason: "DeepCheckFailed",
    },
    {
      name: "a stable hiccup after the new pod began failing, then failureLimit passes → abort",
      a: fails(45),
      s: passes(43),
      phase: "Aborted",
      reason: "DeepCheckFailed",
    },
    {
      name: "transport errors on new only, after a stable hiccup → abort",
      a: errors(45),
      s: passes(3),
      phase: "Aborted",
      reason: "DeepCheckFailed",
    },
    {
      name: "stable recovered only just (shorter pass streak than the new failure streak) → no abort yet",
      a: fails(3),
      s: passes(1),
      phase: "Baking",
      reason: "Baking",
    },
  ])("$name", ({ a, s, phase, reason }) => {
    const o = withNew(a, s);
    expect(o.state?.phase).toBe(phase);
    expect(o.condition?.reason).toBe(reason);
  });

  it("stable failing while new pass: judged without a control group, and status says so", () => {
    const o = withNew(passes(9), fails(2));
    expect(o.state?.phase).toBe("Baking");
    expect(o.condition?.message).toContain("without a control group");
  });

  it("stableSample 0: judged without a control group, said in the abort", () => {
    const o = withNew(fails(3), passes(50), {
      rollout: spec({ deepCheck: { path: "/health/deep", stableSample: 0 } }),
    });
    expect(o.state?.phase).toBe("Aborted");
    expect(o.condition?.message).toContain("without a control group");
  });

  it("pods whose containers are not ready are not deep-checked", () => {
    const o = decideRollout(input({ pods: [stablePod("s1"), pod("n1", "new", { containersReady: false })] }));
    expect(o.probe).toEqual({ new: [], stable: ["s1"] });
  });
});

describe("deadlines and capacity", () => {
  it("a correlated failure holds the rollout: nothing admitted, no step, no abort, no gate closed", () => {
    const hold = {
      reason: "CorrelatedFailure" as const,
      since: new Date(T0),
      message: "CorrelatedFailure since 2026-12-04T10:00:00Z (3 of 5 serving pods unready)",
    };
    // a passing new pod the budget would admit, and a crash-looping one that would abort
    const pods = [
      ...[1, 2, 3, 4].map((i) => stablePod(`s${i}`)),
      pod("n1", "new", { assessment: passes(3) }),
      pod("n2", "new", { crashLooping: "container web (3 restarts)" }),
      pod("n3", "new", { gate: "True", ready: true, assessment: fails(5) }),
    ];
    const held = decideRollout(input({ pods, hold, previous: inProgress({ admitted: ["n3"] }) }));
    expect(held.gates).toEqual([]);
    expect(held.state).toMatchObject({
      phase: "Holding",
      step: 0,
      admitted: ["n3"],
      reason: "CorrelatedFailure",
    });
    expect(held.condition).toMatchObject({ status: "Unknown", reason: "CorrelatedFailure" });
    expect(held.condition?.message).toContain("nothing admitted, nothing aborted");
    // without the hold the same input aborts
    expect(
      decideRollout(input({ pods, previous: inProgress({ admitted: ["n3"] }) })).condition,
    ).toMatchObject({
      status: "False",
    });
  });

  it("crash loop and image pull failures abort", () => {
    const crash = decideRollout(
      input({ pods: [stablePod("s1"), pod("n1", "new", { crashLooping: "container web (3 restarts)" })] }),
    );
    expect(crash.condition).toMatchObject({ status: "False", reason: "CrashLoop" });
    const pull = decideRollout(
      input({
        pods: [stablePod("s1"), pod("n1", "new", { imagePullFailing: "container web: ImagePullBackOff" })],
      }),
    );
    expect(pull.condition).toMatchObject({ status: "False", reason: "ImagePullFailed" });
  });

  it("newPodDeadline runs from creation; flapping never resets it; a passing pod waiting for budget is not late", () => {
    const flapping = pod("n1", "new", {
      createdAt: T0,
      assessment: { ...fails(1), passes: 40, failures: 20 },
    });
    const before = decideRollout(input({ pods: [stablePod("s1"), flapping], now: sec(599) }));
    expect(before.state?.phase).toBe("Progressing");
    const after = decideRollout(input({ pods: [stablePod("s1"), flapping], now: sec(601) }));
    expect(after.condition).toMatchObject({ status: "False", reason: "NewPodDeadlineExceeded" });
    const waiting = pod("n2", "new", { createdAt: T0, assessment: passes(30) });
    const full = decideRollout(
      input({
        pods: [
          stablePod("s1"),
          pod("n1", "new", { gate: "True", ready: true, assessment: passes(30) }),
          waiting,
        ],
        previous: inProgress({ admitted: ["n1"], bakeStartedAt: iso(sec(590)) }),
        now: sec(601),
      }),
    );
    expect(full.state?.phase).toBe("Baking");
  });

  it("an unschedulable new pod holds, it does not abort (even past its deadline)", () => {
    const o = decideRollout(
      input({
        pods: [
          stablePod("s1"),
          pod("n1", "new", { unschedulable: "0/3 nodes are available", containersReady: false }),
        ],
        now: sec(900),
      }),
    );
    expect(o.condition).toMatchObject({ status: "Unknown", reason: "Unschedulable" });
    expect(o.gates).toEqual([]);
  });

  it("a controller allowed below the floor holds before the step, naming the number to change", () => {
    const o = decideRollout(
      input({
        pods: [stablePod("s1"), pod("n1", "new", { assessment: passes(5) })],
        floor: { floor: 3, why: "N − 1 (no spec.headroom)", maxUnavailable: 2, rawMaxUnavailable: "50%" },
      }),
    );
    expect(o.gates).toEqual([]);
    expect(o.condition).toMatchObject({ reason: "ServingFloor" });
    expect(o.condition?.message).toContain("set spec.strategy.rollingUpdate.maxUnavailable to 1");
  });
});

describe("abort never empties the pool", () => {
  it("closes admitted gates only down to the floor, names the pods kept", () => {
    // N 4, F 3: 2 stable + 2 admitted new Ready = 4 serving; one gate may close
    const o = decideRollout(
      input({
        pods: [
          stablePod("s1"),
          stablePod("s2"),
          pod("n1", "new", { gate: "True", ready: true, createdAt: sec(0), assessment: fails(3) }),
          pod("n2", "new", { gate: "True", ready: true, createdAt: sec(10), assessment: fails(3) }),
        ],
        previous: inProgress({ step: 1, admitted: ["n1", "n2"] }),
      }),
    );
    expect(closed(o)).toEqual(["n2"]);
    expect(o.state).toMatchObject({ phase: "Aborted", dropped: ["n2"], kept: ["n1"] });
    expect(o.condition?.message).toContain("kept n1");
    expect(o.condition?.message).toContain("serving pods now 3");
    expect(o.events[0]).toMatchObject({ type: "Warning", reason: "DeepCheckFailed" });
  });

  it("at weight 100 with the old ReplicaSet at 0 it closes nothing and says so", () => {
    const o = decideRollout(
      input({
        pods: [1, 2, 3, 4].map((i) =>
          pod(`n${i}`, "new", { gate: "True", ready: true, assessment: i === 1 ? fails(3) : passes(9) }),
        ),
        rollout: spec({ deepCheck: { path: "/health/deep", stableSample: 0 } }),
        previous: inProgress({ step: 2, admitted: ["n1", "n2", "n3", "n4"] }),
      }),
    );
    expect(closed(o)).toEqual([]);
    expect(o.condition?.message).toContain("old ReplicaSet is at 0");
  });

  it("an aborted rollout stays aborted and admits nothing", () => {
    const prev = inProgress({ phase: "Aborted", reason: "DeepCheckFailed", message: "x", admitted: [] });
    const o = decideRollout(
      input({ pods: [stablePod("s1"), pod("n1", "new", { assessment: passes(9) })], previous: prev }),
    );
    expect(o.gates).toEqual([]);
    expect(o.condition).toMatchObject({ status: "False", reason: "DeepCheckFailed" });
  });
});

function iso(ms: number) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
