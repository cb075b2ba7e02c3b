// GET /rollout/deep-checks?namespace=<ns>&deployment=<name> on the operator's metrics/health
// port: the latest deep-check result of each pod a gated rollout checks, served from the
// leader's memory (the prober's results never go to the API server one by one). The CLI's
// `healthgate rollout status` reaches it through the API server's service proxy, so who may read
// it is decided by RBAC on services/proxy (docs/rollouts.md). It shows only what the pods' own
// objects and the policy status already tell, plus each check's outcome class: pod names,
// revision, cohort, standing, status code, duration, bytes read and error class — never a
// response body or header, an address, or an error's text.
import type { Cohort, ErrorClass, Outcome } from "../prober/types.ts";
import type { PodStanding } from "../policy/rollout/deepCheck.ts";
import type { UncheckedReason } from "../prober/targets.ts";
import type { JsonRoute } from "../observability/server.ts";

export const DEEP_CHECKS_PATH = "/rollout/deep-checks";

export interface PodDeepCheck {
  pod: string;
  cohort: Cohort;
  /** Against successThreshold / failureLimit. */
  standing: PodStanding;
  consecutivePasses: number;
  consecutiveFailures: number;
  consecutiveErrors: number;
  /** The latest result, once one arrived. */
  latest?: {
    revision: string;
    outcome: Outcome;
    statusCode?: number;
    durationMs: number;
    bytesRead: number;
    truncated: boolean;
    errorClass?: ErrorClass;
    /** When the check started (RFC 3339). */
    at: string;
  };
}

export interface DeepCheckReport {
  /** Only the leader deep-checks pods; another replica answers 503 with leader false. */
  leader: boolean;
  /** The replica that answered. */
  identity: string;
  namespace?: string;
  deployment?: string;
  pods?: PodDeepCheck[];
  unchecked?: { pod: string; cohort: Cohort; reason: UncheckedReason }[];
  message?: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export interface DeepCheckSource {
  identity: string;
  isLeader: () => boolean;
  report: (namespace: string, deployment: string) => Pick<DeepCheckReport, "pods" | "unchecked">;
}

export function deepChecksRoute(source: DeepCheckSource): JsonRoute {
  return (query) => {
    const identity = source.identity;
    for (const param of ["namespace", "deployment"]) {
      const value = query.get(param) ?? "";
      if (!NAME.test(value))
        return {
          status: 400,
          body: {
            leader: source.isLeader(),
            identity,
            message: `query parameter ${param} ${JSON.stringify(value)} is not a Kubernetes object name; ask for ${DEEP_CHECKS_PATH}?namespace=<namespace>&deployment=<deployment>`,
          } satisfies DeepCheckReport,
        };
    }
    const namespace = query.get("namespace")!;
    const deployment = query.get("deployment")!;
    if (!source.isLeader())
      return {
        status: 503,
        body: {
          leader: false,
          identity,
          message: `replica ${identity} is not the leader: only the leader deep-checks pods; ask again (the Service picks a replica)`,
        } satisfies DeepCheckReport,
      };
    return {
      status: 200,
      body: { leader: true, identity, namespace, deployment, ...source.report(namespace, deployment) },
    };
  };
}
