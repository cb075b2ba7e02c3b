import type { Container, LifecycleHandler, PodTemplateSpec, Probe } from "../../api/k8s.ts";
import { ConditionType, type Finding } from "../../api/v1alpha1/index.ts";
import { detectionFigures } from "../detection.ts";
import type { ConditionIntent, Concern, EventIntent, OwnedContainerFields, OwnedSpec } from "../seam.ts";
import { PROBE_FIELD, podGraceSeconds, withProbeDefaults } from "./defaults.ts";
import { desiredOwnedSpec } from "./desired.ts";
import { POLICY_RULES, auditPodSpec, governedContainers, sortFindings } from "./index.ts";
import { atLeast, findingMessage, type RuleMeta } from "./rule.ts";
import { PROBE_RULES, livenessDeep, livenessSuspectedDeep } from "./rules.ts";
import { type DeepInPractice, deepInPracticeMessage } from "../guard/liveness.ts";

/** LivenessShallow=False when liveness failed together with the background deep check (runtime evidence). */
export const DEEP_IN_PRACTICE = "DeepInPractice";

// The probes concern: audit the governed containers of one Deployment, give
// their detection figures, and in Enforce mode say which probe, preStop and
// grace fields healthgate owns. In Enforce the audit is of the template as it
// will be after the apply, so an enforced, compliant Deployment reads
// ProbesCompliant=True.

const HANDLER_KEYS = ["httpGet", "tcpSocket", "grpc", "exec"] as const;
const HOOK_KEYS = ["exec", "httpGet", "tcpSocket", "sleep"] as const;

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Server-side-apply-like merge: maps merge key by key, the applied side wins on scalars, lists are atomic. */
function mergeApplied<T>(live: T | undefined, applied: T): T {
  if (!isObject(live) || !isObject(applied)) return applied;
  const merged: Record<string, Json> = { ...live };
  for (const [key, value] of Object.entries(applied)) merged[key] = mergeApplied(live[key], value);
  return merged as T;
}

/** A handler is one-of: when the applied side brings one kind, the live side's other kinds go. */
function mergeOneOf<T extends object>(live: T | undefined, applied: T, kinds: readonly string[]): T {
  const appliedKinds = kinds.filter((k) => k in applied);
  const base = { ...(live ?? {}) } as Record<string, Json>;
  if (appliedKinds.length > 0) for (const k of kinds) if (!appliedKinds.includes(k)) delete base[k];
  return mergeApplied(base as T, applied);
}

function mergeContainer(container: Container, owned: OwnedContainerFields): Container {
  const merged: Container = { ...container };
  for (const field of Object.values(PROBE_FIELD)) {
    const probe = owned[field];
    if (probe) merged[field] = mergeOneOf<Probe>(container[field], probe, HANDLER_KEYS);
  }
  const preStop = owned.lifecycle?.preStop;
  if (preStop) {
    merged.lifecycle = {
      ...container.lifecycle,
      preStop: mergeOneOf<LifecycleHandler>(container.lifecycle?.preStop, preStop, HOOK_KEYS),
    };
  }
  return merged;
}

/**
 * The pod template as it will be after healthgate's apply of `owned`: owned
 * fields merged over the live template the way server-side apply merges them
 * (fields other managers own stay). A probe or preStop handler is one-of, so
 * a live handler of another kind (say exec where healthgate applies httpGet)
 * is shown removed: the writer must remove it in the same change (see
 * `conflictingHandlers`), or the API server rejects a probe with two handlers.
 */
export function mergeOwnedSpecIntoTemplate(template: PodTemplateSpec, owned: OwnedSpec): PodTemplateSpec {
  const containers = template.spec.containers.map((container) => {
    const fields = owned.containers.find((c) => c.name === container.name);
    return fields ? mergeContainer(container, fields) : container;
  });
  return {
    ...template,
    spec: {
      ...template.spec,
      containers,
      ...(owned.terminationGracePeriodSeconds !== undefined
        ? { terminationGracePeriodSeconds: owned.terminationGracePeriodSeconds }
        : {}),
    },
  };
}

export interface ConflictingHandler {
  container: string;
  /** e.g. livenessProbe.exec or lifecycle.preStop.httpGet: a live handler the apply would leave beside the desired one. */
  field: string;
}

/** Live handlers of another kind than the one healthgate applies; they must go for the apply to be valid. */
export function conflictingHandlers(template: PodTemplateSpec, owned: OwnedSpec): ConflictingHandler[] {
  const conflicts: ConflictingHandler[] = [];
  const check = (
    container: string,
    prefix: string,
    live: object | undefined,
    applied: object | undefined,
    kinds: readonly string[],
  ) => {
    if (!live || !applied) return;
    const appliedKinds = kinds.filter((k) => k in applied);
    for (const k of kinds)
      if (k in live && appliedKinds.length > 0 && !appliedKinds.includes(k))
        conflicts.push({ container, field: `${prefix}.${k}` });
  };
  for (const fields of owned.containers) {
    const live = template.spec.containers.find((c) => c.name === fields.name);
    if (!live) continue;
    for (const field of Object.values(PROBE_FIELD))
      check(fields.name, field, live[field], fields[field], HANDLER_KEYS);
    check(fields.name, "lifecycle.preStop", live.lifecycle?.preStop, fields.lifecycle?.preStop, HOOK_KEYS);
  }
  return conflicts;
}

/** An empty gRPC service is the same as none. */
function withoutEmptyService(probe: Probe): Probe {
  return probe.grpc && !probe.grpc.service ? { ...probe, grpc: { port: probe.grpc.port } } : probe;
}

/** Probe as the API server stores it: Kubernetes' defaults filled in. */
const storedProbe = (probe: Probe) => withoutEmptyService(withProbeDefaults(probe));

/** Every field of `wanted` has the same value in `actual` (lists compared whole). */
function contains(actual: Json, wanted: Json): boolean {
  if (isObject(wanted))
    return isObject(actual) && Object.entries(wanted).every(([k, v]) => contains(actual[k], v));
  if (Array.isArray(wanted)) return JSON.stringify(actual) === JSON.stringify(wanted);
  return actual === wanted;
}

/**
 * Whether the live template lacks some of `owned`: an owned field differs from
 * it (both with Kubernetes' defaults applied), or a conflicting handler has to
 * go. False means the template carries the decision — so a second reconcile of
 * an enforced Deployment releases nothing.
 */
export function ownedFieldsDiffer(template: PodTemplateSpec, owned: OwnedSpec): boolean {
  if (
    owned.terminationGracePeriodSeconds !== undefined &&
    podGraceSeconds(template.spec) !== owned.terminationGracePeriodSeconds
  ) {
    return true;
  }
  if (conflictingHandlers(template, owned).length > 0) return true;
  return owned.containers.some((fields) => {
    const live = template.spec.containers.find((c) => c.name === fields.name);
    if (!live) return true;
    const probeDiffers = Object.values(PROBE_FIELD).some((field) => {
      const wanted = fields[field];
      const actual = live[field];
      // Desired probes spell out every knob they own, so only the live side needs defaults.
      return (
        wanted !== undefined &&
        (actual === undefined || !contains(storedProbe(actual), withoutEmptyService(wanted)))
      );
    });
    const preStop = fields.lifecycle?.preStop;
    return probeDiffers || (preStop !== undefined && !contains(live.lifecycle?.preStop, preStop));
  });
}

// ---------------------------------------------------------------------------
// Conditions

const RULE_META: ReadonlyMap<string, RuleMeta> = new Map(
  [...PROBE_RULES, ...Object.values(POLICY_RULES)].map((meta) => [meta.rule, meta]),
);

/** The finding's specific problem, without the rule's rationale and fix that every message carries. */
export function findingProblem(finding: Finding): string {
  const meta = RULE_META.get(finding.rule);
  if (!meta) return finding.message;
  const suffix = findingMessage(meta, { problem: "" });
  return finding.message.endsWith(suffix) ? finding.message.slice(0, -suffix.length) : finding.message;
}

const fixOf = (finding: Finding) => RULE_META.get(finding.rule)?.fix ?? "";

const MAX_LISTED = 3;

function summarize(findings: readonly Finding[]): string {
  const listed = findings
    .slice(0, MAX_LISTED)
    .map(
      (f) => `${f.container ?? "pod"}: ${f.rule} (${f.severity}) — ${findingProblem(f)}. Fix: ${fixOf(f)}`,
    );
  const more =
    findings.length > MAX_LISTED
      ? ` … and ${findings.length - MAX_LISTED} more (status.targets[].findings).`
      : "";
  return listed.join(" | ") + more;
}

function probesCompliantCondition(
  findings: readonly Finding[],
  governed: readonly string[],
): ConditionIntent {
  const type = ConditionType.ProbesCompliant;
  if (governed.length === 0) {
    return {
      type,
      status: "Unknown",
      reason: "NoGovernedContainers",
      message:
        "No container is governed: none declares a port or has a probe. List the containers in spec.containers.",
    };
  }
  const failing = findings.filter((f) => atLeast(f.severity, "error"));
  if (failing.length > 0) {
    return {
      type,
      status: "False",
      reason: "FindingsAtError",
      message: `${failing.length} finding${failing.length === 1 ? "" : "s"} at error or above: ${summarize(failing)}`,
    };
  }
  const below =
    findings.length > 0
      ? ` (${findings.length} below error: ${[...new Set(findings.map((f) => f.rule))].join(", ")})`
      : "";
  return {
    type,
    status: "True",
    reason: "Compliant",
    message: `No finding at error or above for container${governed.length === 1 ? "" : "s"} ${governed.join(", ")}${below}.`,
  };
}

function livenessShallowCondition(
  findings: readonly Finding[],
  governed: readonly string[],
  witnessed?: DeepInPractice,
): ConditionIntent {
  const type = ConditionType.LivenessShallow;
  if (governed.length === 0) {
    return { type, status: "Unknown", reason: "NoGovernedContainers", message: "No container is governed." };
  }
  const deep = findings.filter((f) => f.rule === livenessDeep.rule);
  if (deep.length > 0) {
    return {
      type,
      status: "False",
      reason: "LivenessDeep",
      message: `${deep.map((f) => `container ${f.container}: ${findingProblem(f)}`).join("; ")}. Fix: ${livenessDeep.fix}`,
    };
  }
  if (witnessed) {
    return { type, status: "False", reason: DEEP_IN_PRACTICE, message: deepInPracticeMessage(witnessed) };
  }
  const suspected = findings.filter((f) => f.rule === livenessSuspectedDeep.rule);
  if (suspected.length > 0) {
    return {
      type,
      status: "True",
      reason: "SuspectedDeep",
      message: `No declared deep path is used by liveness, but ${suspected.map((f) => `container ${f.container}: ${findingProblem(f)}`).join("; ")}. ${livenessSuspectedDeep.fix}`,
    };
  }
  return {
    type,
    status: "True",
    reason: "Shallow",
    message: "Liveness probes reach no declared deep path and no other host.",
  };
}

// ---------------------------------------------------------------------------

export const probesConcern: Concern = (snapshot) => {
  const { policy, deployment } = snapshot;
  const spec = policy.spec;
  const template = deployment.spec.template;
  const workload = {
    kind: "Deployment",
    name: deployment.metadata.name,
    namespace: deployment.metadata.namespace,
  };

  const findings: Finding[] = [];
  const governed = governedContainers(spec, template.spec);
  const audited = template;
  let ownedSpec: OwnedSpec | undefined;
  const events: EventIntent[] = [];
  if (spec.mode === "Enforce" && governed.length > 0) {
    const desired = desiredOwnedSpec(spec, governed);
    ownedSpec = desired.ownedSpec;
    const meta = POLICY_RULES.policyPortUnresolved;
    for (const { container, probe, message } of desired.problems) {
      const field = PROBE_FIELD[probe];
      const problem = `${probe} probe not enforced: ${message}`;
      findings.push({
        rule: meta.rule,
        severity: meta.severity,
        container,
        field,
        message: findingMessage(meta, { field, problem }),
      });
    }
    // The audit stays of the live template: Enforce's fields arrive at admission, and status
    // is judged from what is there, never from what healthgate intends.
    if (ownedFieldsDiffer(template, ownedSpec)) {
      // The release about to happen rewrites a deep liveness: say so once, while it is pending.
      for (const deep of auditPodSpec(spec, template.spec, workload).filter(
        (f) => f.rule === livenessDeep.rule,
      )) {
        events.push({
          regarding: "Deployment",
          type: "Normal",
          reason: "LivenessDeepReplaced",
          message: `container ${deep.container}: ${findingProblem(deep)}; healthgate (mode Enforce) replaces it with the policy's shallow liveness probe`,
        });
      }
    }
  }

  const auditedGoverned = governedContainers(spec, audited.spec);
  const sorted = sortFindings([...findings, ...auditPodSpec(spec, audited.spec, workload)]);

  for (const deep of sorted.filter((f) => f.rule === livenessDeep.rule)) {
    events.push({
      regarding: "Deployment",
      type: "Warning",
      reason: livenessDeep.rule,
      message: `container ${deep.container}: ${findingProblem(deep)}. Fix: ${livenessDeep.fix}`,
    });
  }

  const names = auditedGoverned.map((c) => c.name);
  const witnessed = names.length > 0 ? snapshot.livenessWitness : undefined;
  if (witnessed && !sorted.some((f) => f.rule === livenessDeep.rule)) {
    // Goes out when LivenessShallow flips to DeepInPractice (the writer sends it with the flip).
    events.push({
      regarding: "Deployment",
      type: "Warning",
      reason: DEEP_IN_PRACTICE,
      message: deepInPracticeMessage(witnessed),
    });
  }
  return {
    concern: "probes",
    ...(ownedSpec ? { ownedSpec } : {}),
    conditions: [probesCompliantCondition(sorted, names), livenessShallowCondition(sorted, names, witnessed)],
    findings: sorted,
    figures: { detection: auditedGoverned.map((c) => detectionFigures(c, audited.spec)) },
    events,
  };
};
