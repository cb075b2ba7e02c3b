// Which new pods get healthgate's readiness gate (issue 20, DESIGN.md "Rollout gating"):
// the decision the gate webhook makes at Pod CREATE, pure, from the pod and what the
// operator's caches hold. The Deployment is resolved from the pod itself — its controlling
// ReplicaSet is named `<deployment>-<pod-template-hash>` — so a pod of a ReplicaSet that no
// cache has seen yet (the usual case: the Deployment controller creates the ReplicaSet and
// its first pods within milliseconds) is decided all the same.
import { ConditionType, DEEP_CHECK_GATE } from "../api/v1alpha1/names.ts";
import type { Deployment, OwnerReference } from "../api/k8s.ts";
import type { HealthPolicy } from "../api/v1alpha1/index.ts";
import type { SelectedDeployment, SelectingPolicy } from "./governance.ts";
import type { ConditionIntent } from "./seam.ts";

/** The label the Deployment controller puts on each ReplicaSet and pod of a revision. */
export const POD_TEMPLATE_HASH = "pod-template-hash";

/** What the decision reads of the pod being created. */
export interface GatePod {
  namespace: string;
  labels?: Readonly<Record<string, string>> | undefined;
  ownerReferences?: readonly OwnerReference[] | undefined;
  hostNetwork?: boolean | undefined;
  readinessGates?: readonly { conditionType: string }[] | undefined;
}

/** What the decision reads of a Deployment: governance's view and the strategy type. */
export interface GateDeployment extends SelectedDeployment {
  spec: { strategy?: { type?: string | undefined } | undefined };
}

/** What the decision reads of a policy: governance's view and whether it has `spec.rollout`. */
export interface GatePolicy extends SelectingPolicy {
  spec: SelectingPolicy["spec"] & { rollout?: unknown };
}

/**
 * The part of a Deployment the decision reads. The gate webhook's thread keeps only this (not
 * each whole Deployment, template and status included), and hears of a Deployment's change only
 * when this part changed — not on every status write.
 */
export function gateDeploymentOf(d: Deployment): GateDeployment {
  const { name, namespace, labels } = d.metadata;
  const type = d.spec.strategy?.type;
  return {
    metadata: { name, ...(namespace !== undefined ? { namespace } : {}), ...(labels ? { labels } : {}) },
    spec: type !== undefined ? { strategy: { type } } : {},
  };
}

/** Whether two views of a Deployment decide alike (same name, labels and strategy type). */
export function sameGateDeployment(a: GateDeployment, b: GateDeployment): boolean {
  if (a.metadata.name !== b.metadata.name || a.metadata.namespace !== b.metadata.namespace) return false;
  if (a.spec.strategy?.type !== b.spec.strategy?.type) return false;
  const la = a.metadata.labels ?? {};
  const lb = b.metadata.labels ?? {};
  const keys = Object.keys(la);
  return keys.length === Object.keys(lb).length && keys.every((k) => lb[k] === la[k]);
}

/** The part of a policy the decision reads (`spec.rollout` only as present or not). */
export function gatePolicyOf(p: HealthPolicy): GatePolicy {
  const { name, namespace, creationTimestamp } = p.metadata;
  const { selector, targetRef, rollout } = p.spec;
  return {
    metadata: {
      name,
      ...(namespace !== undefined ? { namespace } : {}),
      ...(creationTimestamp !== undefined ? { creationTimestamp } : {}),
    },
    spec: {
      ...(selector ? { selector } : {}),
      ...(targetRef ? { targetRef } : {}),
      ...(rollout ? { rollout: true } : {}),
    },
  };
}

/** What the caches say about the pod's Deployment. */
export interface GateWorld {
  /** Namespaces whose pods are never gated: kube-system and healthgate's own. */
  excludedNamespaces: ReadonlySet<string>;
  /** The Deployment named `name` in the pod's namespace, if cached. */
  deployment(name: string): GateDeployment | undefined;
  /** The policy governing that Deployment (the oldest selecting it), if any. */
  governingPolicy(deployment: GateDeployment): GatePolicy | undefined;
  /** `status.rollout.stableRevision` of the Deployment's record, if recorded. */
  stableRevision(deployment: GateDeployment): string | undefined;
}

export type GateReason =
  | "NewRevision"
  | "AlreadyGated"
  | "ExcludedNamespace"
  | "HostNetwork"
  | "NotOwnedByReplicaSet"
  | "NoPodTemplateHash"
  | "NotADeploymentReplicaSet"
  | "DeploymentNotCached"
  | "Ungoverned"
  | "NoRollout"
  | "Recreate"
  | "NoStableRevision"
  | "StableRevision";

export interface GateDecision {
  gate: boolean;
  reason: GateReason;
  /** The Deployment the pod belongs to, once resolved. */
  deployment?: string;
  /** The pod's pod-template-hash, once read. */
  revision?: string;
}

/** The Deployment a ReplicaSet named `replicaSet` belongs to, when its name ends in `-<hash>`. */
export function deploymentOfReplicaSet(replicaSet: string, hash: string): string | undefined {
  const suffix = `-${hash}`;
  return hash && replicaSet.endsWith(suffix) && replicaSet.length > suffix.length
    ? replicaSet.slice(0, -suffix.length)
    : undefined;
}

/** Whether a pod being created gets the `healthgate.io/deep-check` readiness gate, and why. */
export function decideGate(pod: GatePod, world: GateWorld): GateDecision {
  if (world.excludedNamespaces.has(pod.namespace)) return { gate: false, reason: "ExcludedNamespace" };
  // The prober never checks a pod that shares its node's network: a gate would never open.
  if (pod.hostNetwork) return { gate: false, reason: "HostNetwork" };
  const owner = pod.ownerReferences?.find((r) => r.controller && r.kind === "ReplicaSet");
  if (!owner) return { gate: false, reason: "NotOwnedByReplicaSet" };
  const revision = pod.labels?.[POD_TEMPLATE_HASH];
  if (!revision) return { gate: false, reason: "NoPodTemplateHash" };
  const name = deploymentOfReplicaSet(owner.name, revision);
  if (!name) return { gate: false, reason: "NotADeploymentReplicaSet", revision };
  const base = { deployment: name, revision };
  // A Deployment no cache holds yet is a new one: its first revision is never gated anyway.
  const deployment = world.deployment(name);
  if (!deployment) return { gate: false, reason: "DeploymentNotCached", ...base };
  const policy = world.governingPolicy(deployment);
  if (!policy) return { gate: false, reason: "Ungoverned", ...base };
  if (!policy.spec.rollout) return { gate: false, reason: "NoRollout", ...base };
  // Recreate stops every old pod before the new ones start: there is nothing to step through.
  if (deployment.spec.strategy?.type === "Recreate") return { gate: false, reason: "Recreate", ...base };
  // No stable revision yet: the first revision of a new Deployment, or one adopted mid-rollout.
  // Either becomes stable when fully available; the next revision is gated.
  const stable = world.stableRevision(deployment);
  if (!stable) return { gate: false, reason: "NoStableRevision", ...base };
  if (stable === revision) return { gate: false, reason: "StableRevision", ...base };
  if (pod.readinessGates?.some((g) => g.conditionType === DEEP_CHECK_GATE)) {
    return { gate: false, reason: "AlreadyGated", ...base };
  }
  return { gate: true, reason: "NewRevision", ...base };
}

export type JsonPatchOp = { op: "add"; path: string; value: unknown };

/** The JSONPatch that adds the gate, beside any readiness gates the pod already has. */
export function gatePatch(pod: Pick<GatePod, "readinessGates">): JsonPatchOp[] {
  const gate = { conditionType: DEEP_CHECK_GATE };
  return pod.readinessGates
    ? [{ op: "add", path: "/spec/readinessGates/-", value: gate }]
    : [{ op: "add", path: "/spec/readinessGates", value: [gate] }];
}

/** At most this many pod names in the RolloutGated message (the record lists up to 100). */
const NAMED_IN_CONDITION = 10;

/** A pod as the fail-open judgement reads it: what decideGate reads, its name, and whether it is going. */
export interface LivePod extends GatePod {
  name: string;
  deleting?: boolean;
}

/**
 * Fail-open made visible on the Deployment (issue 20): the pods of `deployment` that run without
 * the gate although the webhook would have gated them (created while no replica answered
 * admission), judged from the live pods against what the caches say now. The condition is
 * `RolloutGated=False` (FailedOpen) naming them, and absent while there are none.
 */
export function failOpenCondition(
  deployment: string,
  pods: readonly LivePod[],
  world: GateWorld,
): ConditionIntent | undefined {
  const ungated: string[] = [];
  let revision: string | undefined;
  for (const pod of pods) {
    if (pod.deleting) continue;
    const decision = decideGate(pod, world);
    if (!decision.gate || decision.deployment !== deployment) continue;
    ungated.push(pod.name);
    revision ??= decision.revision;
  }
  if (ungated.length === 0) return undefined;
  ungated.sort();
  const listed = ungated.slice(0, NAMED_IN_CONDITION).join(", ");
  const more = ungated.length > NAMED_IN_CONDITION ? ` and ${ungated.length - NAMED_IN_CONDITION} more` : "";
  return {
    type: ConditionType.RolloutGated,
    status: "False",
    reason: "FailedOpen",
    message:
      `${ungated.length} pod(s) of revision ${revision} run without the ${DEEP_CHECK_GATE} readiness gate: ` +
      `they were created while no healthgate replica answered admission (fail-open), so the rollout ran ` +
      `partly ungated: ${listed}${more}. The HealthTarget's status.gating lists them; this condition clears once ` +
      `no such pod is left`,
  };
}
