// The deep-check assessment: what one measurement means, and the consecutive counts per pod.
// Transport errors (the pod was not reached) are kept apart from failures (it answered wrongly).
import { describe, expect, it } from "vitest";
import {
  assessDeepCheck,
  countStandings,
  deepCheckOutcome,
  NO_ASSESSMENT,
  podStanding,
  tallyByCohort,
  type PodAssessment,
} from "../../../src/policy/rollout/deepCheck.ts";
import type { Measurement, Outcome } from "../../../src/prober/types.ts";

const expect200 = { statuses: [200] };
const expectBody = { statuses: [200, 204], bodyContains: "db: up" };

describe("deepCheckOutcome", () => {
  it.each<{ name: string; m: Partial<Measurement>; expect: typeof expect200; want: Outcome }>([
    { name: "200 as expected", m: { statusCode: 200 }, expect: expect200, want: "pass" },
    { name: "503: answered, wrongly", m: { statusCode: 503 }, expect: expect200, want: "fail" },
    { name: "302 is not followed and not expected", m: { statusCode: 302 }, expect: expect200, want: "fail" },
    {
      name: "204 is one of the expected statuses",
      m: { statusCode: 204, bodyMatched: true },
      expect: expectBody,
      want: "pass",
    },
    {
      name: "200 without the expected text",
      m: { statusCode: 200, bodyMatched: false },
      expect: expectBody,
      want: "fail",
    },
    { name: "200 whose match was never measured", m: { statusCode: 200 }, expect: expectBody, want: "fail" },
    {
      name: "200 truncated at the cap still judged by status",
      m: { statusCode: 200, truncated: true },
      expect: expect200,
      want: "pass",
    },
    { name: "refused: transport error", m: { errorClass: "refused" }, expect: expect200, want: "error" },
    { name: "reset before an answer", m: { errorClass: "reset" }, expect: expect200, want: "error" },
    { name: "unreachable", m: { errorClass: "unreachable" }, expect: expect200, want: "error" },
    {
      name: "timeout before any answer",
      m: { errorClass: "timeout-before-answer" },
      expect: expect200,
      want: "error",
    },
    { name: "TLS handshake failed", m: { errorClass: "tls" }, expect: expect200, want: "error" },
    { name: "other error before an answer", m: { errorClass: "other" }, expect: expect200, want: "error" },
    { name: "garbage: answered, not HTTP", m: { errorClass: "protocol" }, expect: expect200, want: "fail" },
    {
      name: "body too slow after a 200",
      m: { statusCode: 200, errorClass: "timeout-during-body" },
      expect: expect200,
      want: "fail",
    },
    {
      name: "connection broken mid-body",
      m: { statusCode: 200, errorClass: "reset-during-body" },
      expect: expect200,
      want: "fail",
    },
  ])("$name → $want", ({ m, expect: e, want }) => {
    expect(deepCheckOutcome(m, e)).toBe(want);
  });
});

const run = (outcomes: Outcome[]): PodAssessment => outcomes.reduce(assessDeepCheck, NO_ASSESSMENT);
const p = "pass" as const;
const f = "fail" as const;
const e = "error" as const;

describe("assessDeepCheck", () => {
  it.each<{ name: string; outcomes: Outcome[]; want: Partial<PodAssessment> }>([
    {
      name: "nothing yet",
      outcomes: [],
      want: { consecutivePasses: 0, consecutiveFailures: 0, consecutiveErrors: 0 },
    },
    { name: "three passes", outcomes: [p, p, p], want: { consecutivePasses: 3, passes: 3, last: "pass" } },
    {
      name: "a failure ends the pass streak",
      outcomes: [p, p, f],
      want: { consecutivePasses: 0, consecutiveFailures: 1, passes: 2, failures: 1 },
    },
    {
      name: "a pass ends the failure streak",
      outcomes: [f, f, p],
      want: { consecutivePasses: 1, consecutiveFailures: 0 },
    },
    {
      name: "an error ends the pass streak",
      outcomes: [p, p, e],
      want: { consecutivePasses: 0, consecutiveErrors: 1, errors: 1 },
    },
    {
      name: "an error is not a failure and leaves the failure streak alone",
      outcomes: [f, e, f],
      want: { consecutiveFailures: 2, consecutiveErrors: 0, failures: 2, errors: 1 },
    },
    {
      name: "errors only",
      outcomes: [e, e, e],
      want: { consecutiveErrors: 3, consecutiveFailures: 0, failures: 0 },
    },
    {
      name: "a failure ends the error streak",
      outcomes: [e, e, f],
      want: { consecutiveErrors: 0, consecutiveFailures: 1 },
    },
  ])("$name", ({ outcomes, want }) => {
    expect(run(outcomes)).toMatchObject(want);
  });

  it("does not change its input", () => {
    const before = run([p]);
    const copy = { ...before };
    assessDeepCheck(before, f);
    expect(before).toEqual(copy);
  });
});

describe("podStanding (successThreshold 3, failureLimit 2)", () => {
  const t = { successThreshold: 3, failureLimit: 2 };
  it.each<{ outcomes: Outcome[]; want: string }>([
    { outcomes: [], want: "Pending" },
    { outcomes: [p, p], want: "Pending" },
    { outcomes: [p, p, p], want: "Passing" },
    { outcomes: [p, p, e, p], want: "Pending" },
    { outcomes: [f, f], want: "Failing" },
    { outcomes: [f, e, f], want: "Failing" },
    { outcomes: [e, e], want: "Unreachable" },
    { outcomes: [e, e, p, p, p], want: "Passing" },
  ])("$outcomes → $want", ({ outcomes, want }) => {
    expect(podStanding(run(outcomes), t)).toBe(want);
  });
});

describe("tallyByCohort", () => {
  it("counts outcomes per cohort: errors on both cohorts read as 'cannot reach pods', not a bad revision", () => {
    expect(
      tallyByCohort([
        { cohort: "new", outcome: "error" },
        { cohort: "new", outcome: "error" },
        { cohort: "stable", outcome: "error" },
        { cohort: "stable", outcome: "pass" },
        { cohort: "new", outcome: "fail" },
      ]),
    ).toEqual({ new: { pass: 0, fail: 1, error: 2 }, stable: { pass: 1, fail: 0, error: 1 } });
  });
});

describe("countStandings: the policy status's aggregate", () => {
  it("counts pods per cohort by standing, and unchecked pods beside them", () => {
    expect(
      countStandings(
        [
          { cohort: "new", standing: "Passing" },
          { cohort: "new", standing: "Pending" },
          { cohort: "new", standing: "Failing" },
          { cohort: "stable", standing: "Passing" },
          { cohort: "stable", standing: "Unreachable" },
        ],
        [{ cohort: "new" }, { cohort: "stable" }, { cohort: "stable" }],
      ),
    ).toEqual({
      canary: { passing: 1, failing: 1, unreachable: 0, pending: 1, unchecked: 1 },
      stable: { passing: 1, failing: 0, unreachable: 1, pending: 0, unchecked: 2 },
    });
  });
  it("is absent when no pod is handed over", () => {
    expect(countStandings([], [])).toBeUndefined();
  });
});
