import type { Finding, HealthPolicySpec } from "../../api/v1alpha1/index.ts";
import { healthPolicySpec } from "../../api/v1alpha1/index.ts";
import type { Container, PodSpec } from "../../api/k8s.ts";
import { PROBE_RULES } from "./rules.ts";
import { SEVERITY_RANK, findingMessage, type RuleContext, type RuleMeta, type Workload } from "./rule.ts";

export { PROBE_RULES } from "./rules.ts";
export {
  SEVERITY_RANK,
  atLeast,
  type ProbeRule,
  type RuleContext,
  type RuleMeta,
  type Verdict,
  type Workload,
} from "./rule.ts";

/** Findings about the policy's fit to a workload, raised by the probes concern rather than a container rule. */
export const POLICY_RULES = {
  governedContainerMissing: {
    rule: "GovernedContainerMissing",
    severity: "error",
    checks:
      "The HealthPolicy's spec.containers names a container that the Deployment's pod template does not have.",
    rationale:
      "Nothing is audited or enforced for it, so the policy silently covers less than its author meant.",
    fix: "Correct the name in spec.containers, or remove it.",
  },
  policyPortUnresolved: {
    rule: "PolicyPortUnresolved",
    severity: "error",
    checks:
      "Enforce mode cannot build a probe because the policy's port (spec.endpoints.port or an endpoint's port) is a " +
      "name the container does not declare and the container declares no port to fall back on, or a gRPC probe has no numeric port.",
    rationale:
      "healthgate never writes a probe the kubelet cannot run; that probe is left as it is and the policy is not enforced for it.",
    fix: "Declare the port in the container's ports[], or use a port number in the policy.",
  },
} as const satisfies Record<string, RuleMeta>;

/** Runs every probe rule for one container; findings worst first (stable within a severity). */
export function runRules(ctx: RuleContext): Finding[] {
  return sortFindings(PROBE_RULES.flatMap((rule) => rule.check(ctx)));
}

export function sortFindings(findings: readonly Finding[]): Finding[] {
  return findings
    .map((finding, index) => ({ finding, index }))
    .sort(
      (a, b) => SEVERITY_RANK[b.finding.severity] - SEVERITY_RANK[a.finding.severity] || a.index - b.index,
    )
    .map(({ finding }) => finding);
}

/**
 * Every finding for one pod spec under one policy: the policy's fit (a listed
 * container that does not exist) and the rules for each governed container.
 */
export function auditPodSpec(policy: HealthPolicySpec, podSpec: PodSpec, workload: Workload): Finding[] {
  const findings: Finding[] = [];
  for (const name of policy.containers ?? []) {
    if (!podSpec.containers.some((c) => c.name === name)) {
      const meta = POLICY_RULES.governedContainerMissing;
      const field = "spec.containers";
      const problem = `the pod template has no container "${name}" (HealthPolicy spec.containers)`;
      findings.push({
        rule: meta.rule,
        severity: meta.severity,
        container: name,
        field,
        message: findingMessage(meta, { field, problem }),
      });
    }
  }
  for (const container of governedContainers(policy, podSpec))
    findings.push(...runRules({ container, podSpec, workload, policy }));
  return sortFindings(findings);
}

/**
 * The containers a policy governs: spec.containers, else every container that declares a port or
 * has any probe (`ports` is informational in Kubernetes and many manifests leave it out; a probe
 * shows the container serves something all the same).
 */
export function governedContainers(policy: HealthPolicySpec, podSpec: PodSpec): Container[] {
  if (policy.containers) return podSpec.containers.filter((c) => policy.containers?.includes(c.name));
  return podSpec.containers.filter(
    (c) =>
      (c.ports?.length ?? 0) > 0 ||
      c.livenessProbe !== undefined ||
      c.readinessProbe !== undefined ||
      c.startupProbe !== undefined,
  );
}

/**
 * The spec a HealthPolicy with nothing set gets from the CRD's defaults: what
 * lint uses without a policy. The schema insists on a selector or targetRef;
 * a placeholder satisfies it and is dropped, since nothing is selected here.
 */
export function defaultPolicySpec(): HealthPolicySpec {
  const { targetRef: _placeholder, ...defaults } = healthPolicySpec.parse({
    targetRef: { name: "lint" },
    endpoints: {},
  });
  return defaults;
}
