// The Argo CD health checks in docs/argocd/*.lua, run in the interpreter Argo CD runs them in:
// gopher-lua with Argo CD's libraries (hack/luahealth, built by hack/build-luahealth.sh; npm
// test builds it before the run and passes its path in HEALTHGATE_LUAHEALTH).
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const bin =
  process.env["HEALTHGATE_LUAHEALTH"] ??
  execFileSync("bash", ["hack/build-luahealth.sh"], { encoding: "utf8" }).trim();

interface Health {
  status?: string;
  message?: string;
  error?: string;
}

function health(script: string, objects: readonly unknown[]): Health[] {
  const out = execFileSync(bin, [`docs/argocd/${script}`], {
    input: JSON.stringify(objects),
    encoding: "utf8",
  });
  return JSON.parse(out) as Health[];
}

const cond = (type: string, status: string, reason: string, message = "") => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: "2026-12-04T10:00:00Z",
});

describe("docs/argocd/deployment.lua (apps/Deployment override)", () => {
  const deployment = (
    status: Record<string, unknown>,
    spec: Record<string, unknown> = {},
    generation = 2,
  ) => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace: "shop", generation },
    spec: { replicas: 4, ...spec },
    status: { observedGeneration: 2, ...status },
  });
  const done = { replicas: 4, updatedReplicas: 4, availableReplicas: 4, readyReplicas: 4 };

  it("keeps Argo CD's built-in verdicts where healthgate has none", () => {
    const results = health("deployment.lua", [
      deployment(done),
      deployment(done, { paused: true }),
      deployment(done, {}, 3),
      deployment({ ...done, updatedReplicas: 1 }),
      deployment({ ...done, replicas: 5 }),
      deployment({ ...done, availableReplicas: 3 }),
      deployment({ ...done, conditions: [cond("Progressing", "False", "ProgressDeadlineExceeded")] }),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      "Healthy",
      "Suspended",
      "Progressing",
      "Progressing",
      "Progressing",
      "Progressing",
      "Degraded",
    ]);
    expect(results[3]?.message).toBe(
      "Waiting for rollout to finish: 1 out of 4 new replicas have been updated...",
    );
    expect(results[6]?.message).toBe('Deployment "web" exceeded its progress deadline');
  });

  it("calls a rollout healthgate aborted Degraded, not Progressing, and a held one Suspended", () => {
    const stuck = { replicas: 5, updatedReplicas: 1, availableReplicas: 4 };
    const [aborted, held, judging, fine] = health("deployment.lua", [
      deployment({
        ...stuck,
        conditions: [
          cond("healthgate.io/RolloutHealthy", "False", "DeepCheckFailed", "pod web-2 answered 500"),
        ],
      }),
      deployment({
        ...stuck,
        conditions: [
          cond("healthgate.io/RolloutHealthy", "Unknown", "DependencyDegraded", "stable pods fail too"),
        ],
      }),
      deployment({
        ...done,
        conditions: [cond("healthgate.io/RolloutHealthy", "Unknown", "NewRevision", "revision 7")],
      }),
      deployment({ ...done, conditions: [cond("healthgate.io/RolloutHealthy", "True", "Completed")] }),
    ]);
    expect(aborted).toEqual({
      status: "Degraded",
      message: "healthgate DeepCheckFailed: pod web-2 answered 500",
    });
    expect(held?.status).toBe("Suspended");
    expect(judging).toEqual({ status: "Progressing", message: "healthgate NewRevision: revision 7" });
    expect(fine?.status).toBe("Healthy");
  });

  it("does not judge a generation the Deployment controller has not observed yet by healthgate's old verdict", () => {
    const [result] = health("deployment.lua", [
      deployment(
        { ...done, conditions: [cond("healthgate.io/RolloutHealthy", "False", "DeepCheckFailed")] },
        {},
        3,
      ),
    ]);
    expect(result?.status).toBe("Progressing");
  });
});

describe("docs/argocd/healthpolicy.lua (healthgate.io/HealthPolicy)", () => {
  const policy = (status: Record<string, unknown> | undefined, generation = 1) => ({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "web", namespace: "shop", generation },
    ...(status ? { status: { observedGeneration: 1, ...status } } : {}),
  });
  const ready = cond("Ready", "True", "Reconciled", "governing 2 Deployments");

  it("returns Healthy, Progressing, Degraded and Suspended for the matching states", () => {
    const results = health("healthpolicy.lua", [
      policy({ conditions: [ready], targetCount: 2, compliantCount: 2 }),
      policy(undefined),
      policy({ conditions: [ready] }, 2),
      policy({
        conditions: [cond("Ready", "False", "OverlappingPolicy", "an older HealthPolicy governs web")],
      }),
      policy({ conditions: [ready, cond("RolloutHealthy", "False", "DeepCheckFailed", "web-2: 500")] }),
      policy({ conditions: [ready], rolloutPhase: "Aborted" }),
      policy({
        conditions: [ready, cond("RolloutHealthy", "Unknown", "DependencyDegraded", "stable fails too")],
      }),
      policy({ conditions: [ready], rolloutPhase: "Inconclusive" }),
      policy({ conditions: [ready, cond("RolloutHealthy", "Unknown", "NewRevision", "revision 7")] }),
      policy({ conditions: [ready], rolloutPhase: "Baking" }),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      "Healthy",
      "Progressing",
      "Progressing",
      "Degraded",
      "Degraded",
      "Degraded",
      "Suspended",
      "Suspended",
      "Progressing",
      "Progressing",
    ]);
    expect(results[0]?.message).toBe("governing 2 Deployment(s), 2 compliant");
    expect(results[3]?.message).toBe("OverlappingPolicy: an older HealthPolicy governs web");
  });

  it("reports findings in a Healthy policy's message: they describe the Deployments, not the policy", () => {
    const [result] = health("healthpolicy.lua", [
      policy({
        conditions: [ready, cond("HeadroomSufficient", "False", "InsufficientHeadroom")],
        targetCount: 1,
        compliantCount: 0,
      }),
    ]);
    expect(result).toEqual({
      status: "Healthy",
      message: "governing 1 Deployment(s), 0 compliant; HeadroomSufficient=False (InsufficientHeadroom)",
    });
  });
});

describe("docs/argocd/healthtarget.lua (healthgate.io/HealthTarget, the per-Deployment record)", () => {
  const record = (status: Record<string, unknown> | undefined) => ({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthTarget",
    metadata: { name: "web", namespace: "shop", generation: 1 },
    spec: { deployment: "web", policy: "web" },
    ...(status ? { status } : {}),
  });
  const enforced = cond("Enforced", "True", "Enforced", "the template carries decision d1");
  const rollout = (phase: string, reason: string, message: string, extra: Record<string, unknown> = {}) => ({
    rollout: { phase, reason, message, revision: "b", stableRevision: "a", ...extra },
  });

  it("returns Healthy, Progressing, Degraded and Suspended for the matching states", () => {
    const results = health("healthtarget.lua", [
      record({ conditions: [enforced], ...rollout("Completed", "RolloutComplete", "revision a is stable") }),
      record({ conditions: [enforced] }),
      record(undefined),
      record(rollout("Progressing", "NewRevision", "new revision b seen")),
      record(rollout("Baking", "Baking", "step 1/2 baking")),
      record({ conditions: [cond("Enforced", "False", "Releasing", "released d2")] }),
      record(rollout("Aborted", "DeepCheckFailed", "deep check failed 3 times")),
      record(
        rollout("Aborted", "RolledBack", "rolled back to stable revision a", {
          rollback: { phase: "RolledBack", failedRevision: "b", toRevision: "a" },
        }),
      ),
      record(
        rollout("Aborted", "RollbackOverridden", "field manager argocd-controller wrote the template back", {
          rollback: {
            phase: "Overridden",
            failedRevision: "b",
            toRevision: "a",
            manager: "argocd-controller",
          },
        }),
      ),
      record({ conditions: [cond("Enforced", "False", "GuardFailed", "container web lacks port http")] }),
      record({
        panic: {
          phase: "Panicking",
          reason: "BelowFloor",
          message: "20% Ready",
          since: "x",
          readyPercent: 20,
        },
      }),
      record(rollout("Holding", "DependencyDegraded", "stable pods fail too")),
      record(rollout("Inconclusive", "DependencyDegraded", "stable pods fail too")),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      "Healthy",
      "Healthy",
      "Progressing",
      "Progressing",
      "Progressing",
      "Progressing",
      "Degraded",
      "Degraded",
      "Degraded",
      "Degraded",
      "Degraded",
      "Suspended",
      "Suspended",
    ]);
    expect(results[0]?.message).toBe("revision a is stable");
    expect(results[1]?.message).toBe("Enforced: the template carries decision d1");
    expect(results[2]?.message).toBe("Waiting for healthgate to record Deployment web");
    expect(results[7]?.message).toBe("RolledBack: rolled back to stable revision a");
    expect(results[8]?.message).toContain("argocd-controller");
    expect(results[11]?.message).toBe("DependencyDegraded: stable pods fail too");
  });
});

describe("hack/luahealth (the interpreter)", () => {
  it("has no string library, as in Argo CD: a script that needs it fails here too", () => {
    const [result] = healthOf('local hs = {}; hs.status = string.upper("healthy"); return hs');
    expect(result?.error).toMatch(/string/);
  });
});

function healthOf(source: string): Health[] {
  const file = join(mkdtempSync(join(tmpdir(), "healthgate-lua-")), "script.lua");
  writeFileSync(file, source);
  const out = execFileSync(bin, [file], { input: "[{}]", encoding: "utf8" });
  return JSON.parse(out) as Health[];
}
