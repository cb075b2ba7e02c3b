// Rollout commands, pure: parsing the annotation, what promote, abort and retry do to the
// recorded state, and why a command is ignored — table tests with named cases.
import { describe, expect, it } from "vitest";
import type { RolloutState } from "../../../src/api/v1alpha1/healthtarget.ts";
import { rolloutSpec } from "../../../src/api/v1alpha1/index.ts";
import {
  applyCommand,
  CommandReason,
  formatCommand,
  parseCommand,
} from "../../../src/policy/rollout/commands.ts";
import { NO_ASSESSMENT } from "../../../src/policy/rollout/deepCheck.ts";
import { decideRollout, type RolloutInput } from "../../../src/policy/rollout/gating.ts";
import type { GatePod } from "../../../src/policy/rollout/revisions.ts";

const T0 = Date.parse("2026-12-04T10:00:00Z");

const state = (over: Partial<RolloutState> = {}): RolloutState => ({
  phase: "Baking",
  revision: "new",
  stableRevision: "old",
  step: 0,
  admitted: ["n1"],
  bakeStartedAt: "2026-12-04T09:59:00Z",
  ...over,
});

describe("parseCommand", () => {
  it.each([
    {
      name: "promote with its step",
      value: "promote/5d8f9c/1",
      want: { verb: "promote", revision: "5d8f9c", step: 1 },
    },
    { name: "abort", value: "abort/5d8f9c", want: { verb: "abort", revision: "5d8f9c" } },
    {
      name: "retry, surrounding blanks",
      value: " retry/5d8f9c ",
      want: { verb: "retry", revision: "5d8f9c" },
    },
  ])("$name", ({ value, want }) => {
    expect(parseCommand(value)).toEqual(want);
    expect(formatCommand(want as never)).toBe(value.trim());
  });
  it.each([
    { name: "unknown verb", value: "pause/5d8f9c", error: /unknown command "pause"/ },
    { name: "no revision", value: "abort", error: /names no revision/ },
    { name: "promote without its step", value: "promote/5d8f9c", error: /names the step/ },
    { name: "promote with step 0", value: "promote/5d8f9c/0", error: /names the step/ },
    { name: "abort with a step", value: "abort/5d8f9c/1", error: /takes no step/ },
    { name: "a revision that is no hash", value: "abort/Web App", error: /names no revision/ },
  ])("refuses $name", ({ value, error }) => {
    const parsed = parseCommand(value);
    expect("error" in parsed && parsed.error).toMatch(error);
  });
});

describe("applyCommand", () => {
  it.each([
    { name: "promote of the current step while baking", s: state(), value: "promote/new/1", promotedStep: 0 },
    {
      name: "promote of a step still filling",
      s: state({ phase: "Progressing", step: 1, admitted: [] }),
      value: "promote/new/2",
      promotedStep: 1,
    },
  ])("applies $name", ({ s, value, promotedStep }) => {
    const out = applyCommand(s, value, T0, "web");
    expect(out.state?.promotedStep).toBe(promotedStep);
    expect(out.state?.lastCommand).toMatchObject({ value, result: "Applied" });
    expect(out.event).toMatchObject({ type: "Normal", reason: CommandReason.Promoted });
    expect(out.abort).toBeUndefined();
  });

  it("abort: handed to the gating decision, which closes the gates", () => {
    const out = applyCommand(state(), "abort/new", T0, "web");
    expect(out.abort).toMatch(/aborted by a human/);
    expect(out.state?.lastCommand?.result).toBe("Applied");
    expect(out.event).toBeUndefined();
  });

  it("retry: back to step 1, the dropped pods re-checked, the kept ones still admitted, deadline from now", () => {
    const aborted = state({
      phase: "Aborted",
      step: 1,
      admitted: ["n1", "n2"],
      dropped: ["n2"],
      kept: ["n1"],
      failures: 3,
      promotedStep: 0,
      reason: "DeepCheckFailed",
    });
    const out = applyCommand(aborted, "retry/new", T0, "web");
    expect(out.state).toMatchObject({
      phase: "Progressing",
      step: 0,
      admitted: ["n1"],
      retriedAt: "2026-12-04T10:00:00Z",
      reason: CommandReason.Retried,
    });
    for (const gone of ["dropped", "kept", "failures", "bakeStartedAt", "promotedStep"] as const)
      expect(out.state?.[gone], gone).toBeUndefined();
    expect(out.event?.reason).toBe(CommandReason.Retried);
  });

  it.each([
    {
      name: "a command for another revision",
      s: state(),
      value: "abort/older",
      why: /for revision older but the rollout is at revision new/,
    },
    {
      name: "promote of another step",
      s: state({ step: 1 }),
      value: "promote/new/1",
      why: /for step 1 but the rollout is at step 2/,
    },
    {
      name: "promote of an aborted rollout",
      s: state({ phase: "Aborted" }),
      value: "promote/new/1",
      why: /retry\/new/,
    },
    {
      name: "promote during a hold",
      s: state({ phase: "Inconclusive", reason: "DependencyDegraded" }),
      value: "promote/new/1",
      why: /holds \(DependencyDegraded\)/,
    },
    {
      name: "abort of an aborted rollout",
      s: state({ phase: "Aborted" }),
      value: "abort/new",
      why: /already aborted/,
    },
    { name: "retry of a rollout that is not aborted", s: state(), value: "retry/new", why: /is Baking/ },
    {
      name: "a command for a completed revision",
      s: state({ phase: "Completed", stableRevision: "new" }),
      value: "abort/new",
      why: /completed and is stable/,
    },
    {
      name: "a command without a gated rollout",
      s: state({ stableRevision: undefined }),
      value: "abort/new",
      why: /first revision/,
    },
    { name: "garbage", s: state(), value: "rollback", why: /unknown command/ },
  ])("ignores $name, says why and records it", ({ s, value, why }) => {
    const out = applyCommand(s, value, T0, "web");
    expect(out.event).toMatchObject({ type: "Warning", reason: CommandReason.Rejected });
    expect(out.event?.message).toMatch(why);
    expect(out.state?.lastCommand).toMatchObject({ value, result: "Rejected" });
    expect(out.abort).toBeUndefined();
    expect({ ...out.state, lastCommand: undefined }).toEqual({ ...s, lastCommand: undefined });
  });

  it.each([
    { name: "promote", before: state(), value: "promote/new/1" },
    { name: "abort", before: state(), value: "abort/new" },
    { name: "retry", before: state({ phase: "Aborted", kept: [] }), value: "retry/new" },
  ])(
    "$name seen again after it applied (annotation not yet removed, or a successor re-reads it): nothing",
    ({ before, value }) => {
      const first = applyCommand(before, value, T0, "web");
      // what the gating decision makes of it
      const after: RolloutState = {
        ...first.state!,
        ...(first.abort ? { phase: "Aborted" } : {}),
        ...(value.startsWith("promote") ? { step: 1 } : {}),
      };
      const again = applyCommand(after, value, T0 + 1000, "web");
      expect(again).toEqual({ state: after });
    },
  );
});

describe("the gating decision honours the commands", () => {
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
  const passing = { ...NO_ASSESSMENT, consecutivePasses: 5, passes: 5, last: "pass" as const };
  const stable = (name: string) => pod(name, "old", { gate: "True", ready: true, assessment: passing });
  const input = (over: Partial<RolloutInput> = {}): RolloutInput => ({
    deployment: { name: "web", generation: 2, observedGeneration: 2, replicas: 4 },
    newestRevision: "new",
    complete: false,
    pods: [
      stable("s1"),
      stable("s2"),
      stable("s3"),
      pod("n1", "new", { gate: "True", ready: true, assessment: passing }),
      pod("n2", "new", { assessment: passing }),
    ],
    rollout: rolloutSpec.parse({
      steps: [{ weight: 25, bake: "10m" }, { weight: 50, bake: "10m" }, { weight: 100 }],
      deepCheck: { path: "/health/deep", successThreshold: 3, failureLimit: 3, stableSample: 2 },
    }),
    floor: { floor: 3, why: "N − 1", maxUnavailable: 0, rawMaxUnavailable: "0" },
    previous: state(),
    now: T0,
    ...over,
  });

  it("without a command, step 1 bakes for its 10 minutes", () => {
    const out = decideRollout(input());
    expect(out.state).toMatchObject({ phase: "Baking", step: 0 });
    expect(out.gates.filter((g) => g.pod === "n2")).toEqual([]);
  });

  it("promoted: step 1's bake is skipped, step 2 admits the next passing pod and bakes", () => {
    const previous = applyCommand(state(), "promote/new/1", T0, "web").state;
    const out = decideRollout(input({ previous }));
    expect(out.state).toMatchObject({ phase: "Baking", step: 1, bakeStartedAt: "2026-12-04T10:00:00Z" });
    expect(out.gates.filter((g) => g.status === "True").map((g) => g.pod)).toEqual(["n2"]);
  });

  it("abort requested: aborted with AbortRequested, the admitted pod's gate closed down to the floor", () => {
    const command = applyCommand(state(), "abort/new", T0, "web");
    const out = decideRollout(input({ previous: command.state, abortRequested: command.abort! }));
    expect(out.state).toMatchObject({ phase: "Aborted", reason: "AbortRequested", dropped: ["n1"] });
    expect(out.gates.filter((g) => g.status === "False").map((g) => g.pod)).toEqual(["n1"]);
    expect(out.state?.lastCommand?.result).toBe("Applied");
  });

  it("abort requested during a CorrelatedFailure hold: a human decided, it aborts (down to the floor)", () => {
    const command = applyCommand(state(), "abort/new", T0, "web");
    const hold = {
      reason: "CorrelatedFailure" as const,
      message: "60% of pods unready at once",
      since: new Date(T0),
    };
    expect(decideRollout(input({ hold })).state?.reason).toBe("CorrelatedFailure");
    const out = decideRollout(input({ hold, previous: command.state, abortRequested: command.abort! }));
    expect(out.state).toMatchObject({ phase: "Aborted", reason: "AbortRequested" });
  });

  it("retried: newPodDeadline counts from the retry, not from the pods' creation", () => {
    const late = T0 + 3600_000;
    const aborted = state({ phase: "Aborted", kept: [], admitted: [], dropped: ["n1"] });
    const previous = applyCommand(aborted, "retry/new", late, "web").state;
    const fresh = input({
      previous,
      now: late + 1000,
      pods: [stable("s1"), stable("s2"), stable("s3"), pod("n1", "new", { gate: "False" })],
    });
    expect(decideRollout(fresh).state).toMatchObject({ phase: "Progressing", reason: "Progressing" });
    // while without the retry the same pods were long past their deadline
    const { retriedAt: _r, ...unretried } = previous!;
    expect(decideRollout({ ...fresh, previous: unretried }).state?.reason).toBe("NewPodDeadlineExceeded");
  });
});
