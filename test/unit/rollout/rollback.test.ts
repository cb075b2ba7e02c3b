// onFailure Rollback, pure: the abort that asks for the restore (Enforce only; Audit acts as Hold),
// the rolled-back state kept until a human asks, a failed template written back by another
// manager (reported, never fought), and the managedFields rewrite — with a fake clock.
import { describe, expect, it } from "vitest";
import type { RollbackState, RolloutState } from "../../../src/api/v1alpha1/healthtarget.ts";
import { rolloutSpec } from "../../../src/api/v1alpha1/index.ts";
import { NO_ASSESSMENT, type PodAssessment } from "../../../src/policy/rollout/deepCheck.ts";
import { applyCommand } from "../../../src/policy/rollout/commands.ts";
import {
  decideRollout,
  needsTemplateWriter,
  rollbackHolds,
  type RolloutInput,
} from "../../../src/policy/rollout/gating.ts";
import {
  differences,
  disownTemplateOps,
  healthgateTemplateOwners,
  restoredTemplate,
  templateWriter,
} from "../../../src/policy/rollout/rollback.ts";
import type { GatePod } from "../../../src/policy/rollout/revisions.ts";

const T0 = Date.parse("2026-12-04T10:00:00Z");
const sec = (s: number) => T0 + s * 1000;

const spec = (onFailure: "Hold" | "Rollback") =>
  rolloutSpec.parse({
    steps: [{ weight: 25, bake: "1m" }, { weight: 100 }],
    deepCheck: { path: "/health/deep", successThreshold: 3, failureLimit: 3, stableSample: 2 },
    onFailure,
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
const pod = (name: string, revision: string, over: Partial<GatePod> = {}): GatePod => ({
  name,
  uid: `uid-${name}`,
  revision,
  createdAt: T0,
  deleting: false,
  gated: true,
  containersReady: true,
  ready: true,
  gate: "True",
  ...over,
});
const stable = (name: string) => pod(name, "old", { assessment: passes(50) });
const FLOOR = { floor: 3, why: "N − 1", maxUnavailable: 0, rawMaxUnavailable: "0" };
const failing = [stable("s1"), stable("s2"), stable("s3"), pod("n1", "new", { assessment: fails(3) })];
const progressing: RolloutState = {
  phase: "Progressing",
  revision: "new",
  stableRevision: "old",
  step: 0,
  admitted: ["n1"],
};
const input = (over: Partial<RolloutInput> = {}): RolloutInput => ({
  deployment: { name: "web", generation: 2, observedGeneration: 2, replicas: 4 },
  newestRevision: "new",
  complete: false,
  pods: failing,
  rollout: spec("Rollback"),
  floor: FLOOR,
  previous: progressing,
  now: T0,
  enforcing: true,
  ...over,
});
const rolledBack = (rollback: Partial<RollbackState>): RolloutState => ({
  ...progressing,
  phase: "Aborted",
  reason: "DeepCheckFailed",
  message: "x",
  rollback: {
    phase: "Pending",
    failedRevision: "new",
    toRevision: "old",
    abortReason: "DeepCheckFailed",
    ...rollback,
  },
});

describe("the abort, by onFailure and mode", () => {
  it.each([
    {
      name: "Rollback in Enforce: Pending, restored by the next reconcile (after the release pins the decision)",
      over: {},
      rollback: {
        phase: "Pending",
        failedRevision: "new",
        toRevision: "old",
        abortReason: "DeepCheckFailed",
      },
      says: "onFailure is Rollback: restoring stable revision old's template as kubectl rollout undo does",
    },
    {
      name: "Rollback in Audit acts as Hold, and says so",
      over: { enforcing: false },
      rollback: undefined,
      says: "onFailure is Rollback, which in Audit acts as Hold (Audit never changes a Deployment's spec)",
    },
    {
      name: "Hold: stays aborted and says what a human should do",
      over: { rollout: spec("Hold") },
      rollback: undefined,
      says: "onFailure is Hold: the revision stays aborted and a human decides: roll back (kubectl rollout undo deployment/web",
    },
  ])("$name", ({ over, rollback, says }) => {
    const o = decideRollout(input(over));
    expect(o.state?.phase).toBe("Aborted");
    expect(o.state?.rollback).toEqual(rollback);
    expect(o.condition).toMatchObject({ status: "False", reason: "DeepCheckFailed" });
    expect(o.condition?.message).toContain(says);
    // The restore is never in the abort's own outcome: the next reconcile's release pins the decision first.
    expect(o.rollback).toBeUndefined();
    if (!rollback) expect(o.condition?.message).toContain("healthgate rollout retry web");
  });

  it("a human's abort with Rollback rolls back too", () => {
    const o = decideRollout(
      input({ pods: [stable("s1"), pod("n1", "new")], abortRequested: "aborted by a human" }),
    );
    expect(o.state?.rollback?.phase).toBe("Pending");
    expect(o.state?.reason).toBe("AbortRequested");
  });
});

describe("after the abort", () => {
  const cases: {
    name: string;
    previous: RolloutState;
    newest: string;
    over?: Partial<RolloutInput>;
    phase?: RollbackState["phase"] | "gone";
    reason: string;
    intent?: boolean;
    event?: string;
    message?: string;
  }[] = [
    {
      name: "Pending, the failed revision newest: the controller restores",
      previous: rolledBack({}),
      newest: "new",
      phase: "Pending",
      reason: "DeepCheckFailed",
      intent: true,
    },
    {
      name: "Pending, the stable revision newest again: RolledBack, at now, one Event",
      previous: rolledBack({}),
      newest: "old",
      phase: "RolledBack",
      reason: "RolledBack",
      event: "RolledBack",
      message: "rolled back to stable revision old at 2026-12-04T10:00:30Z",
    },
    {
      name: "RolledBack stays so (no Event again) and says how a human releases again",
      previous: rolledBack({ phase: "RolledBack", at: "2026-12-04T10:00:10Z" }),
      newest: "old",
      over: { complete: true },
      phase: "RolledBack",
      reason: "RolledBack",
      message: "until a human asks: apply a new revision, or healthgate rollout retry web",
    },
    {
      name: "the failed template written back by another manager: Overridden, named, never fought",
      previous: rolledBack({ phase: "RolledBack", at: "2026-12-04T10:00:10Z" }),
      newest: "new",
      over: { templateWriter: "argocd-controller" },
      phase: "Overridden",
      reason: "RollbackOverridden",
      event: "RollbackOverridden",
      message: "field manager argocd-controller wrote the template of aborted revision new back",
    },
    {
      name: "Overridden stays so, without a second Event",
      previous: rolledBack({ phase: "Overridden", manager: "argocd-controller" }),
      newest: "new",
      phase: "Overridden",
      reason: "RollbackOverridden",
      message: "field manager argocd-controller",
    },
    {
      name: "a restore that would make a new ReplicaSet: Blocked, acting as Hold",
      previous: rolledBack({}),
      newest: "new",
      over: {
        rollbackBlocked: "admission would change the restored template (/spec/containers/0/livenessProbe)",
      },
      phase: "Blocked",
      reason: "RollbackBlocked",
      event: "RollbackBlocked",
      message: "Acting as Hold",
    },
    {
      name: "a new revision of the user's own: the rollback is over, the new revision is gated",
      previous: rolledBack({ phase: "RolledBack" }),
      newest: "newer",
      phase: "gone",
      reason: "NewRevision",
    },
  ];
  it.each(cases)("$name", ({ previous, newest, over, phase, reason, intent, event, message }) => {
    const o = decideRollout(input({ previous, newestRevision: newest, now: sec(30), ...over }));
    if (phase === "gone") expect(o.state?.rollback).toBeUndefined();
    else expect(o.state?.rollback?.phase).toBe(phase);
    expect(o.state?.reason).toBe(reason);
    if (phase !== "gone") expect(o.state?.phase).toBe("Aborted");
    expect(o.rollback !== undefined).toBe(intent ?? false);
    expect(o.events.map((e) => e.reason)).toEqual(event ? [event] : []);
    // Sent when it happens: the condition stays False, so no flip would send it.
    for (const e of o.events) expect(e.immediate).toBe(true);
    if (message) expect(o.state?.message).toContain(message);
  });

  it("stable pods are never held while rolled back", () => {
    const o = decideRollout(
      input({
        previous: rolledBack({ phase: "RolledBack" }),
        newestRevision: "old",
        pods: [pod("s5", "old", { gate: "False" })],
      }),
    );
    expect(o.gates).toMatchObject([{ pod: "s5", status: "True" }]);
  });

  it("who wrote the template is looked up only when the failed revision is newest again after a rollback", () => {
    expect(needsTemplateWriter(rolledBack({ phase: "RolledBack" }), "new")).toBe(true);
    expect(needsTemplateWriter(rolledBack({ phase: "RolledBack" }), "old")).toBe(false);
    expect(needsTemplateWriter(rolledBack({ phase: "Pending" }), "new")).toBe(false);
    expect(needsTemplateWriter(rolledBack({ phase: "Overridden", manager: "x" }), "new")).toBe(false);
    expect(needsTemplateWriter(progressing, "new")).toBe(false);
  });

  it("the stable decision stays pinned while the rollback holds; not once Blocked", () => {
    expect(rollbackHolds(rolledBack({ phase: "Pending" }))).toBe(true);
    expect(rollbackHolds(rolledBack({ phase: "RolledBack" }))).toBe(true);
    expect(rollbackHolds(rolledBack({ phase: "Overridden" }))).toBe(true);
    expect(rollbackHolds(rolledBack({ phase: "Blocked" }))).toBe(false);
    expect(rollbackHolds(progressing)).toBe(false);
  });
});

describe("release, abort and rollback cannot loop", () => {
  it("rolled back, nothing is released again by itself; retry ends the hold and the stable revision is Completed", () => {
    let state: RolloutState | undefined = rolledBack({ phase: "RolledBack" });
    // however long it runs, it stays rolled back
    for (let s = 0; s < 600; s += 60) {
      state = decideRollout(
        input({ previous: state, newestRevision: "old", complete: true, now: sec(s) }),
      ).state;
      expect(state?.rollback?.phase).toBe("RolledBack");
      expect(rollbackHolds(state)).toBe(true);
    }
    const retried = applyCommand(state, "retry/new", sec(700), "web");
    expect(retried.state?.rollback).toBeUndefined();
    expect(retried.state).toMatchObject({ phase: "Completed", revision: "old", stableRevision: "old" });
    expect(retried.event?.message).toContain("the rollback of revision new to stable revision old is over");
    const after = decideRollout(
      input({ previous: retried.state, newestRevision: "old", complete: true, now: sec(701) }),
    );
    expect(after.state).toMatchObject({ phase: "Completed", reason: "RolloutComplete" });
    expect(rollbackHolds(after.state)).toBe(false);
  });

  it("retry while Overridden re-runs the failed revision's checks and drops the rollback", () => {
    const retried = applyCommand(rolledBack({ phase: "Overridden" }), "retry/new", sec(10), "web");
    expect(retried.state).toMatchObject({ phase: "Progressing", step: 0 });
    expect(retried.state?.rollback).toBeUndefined();
  });
});

describe("the restore's pure parts", () => {
  it("the template is the ReplicaSet's without its pod-template-hash label", () => {
    const t = { metadata: { labels: { app: "web", "pod-template-hash": "abc" } }, spec: { containers: [] } };
    expect(restoredTemplate(t)).toEqual({ metadata: { labels: { app: "web" } }, spec: { containers: [] } });
    expect(t.metadata.labels["pod-template-hash"]).toBe("abc");
  });

  it("differences name the paths admission changed", () => {
    expect(differences({ a: { b: 1, c: [1] } }, { a: { b: 1, c: [1] } })).toEqual([]);
    expect(differences({ a: { b: 1, c: [1] } }, { a: { b: 2, c: [1, 2] } })).toEqual(["/a/b", "/a/c/1"]);
  });

  const template = {
    "f:metadata": {},
    "f:spec": { "f:containers": { 'k:{"name":"web"}': { "f:image": {} } } },
  };
  const entries = [
    {
      manager: "test-user",
      operation: "Apply",
      time: "2026-12-04T10:00:00Z",
      fieldsV1: { "f:spec": { "f:template": template } },
    },
    { manager: "healthgate-release", operation: "Apply", fieldsV1: { "f:metadata": { "f:labels": {} } } },
    {
      manager: "healthgate-rollback",
      operation: "Update",
      fieldsV1: { "f:spec": { "f:template": template } },
    },
    {
      manager: "healthgate",
      operation: "Update",
      fieldsV1: { "f:spec": { "f:template": template, "f:replicas": {} }, "f:metadata": {} },
    },
    {
      manager: "kube-controller-manager",
      operation: "Update",
      subresource: "status",
      fieldsV1: { "f:status": {} },
    },
  ];

  it("healthgate's entries lose their template fields (the entry itself when nothing else is left), last first", () => {
    expect(healthgateTemplateOwners(entries)).toEqual(["healthgate-rollback", "healthgate"]);
    expect(disownTemplateOps(entries)).toEqual([
      { op: "test", path: "/metadata/managedFields/3/manager", value: "healthgate" },
      {
        op: "replace",
        path: "/metadata/managedFields/3/fieldsV1",
        value: { "f:spec": { "f:replicas": {} }, "f:metadata": {} },
      },
      { op: "test", path: "/metadata/managedFields/2/manager", value: "healthgate-rollback" },
      { op: "remove", path: "/metadata/managedFields/2" },
    ]);
    expect(disownTemplateOps(entries.slice(0, 2))).toEqual([]);
  });

  it("the template's writer: the latest non-healthgate entry owning a template field", () => {
    expect(templateWriter(entries)).toBe("test-user");
    expect(
      templateWriter([
        ...entries,
        {
          manager: "argocd-controller",
          operation: "Apply",
          time: "2026-12-04T10:05:00Z",
          fieldsV1: { "f:spec": { "f:template": {} } },
        },
      ]),
    ).toBe("argocd-controller");
    expect(templateWriter(entries.slice(1))).toBeUndefined();
  });
});
