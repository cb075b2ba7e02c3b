import type { Finding, HealthPolicySpec, Severity } from "../../api/v1alpha1/index.ts";
import type { Container, PodSpec } from "../../api/k8s.ts";

// A probe rule in the style of cert-manager's policy chain: a small pure
// function of one input that returns a verdict or nothing. The rule's fixed
// metadata (severity, what it checks, why, how to fix) turns a verdict into a
// Finding whose message carries the rationale, and generates docs/rules.md.

export interface Workload {
  kind: string;
  name: string;
  namespace?: string;
}

export interface RuleContext {
  container: Container;
  podSpec: PodSpec;
  workload: Workload;
  /** The governing policy's spec (zod-parsed), or the CRD's defaults when linting without one. */
  policy: HealthPolicySpec;
}

/** What a rule found, in the rule's own words. */
export interface Verdict {
  /** Field path, relative to the container (livenessProbe.httpGet.path) or the pod (spec.terminationGracePeriodSeconds). */
  field?: string;
  /** The specific problem in this container, e.g. "liveness GET :8080/health/deep reaches path /health/deep". */
  problem: string;
}

export interface RuleMeta {
  /** CamelCase identifier; Finding.rule. */
  rule: string;
  severity: Severity;
  /** One line: what the rule checks. */
  checks: string;
  /** Why it matters (the failure it prevents). */
  rationale: string;
  /** What to change. */
  fix: string;
}

export interface ProbeRule extends RuleMeta {
  evaluate: (ctx: RuleContext) => Verdict | readonly Verdict[] | undefined;
  /** evaluate, turned into Findings. */
  check: (ctx: RuleContext) => Finding[];
}

export const SEVERITY_RANK: Readonly<Record<Severity, number>> = {
  info: 0,
  warning: 1,
  error: 2,
  critical: 3,
};

export const atLeast = (severity: Severity, threshold: Severity) =>
  SEVERITY_RANK[severity] >= SEVERITY_RANK[threshold];

const MESSAGE_LIMIT = 4096;

export function findingMessage(meta: RuleMeta, verdict: Verdict): string {
  const message = `${verdict.problem}. ${meta.rationale} Fix: ${meta.fix}`;
  return message.length <= MESSAGE_LIMIT ? message : message.slice(0, MESSAGE_LIMIT - 1) + "…";
}

export function defineRule(meta: RuleMeta, evaluate: ProbeRule["evaluate"]): ProbeRule {
  return {
    ...meta,
    evaluate,
    check(ctx) {
      const result = evaluate(ctx);
      const verdicts: readonly Verdict[] =
        result === undefined
          ? []
          : "problem" in result
            ? [result as Verdict]
            : (result as readonly Verdict[]);
      return verdicts.map((verdict) => ({
        rule: meta.rule,
        severity: meta.severity,
        container: ctx.container.name,
        ...(verdict.field !== undefined ? { field: verdict.field } : {}),
        message: findingMessage(meta, verdict),
      }));
    },
  };
}
