// When another manager keeps taking Enforce's fields back, healthgate stops after MAX_FLIPS
// re-applies within WINDOW_MS, holds with exponential backoff, names the manager, and a
// replica that starts later resumes the hold the Deployment reports.
import { describe, expect, it } from "vitest";
import {
  emptyHistory,
  holding,
  MAX_FLIPS,
  otherProbeManager,
  recordFlip,
  resumedHold,
  WINDOW_MS,
  type FlipHistory,
} from "../../../src/policy/enforceConflict.ts";

const MINUTE = 60_000;

function flipTimes(times: number[], start: FlipHistory = emptyHistory()) {
  let history = start;
  const conflicts: boolean[] = [];
  for (const t of times) {
    const next = recordFlip(history, t);
    history = next.history;
    conflicts.push(next.conflicted);
  }
  return { history, conflicts };
}

describe("recordFlip and holding", () => {
  it(`conflicts on the ${MAX_FLIPS}rd flip within the window, then holds for a minute`, () => {
    const { history, conflicts } = flipTimes([0, MINUTE, 2 * MINUTE]);
    expect(conflicts).toEqual([false, false, true]);
    expect(history).toEqual({ flips: [], episodes: 1, holdUntil: 3 * MINUTE });
    expect(holding(history, 3 * MINUTE - 1)).toBe(true);
    expect(holding(history, 3 * MINUTE)).toBe(false);
  });

  it("forgets flips older than the window", () => {
    const { conflicts } = flipTimes([0, MINUTE, WINDOW_MS + MINUTE]);
    expect(conflicts).toEqual([false, false, false]);
  });

  it("doubles the hold with every episode, up to an hour", () => {
    let history = emptyHistory();
    const holds: number[] = [];
    let t = 0;
    for (let episode = 0; episode < 9; episode++) {
      history = flipTimes([t, t + 1, t + 2], history).history;
      holds.push((history.holdUntil ?? 0) - (t + 2));
      t = history.holdUntil ?? t;
    }
    expect(holds.map((ms) => ms / MINUTE)).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
  });

  it("does not hold a fresh history", () => {
    expect(holding(emptyHistory(), 0)).toBe(false);
  });
});

describe("resumedHold", () => {
  const type = "healthgate.io/ProbesCompliant";

  it("resumes a one-minute hold when the Deployment reports EnforceConflict", () => {
    const conditions = [{ type, status: "False", reason: "EnforceConflict" }];
    const resumed = resumedHold(conditions, type, 1_000);
    expect(resumed).toEqual({ flips: [], episodes: 1, holdUntil: 1_000 + MINUTE });
    expect(holding(resumed!, 1_000)).toBe(true);
  });

  it.each([
    ["no conditions", undefined],
    ["compliant", [{ type, status: "True", reason: "Compliant" }]],
    ["non-compliant for another reason", [{ type, status: "False", reason: "Findings" }]],
    [
      "the conflict on another condition",
      [{ type: "healthgate.io/Other", status: "False", reason: "EnforceConflict" }],
    ],
  ])("resumes nothing when %s", (_name, conditions) => {
    expect(resumedHold(conditions, type, 0)).toBeUndefined();
  });
});

describe("otherProbeManager", () => {
  const probeFields = (name = "web") => ({
    "f:spec": {
      "f:template": { "f:spec": { "f:containers": { [`k:{"name":"${name}"}`]: { "f:livenessProbe": {} } } } },
    },
  });

  it("names the latest other manager that owns probe fields", () => {
    const managed = [
      { manager: "healthgate", operation: "Apply", time: "2026-11-01T10:05:00Z", fieldsV1: probeFields() },
      { manager: "kubectl", operation: "Update", time: "2026-11-01T09:00:00Z", fieldsV1: probeFields() },
      {
        manager: "argocd-controller",
        operation: "Apply",
        time: "2026-11-01T10:00:00Z",
        fieldsV1: probeFields(),
      },
      {
        manager: "kube-controller-manager",
        operation: "Update",
        time: "2026-11-01T11:00:00Z",
        fieldsV1: probeFields(),
      },
      {
        manager: "labeller",
        operation: "Apply",
        time: "2026-11-01T12:00:00Z",
        fieldsV1: { "f:metadata": {} },
      },
    ];
    expect(otherProbeManager(managed, "healthgate")).toBe("argocd-controller");
  });

  it("names nobody when only healthgate owns probe fields", () => {
    expect(
      otherProbeManager([{ manager: "healthgate", fieldsV1: probeFields() }], "healthgate"),
    ).toBeUndefined();
  });
});
