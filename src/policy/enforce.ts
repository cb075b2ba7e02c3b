// Enforce at admission, the pure half (DESIGN.md, "The seam"). healthgate computes the
// decision (src/policy/probes), releases it into the Deployment's HealthTarget record, and a
// MutatingAdmissionPolicy (src/admission/enforce.ts) writes it into every write of the
// Deployment. What is judged here, always from the live template: does it carry the released
// decision, and if not, which of the admission policy's guards keeps it out.
import type { Container, Deployment, PodTemplateSpec } from "../api/k8s.ts";
import type { ContainerDecision, Decision, StrategyDecision } from "../api/v1alpha1/index.ts";
import { ConditionType } from "../api/v1alpha1/index.ts";
import type { ConditionIntent, OwnedSpec } from "./seam.ts";
import { ownedFieldsDiffer } from "./probes/concern.ts";
import { strategyCarried, strategyProblems } from "./rollout/strategy.ts";

/**
 * Label of healthgate's release write: the revision of the decision it released. A label, not an
 * annotation, so the admission policy's object selector can skip every other Deployment.
 */
export const RELEASED_LABEL = "healthgate.io/released";

/** Canonical JSON: keys sorted, so equal decisions hash equally. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Two FNV-1a 32-bit hashes with different offsets: 16 hex digits, enough to name a revision. */
function revisionOf(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

/** Named ports a probe's handler refers to (httpGet and tcpSocket may name one; gRPC is numeric). */
function namedPorts(probe: { httpGet?: { port: unknown }; tcpSocket?: { port: unknown } } | undefined) {
  const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port;
  return typeof port === "string" && !/^[0-9]+$/.test(port) ? [port] : [];
}

/**
 * The decision healthgate releases for an owned spec (and, with spec.rollout, the strategy fields
 * the rollout needs), with the revision that names it.
 */
export function decisionOf(owned: OwnedSpec, strategy?: StrategyDecision): Decision {
  const containers: ContainerDecision[] = owned.containers.map((c) => {
    const requiredPorts = [
      ...new Set(
        [c.livenessProbe, c.readinessProbe, c.startupProbe, c.lifecycle?.preStop].flatMap((p) =>
          namedPorts(p as Parameters<typeof namedPorts>[0]),
        ),
      ),
    ].sort();
    return {
      name: c.name,
      ...(c.livenessProbe ? { livenessProbe: { ...c.livenessProbe } } : {}),
      ...(c.readinessProbe ? { readinessProbe: { ...c.readinessProbe } } : {}),
      ...(c.startupProbe ? { startupProbe: { ...c.startupProbe } } : {}),
      ...(c.lifecycle?.preStop ? { preStop: { ...c.lifecycle.preStop } } : {}),
      ...(requiredPorts.length > 0 ? { requiredPorts } : {}),
    };
  });
  const body = {
    ...(owned.terminationGracePeriodSeconds !== undefined
      ? { terminationGracePeriodSeconds: owned.terminationGracePeriodSeconds }
      : {}),
    containers,
    ...(strategy ? { strategy } : {}),
  };
  return { revision: revisionOf(canonical(body)), ...body };
}

/** The decision as the owned spec it came from (for comparing with a live template). */
export function ownedSpecOf(decision: Decision): OwnedSpec {
  return {
    ...(decision.terminationGracePeriodSeconds !== undefined
      ? { terminationGracePeriodSeconds: decision.terminationGracePeriodSeconds }
      : {}),
    containers: decision.containers.map((c) => ({
      name: c.name,
      ...(c.livenessProbe ? { livenessProbe: c.livenessProbe as Container["livenessProbe"] } : {}),
      ...(c.readinessProbe ? { readinessProbe: c.readinessProbe as Container["readinessProbe"] } : {}),
      ...(c.startupProbe ? { startupProbe: c.startupProbe as Container["startupProbe"] } : {}),
      ...(c.preStop
        ? { lifecycle: { preStop: c.preStop as NonNullable<Container["lifecycle"]>["preStop"] } }
        : {}),
    })),
  };
}

/**
 * Why admission leaves part of `decision` out of `template`: the same guards as the
 * MutatingAdmissionPolicy's CEL (a container the decision names is gone; a named port its
 * probes use is no longer declared; another container's preStop sleep exceeds the grace).
 */
export function guardProblems(
  template: PodTemplateSpec,
  decision: Decision,
  spec?: Deployment["spec"],
): string[] {
  const problems: string[] = spec ? strategyProblems(spec, decision.strategy) : [];
  const containers = template.spec.containers;
  const fits: ContainerDecision[] = [];
  for (const d of decision.containers) {
    const live = containers.find((c) => c.name === d.name);
    if (!live) {
      problems.push(
        `container ${d.name}: the pod template no longer has it; nothing is written for it ` +
          `(healthgate decides again for the containers the template has)`,
      );
      continue;
    }
    const missing = (d.requiredPorts ?? []).filter((p) => !(live.ports ?? []).some((cp) => cp.name === p));
    if (missing.length > 0) {
      problems.push(
        `container ${d.name}: declares no port named ${missing.join(", ")}, which the decision's probes use; ` +
          `its probes are left as they are. Declare the port, or set a port number in the HealthPolicy`,
      );
      continue;
    }
    fits.push(d);
  }
  const grace = decision.terminationGracePeriodSeconds;
  if (grace !== undefined) {
    for (const c of containers) {
      if (fits.some((d) => d.name === c.name && d.preStop)) continue;
      const sleep = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
      if (sleep > grace) {
        problems.push(
          `container ${c.name}: its preStop sleep (${sleep} s) exceeds the decision's terminationGracePeriodSeconds ` +
            `(${grace} s), so the grace period is left as it is`,
        );
      }
    }
  }
  return problems;
}

/**
 * Whether the live template carries `decision` (Kubernetes' defaults aside), and, given the
 * Deployment's spec, whether its strategy fields are as the decision wants them.
 */
export const carriesDecision = (
  template: PodTemplateSpec,
  decision: Decision,
  spec?: Deployment["spec"],
): boolean =>
  !ownedFieldsDiffer(template, ownedSpecOf(decision)) && (!spec || strategyCarried(spec, decision.strategy));

export interface EnforceObservation {
  decision: Decision;
  template: PodTemplateSpec;
  /** The Deployment's healthgate.io/released label: the last release write admission saw. */
  releasedLabel: string | undefined;
  /** The Deployment's spec, for the decision's strategy fields. */
  spec?: Deployment["spec"];
}

/** The record's Enforced condition, judged from the live template. */
export function enforcedCondition({ decision, template, releasedLabel, spec }: EnforceObservation): {
  status: "True" | "False";
  reason: string;
  message: string;
} {
  if (carriesDecision(template, decision, spec)) {
    return {
      status: "True",
      reason: "Enforced",
      // No revision here: the message stays the same across releases, so a release that lands
      // changes nothing in the record (the Deployment's label and the index name the revision).
      message: `the Deployment's template carries the released decision (its revision: the Deployment's label ${RELEASED_LABEL})`,
    };
  }
  const guards = guardProblems(template, decision, spec);
  if (guards.length > 0) {
    return { status: "False", reason: "GuardFailed", message: guards.join("; ") };
  }
  if (releasedLabel !== decision.revision) {
    return {
      status: "False",
      reason: "Releasing",
      message: `decision ${decision.revision} is released; the Deployment's next write carries it`,
    };
  }
  return {
    status: "False",
    reason: "EnforceNotApplied",
    message:
      `the Deployment was written after decision ${decision.revision} was released, yet its template does not ` +
      "carry it: the MutatingAdmissionPolicy healthgate-enforce is missing or disabled, or a later admission " +
      "plugin rewrites the probes. Check `kubectl get mutatingadmissionpolicies`",
  };
}

/**
 * ProbesCompliant while Enforce cannot bring its decision into the template for a lasting
 * reason (a guard, or admission not applying it): the live audit alone would hide why.
 */
export function enforceComplianceIntent(observation: EnforceObservation): ConditionIntent | undefined {
  const enforced = enforcedCondition(observation);
  if (enforced.status === "True" || enforced.reason === "Releasing") return undefined;
  return {
    type: ConditionType.ProbesCompliant,
    status: "False",
    reason: enforced.reason,
    message: `${enforced.message}.`,
  };
}
