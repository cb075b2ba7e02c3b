// decide: the pure middle of gather → decide → act. It runs every concern on
// a target snapshot, merges their contributions, and computes the exact
// bodies the writer sends — or nothing, when the live object already says it.
import type { Deployment, DeploymentCondition } from "../api/k8s.ts";
import {
  ConditionType,
  DEPLOYMENT_CONDITION_PREFIX,
  type Condition,
  type Finding,
  type HealthPolicy,
  type HealthPolicyStatus,
  MAX_STATUS_TARGETS,
  MAX_STATUS_TARGETS_BYTES,
  type Severity,
  type TargetStatus,
} from "../api/v1alpha1/index.ts";
import { setDeploymentCondition, setPolicyCondition, worstIntent } from "./conditions.ts";
import type {
  Concern,
  ConditionIntent,
  EventIntent,
  OwnedObject,
  OwnedSpec,
  TargetSnapshot,
} from "./seam.ts";

/** Everything the concerns decided for one target. */
export interface TargetDecision {
  deployment: string;
  ownedSpec?: OwnedSpec;
  conditions: ConditionIntent[];
  findings: Finding[];
  status: TargetStatus;
  events: EventIntent[];
  ownedObjects: OwnedObject[];
  requeueAfterSeconds?: number;
}

export function decideTarget(snapshot: TargetSnapshot, concerns: readonly Concern[]): TargetDecision {
  const contributions = concerns.map((concern) => concern(snapshot));
  const conditions = contributions.flatMap((c) => c.conditions);
  const findings = contributions.flatMap((c) => c.findings);
  const figures = Object.assign({}, ...contributions.map((c) => c.figures)) as TargetDecision["status"];
  const requeues = contributions.flatMap((c) =>
    c.requeueAfterSeconds === undefined ? [] : [c.requeueAfterSeconds],
  );
  const ownedSpecs = contributions.flatMap((c) => (c.ownedSpec ? [c.ownedSpec] : []));
  const name = snapshot.deployment.metadata.name;
  return {
    deployment: name,
    ...(ownedSpecs.length > 0 ? { ownedSpec: mergeOwnedSpecs(ownedSpecs) } : {}),
    conditions,
    findings,
    status: {
      ...figures,
      name,
      governed: true,
      ...(findings.length > 0 ? { findings } : {}),
    },
    events: contributions.flatMap((c) => c.events),
    ownedObjects: contributions.flatMap((c) => c.ownedObjects ?? []),
    ...(requeues.length > 0 ? { requeueAfterSeconds: Math.min(...requeues) } : {}),
  };
}

/** Several concerns may own pod-template fields; ONE apply must carry all of them (SSA drops what is not sent). */
export function mergeOwnedSpecs(specs: readonly OwnedSpec[]): OwnedSpec {
  const containers = new Map<string, OwnedSpec["containers"][number]>();
  let grace: number | undefined;
  for (const spec of specs) {
    if (spec.terminationGracePeriodSeconds !== undefined) {
      grace = Math.max(grace ?? 0, spec.terminationGracePeriodSeconds);
    }
    for (const container of spec.containers) {
      containers.set(container.name, { ...containers.get(container.name), ...container });
    }
  }
  return {
    ...(grace !== undefined ? { terminationGracePeriodSeconds: grace } : {}),
    containers: [...containers.values()],
  };
}

/** Whether a Deployment condition is one of healthgate's (`healthgate.io/…`). */
export const isOwnCondition = (c: { type: string }) => c.type.startsWith(DEPLOYMENT_CONDITION_PREFIX);

/** The `healthgate.io/…` conditions a Deployment carries, sorted by type as the writer writes them. */
export const ownConditions = (deployment: Deployment): DeploymentCondition[] =>
  sortByType((deployment.status?.conditions ?? []).filter(isOwnCondition));

/**
 * The `healthgate.io/…` conditions a Deployment should carry, and whether that
 * differs from what it carries now. Conditions no concern reports any more are
 * dropped (SSA removes the items the status manager stops sending).
 */
export function deploymentConditions(
  deployment: Deployment,
  intents: readonly ConditionIntent[],
  now: Date,
): { conditions: DeploymentCondition[]; changed: boolean } {
  const live = ownConditions(deployment);
  let next: DeploymentCondition[] = [];
  for (const intent of intents) {
    const type = DEPLOYMENT_CONDITION_PREFIX + intent.type;
    next = setDeploymentCondition([...next, ...live.filter((c) => c.type === type)], type, intent, now);
  }
  return { conditions: next, changed: !sameJson(live, next) };
}

/** Conditions whose status differs from (or is absent in) the previous set: the flips that deserve an Event. */
export function flippedTypes(
  previous: readonly { type: string; status: string }[],
  next: readonly { type: string; status: string }[],
): string[] {
  return next.filter((c) => previous.find((p) => p.type === c.type)?.status !== c.status).map((c) => c.type);
}

export interface OverlapReport {
  deployment: string;
  governedBy: string;
}

/** The policy's whole status, computed on a copy from the per-target decisions. */
export function policyStatus(
  policy: HealthPolicy,
  decisions: readonly TargetDecision[],
  overlaps: readonly OverlapReport[],
  now: Date,
  enforceAvailable = true,
): HealthPolicyStatus {
  const generation = policy.metadata.generation;
  let conditions: Condition[] = [...(policy.status?.conditions ?? [])];
  const set = (intent: ConditionIntent) => {
    conditions = setPolicyCondition(conditions, intent, generation, now);
  };

  set(readyIntent(decisions, overlaps, policy.spec.mode === "Enforce" && !enforceAvailable));
  const reported = new Set<ConditionType>();
  for (const decision of decisions) for (const c of decision.conditions) reported.add(c.type);
  for (const type of Object.values(ConditionType)) {
    if (type === ConditionType.Ready) continue;
    const intents = decisions.flatMap((d) =>
      d.conditions
        .filter((c) => c.type === type)
        .map((c) => prefixMessage(c, d.deployment, decisions.length)),
    );
    const worst = worstIntent(intents);
    if (worst) set(worst);
    else conditions = conditions.filter((c) => c.type !== type);
  }

  const all: TargetStatus[] = [
    ...decisions.map((d) => d.status),
    ...overlaps.map((o) => ({ name: o.deployment, governed: false })),
  ];
  const targets = listedTargets(all).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const compliant = decisions.filter(
    (d) => !d.conditions.some((c) => c.type === ConditionType.ProbesCompliant && c.status === "False"),
  ).length;
  const phases = decisions.flatMap((d) => (d.status.rollout ? [d.status.rollout.phase] : []));
  const queued = decisions.filter((d) => d.status.pacing?.state === "Queued").length;
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions,
    targetCount: all.length,
    compliantCount: compliant,
    ...(phases.length > 0 ? { rolloutPhase: phases.sort()[0] } : {}),
    ...(queued > 0 ? { releasesQueued: queued } : {}),
    ...(targets.length < all.length ? { targetsOmitted: all.length - targets.length } : {}),
    targets,
  };
}

const SEVERITY_RANK: Record<Severity, number> = { info: 1, warning: 2, error: 3, critical: 4 };
const worstSeverity = (t: TargetStatus) =>
  Math.max(0, ...(t.findings ?? []).map((f) => SEVERITY_RANK[f.severity]));

/**
 * The targets a policy's status lists: all of them when they fit (MAX_STATUS_TARGETS, about
 * MAX_STATUS_TARGETS_BYTES), otherwise the ones with the most severe findings first, then by
 * name. A status the API server refuses would leave the whole policy unreported.
 */
export function listedTargets(all: readonly TargetStatus[]): TargetStatus[] {
  const ranked = [...all].sort(
    (a, b) => worstSeverity(b) - worstSeverity(a) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const listed: TargetStatus[] = [];
  let bytes = 0;
  for (const target of ranked) {
    bytes += JSON.stringify(target).length + 1;
    if (listed.length >= MAX_STATUS_TARGETS || bytes > MAX_STATUS_TARGETS_BYTES) break;
    listed.push(target);
  }
  return listed;
}

function readyIntent(
  decisions: readonly TargetDecision[],
  overlaps: readonly OverlapReport[],
  enforceUnavailable: boolean,
): ConditionIntent {
  if (overlaps.length > 0) {
    const list = overlaps.map((o) => `${o.deployment} (governed by ${o.governedBy})`).join(", ");
    return {
      type: ConditionType.Ready,
      status: "False",
      reason: "OverlappingPolicy",
      message:
        `an older HealthPolicy governs ${list}; the oldest policy selecting a Deployment wins. ` +
        "Narrow this policy's selector or merge the policies.",
    };
  }
  if (enforceUnavailable) {
    return {
      type: ConditionType.Ready,
      status: "False",
      reason: "EnforceUnavailable",
      message:
        "mode Enforce needs MutatingAdmissionPolicies in admissionregistration.k8s.io/v1 (Kubernetes 1.36 or later; " +
        "1.34-1.35 serve at most v1beta1, which healthgate does not use), which this cluster does not serve; " +
        "healthgate audits only and changes no Deployment. Upgrade the cluster, or set spec.mode: Audit.",
    };
  }
  if (decisions.length === 0) {
    return {
      type: ConditionType.Ready,
      status: "True",
      reason: "NoTargets",
      message: "the policy selects no Deployment in this namespace; check spec.selector or spec.targetRef",
    };
  }
  return {
    type: ConditionType.Ready,
    status: "True",
    reason: "Reconciled",
    message: `governing ${decisions.length} Deployment${decisions.length === 1 ? "" : "s"}`,
  };
}

function prefixMessage(intent: ConditionIntent, deployment: string, targets: number): ConditionIntent {
  return targets > 1 ? { ...intent, message: `Deployment ${deployment}: ${intent.message}` } : intent;
}

const sortByType = <T extends { type: string }>(list: readonly T[]): T[] =>
  [...list].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));

/**
 * Whether `a` and `b` serialize to the same JSON, object key order aside: what the API server
 * would store for each is the same. A walk rather than two canonical strings: the policy status
 * compared on every reconcile lists every target.
 */
export function sameJson(x: unknown, y: unknown): boolean {
  // JSON writes NaN and ±Infinity as null.
  const a = typeof x === "number" && !Number.isFinite(x) ? null : x;
  const b = typeof y === "number" && !Number.isFinite(y) ? null : y;
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (hasToJSON(a) || hasToJSON(b)) return JSON.stringify(a) === JSON.stringify(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    // JSON writes undefined (and functions) in arrays as null.
    return a.every((x, i) => sameJson(jsonItem(x), jsonItem(b[i])));
  }
  const ka = jsonKeys(a as Record<string, unknown>);
  const kb = jsonKeys(b as Record<string, unknown>);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => Object.hasOwn(rb, k) && isJsonValue(rb[k]) && sameJson(ra[k], rb[k]));
}

const isJsonValue = (v: unknown) => v !== undefined && typeof v !== "function" && typeof v !== "symbol";
const jsonItem = (v: unknown) => (isJsonValue(v) ? v : null);
const jsonKeys = (o: Record<string, unknown>) => Object.keys(o).filter((k) => isJsonValue(o[k]));
const hasToJSON = (v: object) => typeof (v as { toJSON?: unknown }).toJSON === "function";
