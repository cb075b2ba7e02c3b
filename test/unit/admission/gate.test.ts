// Which pods the gate webhook gates: every "no gate" case of issue 20 is a row, and the one
// "gate" case is proved able to flip by each row's single difference from it.
import { describe, expect, it } from "vitest";
import type { Deployment } from "../../../src/api/k8s.ts";
import type { HealthPolicy } from "../../../src/api/v1alpha1/index.ts";
import { governingPolicy } from "../../../src/policy/governance.ts";
import {
  decideGate,
  deploymentOfReplicaSet,
  failOpenCondition,
  gateDeploymentOf,
  gatePatch,
  gatePolicyOf,
  sameGateDeployment,
  type GatePod,
  type GateReason,
  type GateWorld,
} from "../../../src/policy/gate.ts";

const GATE = "healthgate.io/deep-check";

const deployment = (name: string, strategy?: "Recreate" | "RollingUpdate"): Deployment => ({
  metadata: { name, namespace: "shop" },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { spec: { containers: [] } },
    ...(strategy ? { strategy: { type: strategy } } : {}),
  },
});
const policy = (rollout: boolean) =>
  ({
    metadata: { name: "web", namespace: "shop" },
    spec: { mode: "Audit", ...(rollout ? { rollout: { steps: [{ weight: 100 }] } } : {}) },
  }) as unknown as HealthPolicy;

interface WorldShape {
  deployments?: Deployment[];
  rollout?: boolean | "ungoverned";
  stable?: string | undefined;
}
const world = (shape: WorldShape = {}): GateWorld => {
  const { deployments = [deployment("web")], rollout = true } = shape;
  // An explicit `stable: undefined` means no stable revision is recorded.
  const stable = "stable" in shape ? shape.stable : "old111";
  return {
    excludedNamespaces: new Set(["kube-system", "healthgate-system"]),
    deployment: (name) => deployments.find((d) => d.metadata.name === name),
    governingPolicy: () => (rollout === "ungoverned" ? undefined : policy(rollout)),
    stableRevision: () => stable,
  };
};

const newPod = (patch: Partial<GatePod> = {}): GatePod => ({
  namespace: "shop",
  labels: { app: "web", "pod-template-hash": "new222" },
  ownerReferences: [
    { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-new222", uid: "u", controller: true },
  ],
  ...patch,
});

describe("decideGate", () => {
  it("gates a pod of a new revision of a rolled-out Deployment governed by a policy with spec.rollout", () => {
    expect(decideGate(newPod(), world())).toEqual({
      gate: true,
      reason: "NewRevision",
      deployment: "web",
      revision: "new222",
    });
  });

  it.each<{ name: string; pod?: Partial<GatePod>; world?: WorldShape; reason: GateReason }>([
    { name: "kube-system", pod: { namespace: "kube-system" }, reason: "ExcludedNamespace" },
    {
      name: "healthgate's own namespace",
      pod: { namespace: "healthgate-system" },
      reason: "ExcludedNamespace",
    },
    { name: "hostNetwork: the prober never checks it", pod: { hostNetwork: true }, reason: "HostNetwork" },
    { name: "a bare pod", pod: { ownerReferences: [] }, reason: "NotOwnedByReplicaSet" },
    {
      name: "owned by a StatefulSet",
      pod: {
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "u", controller: true },
        ],
      },
      reason: "NotOwnedByReplicaSet",
    },
    {
      name: "a ReplicaSet reference that is not the controller",
      pod: { ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-new222", uid: "u" }] },
      reason: "NotOwnedByReplicaSet",
    },
    {
      name: "no pod-template-hash label (a bare ReplicaSet)",
      pod: { labels: { app: "web" } },
      reason: "NoPodTemplateHash",
    },
    {
      name: "a ReplicaSet whose name is not <deployment>-<hash>",
      pod: {
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "ReplicaSet", name: "handmade", uid: "u", controller: true },
        ],
      },
      reason: "NotADeploymentReplicaSet",
    },
    {
      name: "a Deployment no cache holds (a new one)",
      world: { deployments: [] },
      reason: "DeploymentNotCached",
    },
    { name: "an ungoverned Deployment", world: { rollout: "ungoverned" }, reason: "Ungoverned" },
    { name: "a policy without spec.rollout", world: { rollout: false }, reason: "NoRollout" },
    {
      name: "a Recreate Deployment",
      world: { deployments: [deployment("web", "Recreate")] },
      reason: "Recreate",
    },
    {
      name: "the first revision of a new Deployment (or one adopted mid-rollout): no stable revision yet",
      world: { stable: undefined },
      reason: "NoStableRevision",
    },
    {
      name: "a pod of the stable revision (an HPA scale-up, a replacement)",
      world: { stable: "new222" },
      reason: "StableRevision",
    },
    {
      name: "a pod whose template already carries the gate",
      pod: { readinessGates: [{ conditionType: GATE }] },
      reason: "AlreadyGated",
    },
  ])("no gate: $name", ({ pod, world: shape, reason }) => {
    const decision = decideGate(newPod(pod), world(shape));
    expect(decision.reason).toBe(reason);
    expect(decision.gate).toBe(false);
  });

  it("gates an explicit RollingUpdate strategy like the default one", () => {
    expect(decideGate(newPod(), world({ deployments: [deployment("web", "RollingUpdate")] })).gate).toBe(
      true,
    );
  });

  it("resolves a Deployment whose name itself contains dashes", () => {
    const pod = newPod({
      ownerReferences: [
        { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-api-v2-new222", uid: "u", controller: true },
      ],
    });
    expect(decideGate(pod, world({ deployments: [deployment("web-api-v2")] }))).toMatchObject({
      gate: true,
      deployment: "web-api-v2",
    });
  });
});

// The webhook's thread keeps only these views (memory: not 1,000 whole Deployments twice).
describe("the views the gate webhook's thread keeps", () => {
  const full = (
    over: Partial<Deployment["metadata"]> = {},
    strategy?: "Recreate" | "RollingUpdate",
  ): Deployment => ({
    ...deployment("web", strategy),
    metadata: {
      name: "web",
      namespace: "shop",
      labels: { app: "web", tier: "front" },
      uid: "u1",
      generation: 7,
      ...over,
    },
    status: { replicas: 3, conditions: [{ type: "Available", status: "True" }] },
  });
  const policies = [
    {
      metadata: { name: "older", namespace: "shop", creationTimestamp: "2026-01-01T00:00:00Z", uid: "p1" },
      spec: {
        mode: "Audit",
        selector: { matchLabels: { tier: "front" } },
        rollout: { steps: [{ weight: 50 }] },
      },
      status: { targets: [] },
    },
    {
      metadata: { name: "newer", namespace: "shop", creationTimestamp: "2026-02-01T00:00:00Z" },
      spec: { mode: "Enforce", targetRef: { kind: "Deployment", name: "web" } },
    },
    {
      metadata: { name: "elsewhere", namespace: "other", creationTimestamp: "2025-01-01T00:00:00Z" },
      spec: {
        mode: "Audit",
        selector: { matchLabels: { app: "web" } },
        rollout: { steps: [{ weight: 100 }] },
      },
    },
  ] as unknown as HealthPolicy[];
  const decide = (d: Deployment, ps: HealthPolicy[], slim: boolean) =>
    decideGate(newPod(), {
      excludedNamespaces: new Set(),
      deployment: () => (slim ? gateDeploymentOf(d) : d),
      governingPolicy: (dep) =>
        slim ? governingPolicy(ps.map(gatePolicyOf), dep) : governingPolicy(ps, dep),
      stableRevision: () => "old111",
    });

  it.each([
    { name: "governed by the older policy, with rollout", d: full(), ps: policies, reason: "NewRevision" },
    {
      name: "the older policy gone: the newer one has no rollout",
      d: full(),
      ps: policies.slice(1),
      reason: "NoRollout",
    },
    {
      name: "labels no policy selects",
      d: full({ labels: { app: "api" } }),
      ps: [policies[0]!],
      reason: "Ungoverned",
    },
    { name: "Recreate", d: full({}, "Recreate"), ps: policies, reason: "Recreate" },
  ])("decides as the whole objects do: $name", ({ d, ps, reason }) => {
    expect(decide(d, ps, true)).toEqual(decide(d, ps, false));
    expect(decide(d, ps, true).reason).toBe(reason);
  });

  it("keeps no template, status or other metadata", () => {
    expect(gateDeploymentOf(full({}, "RollingUpdate"))).toEqual({
      metadata: { name: "web", namespace: "shop", labels: { app: "web", tier: "front" } },
      spec: { strategy: { type: "RollingUpdate" } },
    });
    expect(gatePolicyOf(policies[0]!)).toEqual({
      metadata: { name: "older", namespace: "shop", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: { selector: { matchLabels: { tier: "front" } }, rollout: true },
    });
  });

  it("tells a status-only change (nothing to send) from a change the decision reads", () => {
    const before = gateDeploymentOf(full());
    expect(sameGateDeployment(before, gateDeploymentOf({ ...full(), status: { replicas: 1 } }))).toBe(true);
    expect(sameGateDeployment(before, gateDeploymentOf(full({}, "Recreate")))).toBe(false);
    expect(sameGateDeployment(before, gateDeploymentOf(full({ labels: { app: "web" } })))).toBe(false);
    expect(sameGateDeployment(before, gateDeploymentOf(full({ labels: { app: "web", tier: "back" } })))).toBe(
      false,
    );
    expect(
      sameGateDeployment(before, gateDeploymentOf(full({ labels: { app: "web", tier: "front", x: "1" } }))),
    ).toBe(false);
  });
});

describe("deploymentOfReplicaSet", () => {
  it.each([
    { rs: "web-abc12", hash: "abc12", want: "web" },
    { rs: "web-api-abc12", hash: "abc12", want: "web-api" },
    { rs: "abc12", hash: "abc12", want: undefined },
    { rs: "-abc12", hash: "abc12", want: undefined },
    { rs: "web-abc12", hash: "zzz", want: undefined },
    { rs: "web-", hash: "", want: undefined },
  ])("$rs with hash $hash → $want", ({ rs, hash, want }) => {
    expect(deploymentOfReplicaSet(rs, hash)).toBe(want);
  });
});

describe("gatePatch", () => {
  it("creates the readinessGates list when the pod has none", () => {
    expect(gatePatch({})).toEqual([
      { op: "add", path: "/spec/readinessGates", value: [{ conditionType: GATE }] },
    ]);
  });
  it("appends to readiness gates the pod already has, keeping them", () => {
    expect(gatePatch({ readinessGates: [{ conditionType: "example.com/lb" }] })).toEqual([
      { op: "add", path: "/spec/readinessGates/-", value: { conditionType: GATE } },
    ]);
  });
  it("appends to an empty readinessGates list", () => {
    expect(gatePatch({ readinessGates: [] })[0]?.path).toBe("/spec/readinessGates/-");
  });
});

describe("failOpenCondition", () => {
  const live = (name: string, patch: Partial<GatePod> & { deleting?: boolean } = {}) => ({
    name,
    ...newPod(),
    ...patch,
  });
  const gatedSpec = { readinessGates: [{ conditionType: GATE }] };
  const stablePod = (name: string) =>
    live(name, {
      labels: { app: "web", "pod-template-hash": "old111" },
      ownerReferences: [
        { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-old111", uid: "u", controller: true },
      ],
    });

  it("names the pods of a gated revision that carry no gate, and only those", () => {
    const intent = failOpenCondition(
      "web",
      [
        live("web-new222-b"),
        live("web-new222-a"),
        live("web-new222-c", gatedSpec),
        stablePod("web-old111-x"),
      ],
      world(),
    );
    expect(intent).toMatchObject({ type: "RolloutGated", status: "False", reason: "FailedOpen" });
    expect(intent!.message).toMatch(
      /^2 pod\(s\) of revision new222 run without the healthgate.io\/deep-check/,
    );
    expect(intent!.message).toContain("partly ungated: web-new222-a, web-new222-b.");
  });

  it("reports nothing when every such pod is gated, going, or not gated by the webhook's rules", () => {
    expect(
      failOpenCondition(
        "web",
        [live("a", gatedSpec), live("b", { deleting: true }), stablePod("c")],
        world(),
      ),
    ).toBeUndefined();
    expect(failOpenCondition("web", [live("a")], world({ rollout: false }))).toBeUndefined();
    expect(failOpenCondition("web", [live("a")], world({ stable: undefined }))).toBeUndefined();
    expect(failOpenCondition("web", [live("a", { hostNetwork: true })], world())).toBeUndefined();
  });

  it("names ten pods and counts the rest", () => {
    const pods = Array.from({ length: 12 }, (_, i) => live(`web-new222-${String(i).padStart(2, "0")}`));
    const intent = failOpenCondition("web", pods, world());
    expect(intent!.message).toContain("web-new222-09 and 2 more.");
    expect(intent!.message).not.toContain("web-new222-10");
  });
});
