// onFailure Rollback on the real kubelet (issue 24, item 1): a revision whose deep check fails is
// aborted, and in Enforce healthgate restores the stable revision's template as `kubectl rollout
// undo` does — the stable ReplicaSet scales back to N, no new ReplicaSet appears, no healthgate
// field manager owns a template field, and a GitOps-style server-side apply that renames a
// container succeeds afterwards. A GitOps self-heal that writes the failed template back is
// reported (naming its field manager), never fought. With Hold the revision stays aborted and the
// status says what a human should do.
import type { V1Deployment, V1ReplicaSet } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { testClients } from "../../support/kube.ts";
import { isReady, livePods } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import {
  applyAs,
  installCrd,
  patchPolicySpec,
  readDeployment,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
} from "../controller/support.ts";
import { fastEnforcePolicy } from "./support.ts";
import { app, hash, waitForRecord, web, withRollout } from "./rolloutSupport.ts";

beforeAll(() => installCrd());

// Each case waits for a stable revision, an abort and a rollback on real nodes: more than the default.
const STEPS = [{ weight: 33, bake: "2m" }, { weight: 100 }];
const GITOPS = "test-user";

type ManagedFields = NonNullable<V1Deployment["metadata"]>["managedFields"];

/** healthgate's field managers that own a field under spec.template. */
function healthgateTemplateOwners(managedFields: ManagedFields): string[] {
  return (managedFields ?? [])
    .filter((m) => m.manager === "healthgate" || (m.manager ?? "").startsWith("healthgate-"))
    .filter((m) => "f:template" in (((m.fieldsV1 as Record<string, unknown>)?.["f:spec"] ?? {}) as object))
    .map((m) => m.manager ?? "");
}

describe("onFailure on the real kubelet", () => {
  const hg = useControllerHarness({ app });

  const replicaSets = async (): Promise<V1ReplicaSet[]> =>
    (await testClients().apps.listNamespacedReplicaSet({ namespace: hg.namespace })).items;
  const revisionOf = (rs: V1ReplicaSet) => rs.metadata?.labels?.["pod-template-hash"] ?? "";

  /** Enforce policy with onFailure, operator, web at tag 1 applied by the GitOps manager; its stable revision. */
  async function stable(onFailure: "Hold" | "Rollback", newPodDeadline?: string): Promise<string> {
    await hg.createPolicy(
      fastEnforcePolicy(
        "web",
        withRollout({ steps: STEPS, ...(newPodDeadline ? { newPodDeadline } : {}) }),
        (p) => {
          p.spec.rollout = { ...p.spec.rollout!, onFailure };
        },
      ),
    );
    await hg.startOperator();
    await hg.apply(web("1"), GITOPS);
    const state = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Completed" && s.stableRevision !== undefined,
      "tag 1 to complete and be recorded as stable",
      150_000,
    );
    return state.stableRevision!;
  }

  /** The GitOps tool applies tag "bad" (its deep check fails after 8 s); waits for the abort. */
  async function abortBad(stableRevision: string, manager = GITOPS) {
    await applyAs(manager, { ...web("bad"), metadata: { ...web("bad").metadata, namespace: hg.namespace } });
    const aborted = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Aborted" && s.revision !== stableRevision,
      "the bad revision to be aborted",
      150_000,
    );
    // Why: the reason while only aborted, kept as rollback.abortReason once the rollback is under
    // way (the reason then says RolledBack; a busy machine may first look after that)
    expect(aborted.rollback?.abortReason ?? aborted.reason, aborted.message).toBe("DeepCheckFailed");
    return aborted.revision!;
  }

  async function expectRolledBack(stableRevision: string, failed: string) {
    const state = await waitForRecord(
      hg.namespace,
      (s) => s.rollback?.phase === "RolledBack",
      "the rollback to be recorded",
      90_000,
    );
    expect(state.rollback).toMatchObject({ failedRevision: failed, toRevision: stableRevision });
    // The stable ReplicaSet back to N available; the failed one at 0, its held pods gone.
    await waitFor(
      async () => {
        const sets = await replicaSets();
        const stableSet = sets.find((rs) => revisionOf(rs) === stableRevision);
        expect(stableSet?.status?.availableReplicas).toBe(3);
        expect(sets.find((rs) => revisionOf(rs) === failed)?.spec?.replicas).toBe(0);
        const pods = await livePods(hg.namespace, "web");
        expect(pods.map(hash).sort()).toEqual([stableRevision, stableRevision, stableRevision]);
        expect(pods.every(isReady)).toBe(true);
        return true;
      },
      {
        what: "the stable ReplicaSet back at 3 available, no failed pod left",
        timeoutMs: 90_000,
        intervalMs: 500,
      },
    );
    await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", {
      status: "False",
      reason: "RolledBack",
    });
    await waitForEvent(hg.namespace, {
      reason: "RolledBack",
      noteContains: `rolled back to stable revision ${stableRevision}`,
    });
  }

  it("Rollback: the stable ReplicaSet back to N, no new ReplicaSet, no healthgate template owner, a GitOps rename succeeds", async () => {
    const stableRevision = await stable("Rollback");
    const failed = await abortBad(stableRevision);
    // The ReplicaSets at the abort: the stable one, the failed one (and the first, without Enforce's probes).
    const before = (await replicaSets()).map((rs) => rs.metadata!.name!).sort();
    expect(before.length).toBeGreaterThanOrEqual(2);
    await expectRolledBack(stableRevision, failed);
    // No new ReplicaSet appeared, and none does while it stays rolled back.
    await holdsFor(
      async () => expect((await replicaSets()).map((rs) => rs.metadata!.name!).sort()).toEqual(before),
      { forMs: 6_000, intervalMs: 500, what: "no new ReplicaSet" },
    );
    const live = await readDeployment(hg.namespace, "web");
    expect(live.spec?.template.spec?.containers[0]?.image).toMatch(/:1$/);
    expect(healthgateTemplateOwners(live.metadata?.managedFields)).toEqual([]);
    const record = await waitForRecord(hg.namespace, (s) => s.reason === "RolledBack", "RolledBack");
    expect(record.message).toContain("until a human asks");

    // The GitOps tool renames the container (server-side apply, its own field manager): it succeeds.
    const renamed = web("1");
    const container = renamed.spec!.template.spec!.containers[0]!;
    container.name = "web2";
    await hg.apply(renamed, GITOPS);
    const after = await readDeployment(hg.namespace, "web");
    expect(after.spec?.template.spec?.containers.map((c) => c.name)).toEqual(["web2"]);
  }, 240_000);

  it("Rollback: a GitOps self-heal that writes the failed template back is reported by its manager, never fought", async () => {
    const stableRevision = await stable("Rollback");
    const failed = await abortBad(stableRevision);
    await expectRolledBack(stableRevision, failed);
    const sets = (await replicaSets()).map((rs) => rs.metadata!.name!).sort();

    // Self-heal: another field manager applies the failed template again.
    await applyAs("gitops-selfheal", {
      ...web("bad"),
      metadata: { ...web("bad").metadata, namespace: hg.namespace },
    });
    const state = await waitForRecord(
      hg.namespace,
      (s) => s.rollback?.phase === "Overridden",
      "the override to be reported",
      60_000,
    );
    expect(state.rollback?.manager).toBe("gitops-selfheal");
    expect(state.message).toContain("field manager gitops-selfheal wrote the template of aborted revision");
    await waitForDeploymentCondition(hg.namespace, "web", "RolloutHealthy", {
      status: "False",
      reason: "RollbackOverridden",
    });
    await waitForEvent(hg.namespace, { reason: "RollbackOverridden", noteContains: "gitops-selfheal" });
    // healthgate does not fight: the failed template stays, no ReplicaSet beyond the two, no pod of it admitted.
    await holdsFor(
      async () => {
        const live = await readDeployment(hg.namespace, "web");
        expect(live.spec?.template.spec?.containers[0]?.image).toMatch(/:bad$/);
        expect((await replicaSets()).map((rs) => rs.metadata!.name!).sort()).toEqual(sets);
        const pods = await livePods(hg.namespace, "web");
        expect(pods.filter((p) => hash(p) === failed && isReady(p))).toEqual([]);
      },
      { forMs: 8_000, intervalMs: 500, what: "healthgate leaves the written-back template alone" },
    );
  }, 240_000);

  it("Rollback of a revision healthgate's own decision made: the stable decision stays released, nothing loops", async () => {
    const stableRevision = await stable("Rollback", "30s");
    // A policy edit makes a new Enforce decision: a readiness path the application does not serve.
    await patchPolicySpec(hg.namespace, "web", {
      endpoints: { port: "http", liveness: { path: "/healthz" }, readiness: { path: "/ready-not-served" } },
    });
    const aborted = await waitForRecord(
      hg.namespace,
      (s) => s.phase === "Aborted" && s.revision !== stableRevision,
      "the decision's revision to be aborted (its pods never Ready)",
      150_000,
    );
    expect(aborted.reason).toBe("NewPodDeadlineExceeded");
    await expectRolledBack(stableRevision, aborted.revision!);
    const sets = (await replicaSets()).map((rs) => rs.metadata!.name!).sort();
    // The newer decision is not released again by itself: the template keeps the stable probes, no
    // revision follows, the rollback holds.
    await holdsFor(
      async () => {
        const live = await readDeployment(hg.namespace, "web");
        const container = live.spec?.template.spec?.containers[0];
        expect(container?.readinessProbe?.httpGet?.path).toBe("/readyz");
        expect((await replicaSets()).map((rs) => rs.metadata!.name!).sort()).toEqual(sets);
        const s = await waitForRecord(hg.namespace, () => true, "the record");
        expect(s.rollback?.phase).toBe("RolledBack");
      },
      { forMs: 15_000, intervalMs: 1_000, what: "the rollback holds, nothing re-released" },
    );
  }, 240_000);

  it("Hold: the revision stays aborted, nothing is rolled back, and the status says what a human should do", async () => {
    const stableRevision = await stable("Hold");
    const failed = await abortBad(stableRevision);
    const state = await waitForRecord(hg.namespace, (s) => s.phase === "Aborted", "Aborted");
    expect(state.rollback).toBeUndefined();
    expect(state.message).toContain("onFailure is Hold: the revision stays aborted and a human decides");
    expect(state.message).toContain("kubectl rollout undo deployment/web");
    await holdsFor(
      async () => {
        const live = await readDeployment(hg.namespace, "web");
        expect(live.spec?.template.spec?.containers[0]?.image).toMatch(/:bad$/);
        const s = await waitForRecord(hg.namespace, () => true, "the record");
        expect(s).toMatchObject({ phase: "Aborted", revision: failed });
      },
      { forMs: 6_000, intervalMs: 1_000, what: "stays aborted" },
    );
  }, 240_000);
});
