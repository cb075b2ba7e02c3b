// The rollout's part of the Enforce decision, pure: what it asks of maxUnavailable and
// progressDeadlineSeconds, where a guard keeps it out (the same rules as the admission policy's
// CEL, which the real-plane tests exercise), and when the live object carries it.
import { describe, expect, it } from "vitest";
import type { Deployment } from "../../../src/api/k8s.ts";
import { rolloutSpec } from "../../../src/api/v1alpha1/index.ts";
import { decisionOf, guardProblems } from "../../../src/policy/enforce.ts";
import type { ServingFloor } from "../../../src/policy/rollout/revisions.ts";
import { strategyCarried, strategyDecision, strategyProblems } from "../../../src/policy/rollout/strategy.ts";

const rollout = (bakes: (string | undefined)[]) =>
  rolloutSpec.parse({
    steps: bakes.map((bake, i) => ({
      weight: Math.round((100 * (i + 1)) / bakes.length),
      ...(bake ? { bake } : {}),
    })),
    deepCheck: { path: "/health/deep" },
  });
const floor = (f: number): ServingFloor => ({
  floor: f,
  why: "test",
  maxUnavailable: 1,
  rawMaxUnavailable: "1",
});

type Spec = Deployment["spec"];
const spec = (over: Partial<Spec> = {}): Spec => ({
  replicas: 4,
  selector: {},
  template: { spec: { containers: [{ name: "web" }] } },
  ...over,
});
const rolling = (maxUnavailable: number | string, maxSurge: number | string = "25%"): Partial<Spec> => ({
  strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable, maxSurge } },
});

describe("strategyDecision", () => {
  it("asks for maxUnavailable N − F, and the longest bake plus 600 s as the deadline", () => {
    expect(strategyDecision(rollout(["2m", "15m", undefined]), floor(3), 4)).toEqual({
      maxUnavailable: 1,
      progressDeadlineSeconds: 900 + 600,
      longestBakeSeconds: 900,
    });
  });
  it("asks nothing of the deadline without bakes, and nothing at all without spec.rollout", () => {
    expect(strategyDecision(rollout([undefined]), floor(4), 4)).toEqual({ maxUnavailable: 0 });
    expect(strategyDecision(undefined, floor(3), 4)).toBeUndefined();
  });
  it("is part of the decision's revision", () => {
    const owned = { containers: [{ name: "web" }] };
    const a = decisionOf(owned, { maxUnavailable: 1 });
    expect(a.strategy).toEqual({ maxUnavailable: 1 });
    expect(a.revision).not.toBe(decisionOf(owned, { maxUnavailable: 2 }).revision);
    expect(a.revision).not.toBe(decisionOf(owned).revision);
  });
});

describe("strategyCarried / strategyProblems", () => {
  const s = { maxUnavailable: 1, progressDeadlineSeconds: 1500, longestBakeSeconds: 900 };

  it.each([
    // [case, spec, carried]
    [
      "25% of 4 resolves to 1, deadline above the bake",
      spec({ ...rolling("25%"), progressDeadlineSeconds: 901 }),
      true,
    ],
    [
      "50% of 4 resolves to 2: to be lowered",
      spec({ ...rolling("50%"), progressDeadlineSeconds: 1500 }),
      false,
    ],
    ["defaults (25%, 600 s): the deadline is not above a 900 s bake", spec(), false],
    ["an integer 1 and a raised deadline", spec({ ...rolling(1), progressDeadlineSeconds: 1500 }), true],
    [
      "a deadline equal to the bake is not above it",
      spec({ ...rolling(0, 1), progressDeadlineSeconds: 900 }),
      false,
    ],
  ] as const)("%s", (_, live, carried) => {
    expect(strategyCarried(live, s)).toBe(carried);
    expect(strategyProblems(live, s)).toEqual([]);
  });

  it("guards: Recreate is left alone, and said so", () => {
    const live = spec({ strategy: { type: "Recreate" }, progressDeadlineSeconds: 1500 });
    const [problem, ...rest] = strategyProblems(live, s);
    expect(rest).toEqual([]);
    expect(problem).toMatch(/spec\.strategy\.type is Recreate.*Use RollingUpdate with maxUnavailable 1/);
    expect(strategyCarried(live, s)).toBe(false);
  });
  it("guards: maxUnavailable is not lowered to 0 while maxSurge is 0 (the API server refuses both at 0)", () => {
    const live = spec({ ...rolling(1, "0%"), progressDeadlineSeconds: 1500 });
    expect(strategyProblems(live, { ...s, maxUnavailable: 0 })).toEqual([
      expect.stringMatching(/would have to be 0.*maxSurge is 0.*left at 1\. Set maxSurge to at least 1/),
    ]);
    // with a surge, lowering to 0 is fine
    expect(strategyProblems(spec({ ...rolling(1, 1) }), { maxUnavailable: 0 })).toEqual([]);
  });
  it("guards: the deadline must stay above minReadySeconds", () => {
    const live = spec({ ...rolling(1), minReadySeconds: 2000 });
    expect(strategyProblems(live, s)).toEqual([
      expect.stringMatching(/progressDeadlineSeconds must exceed minReadySeconds \(2000\)/),
    ]);
  });
  it("reach the record's status.guard through guardProblems with the Deployment's spec", () => {
    const d = decisionOf({ containers: [{ name: "web" }] }, s);
    const live = spec({ strategy: { type: "Recreate" }, progressDeadlineSeconds: 1500 });
    expect(guardProblems(live.template, d, live)).toHaveLength(1);
    expect(guardProblems(live.template, d)).toEqual([]);
  });
});
