// The correlated-failure guard's memory (src/policy/guard decides): each cached
// pod's recent readiness changes, fed by the pod informer, and per Deployment
// what the guard remembers between looks (an active episode, flap reports).
// Bounded: a pod's entry goes with the pod (and keeps at most MAX_TRANSITIONS
// changes, none older than the longest window a policy may set); a
// Deployment's goes when it is no longer governed.
import { Counter, Gauge } from "prom-client";
import type { Pod } from "../api/k8s.ts";
import type { HealthPolicy } from "../api/v1alpha1/index.ts";
import type { Clock } from "../kube/clock.ts";
import type { InformerHandlers } from "../kube/informer.ts";
import { isHeldByGate } from "../kube/podGate.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import {
  assessGuard,
  emptyGuardState,
  type GuardAssessment,
  type GuardState,
  historyHorizonMs,
  podView,
  type ReadinessHistory,
  recordReadiness,
} from "../policy/guard/index.ts";

/** Changes kept per pod: above guardrails.flapping.maxTransitions' bound (100), so a count can exceed it. */
const MAX_TRANSITIONS = 128;
/** The longest flapping window a policy may set (guardrails.flapping.windowSeconds). */
const MAX_HORIZON_MS = 86_400_000;

export interface GuardMetrics {
  correlatedFailure: Gauge<"namespace" | "deployment">;
  flapReports: Counter<"namespace" | "deployment">;
}

export function registerGuardMetrics(metrics: Pick<HealthgateMetrics, "registry">): GuardMetrics {
  const registers = [metrics.registry];
  return {
    correlatedFailure: new Gauge({
      name: "healthgate_correlated_failure",
      help:
        "1 while a governed Deployment has an active correlated failure (CorrelatedFailure=True: healthgate " +
        "takes no capacity-shrinking action), else 0.",
      labelNames: ["namespace", "deployment"],
      registers,
    }),
    flapReports: new Counter({
      name: "healthgate_readiness_flap_reports_total",
      help:
        "Reports of a pod whose readiness flaps faster than guardrails.flapping allows (one per Event; repeat " +
        "offenders are reported with exponential backoff).",
      labelNames: ["namespace", "deployment"],
      registers,
    }),
  };
}

type PodHistory = ReadinessHistory & { ready: boolean };

const readyOf = (pod: Pod) => pod.status?.conditions?.find((c) => c.type === "Ready");

export class GuardTracker {
  private readonly pods = new Map<string, PodHistory>();
  private readonly states = new Map<string, GuardState>();
  private readonly clock: Clock;
  private readonly metrics: GuardMetrics | undefined;

  constructor(options: { clock: Clock; metrics?: GuardMetrics }) {
    this.clock = options.clock;
    this.metrics = options.metrics;
  }

  /** Handlers for the pod informer: every readiness change is recorded as it arrives. */
  readonly podHandlers: InformerHandlers<Pod> = {
    add: (pod) => this.observe(pod),
    update: (_old, pod) => this.observe(pod),
    delete: (pod) => this.pods.delete(pod.metadata.uid ?? ""),
  };

  /** Pods with a history (for tests of the bound). */
  get trackedPods(): number {
    return this.pods.size;
  }

  private observe(pod: Pod): void {
    const uid = pod.metadata.uid;
    if (!uid || !pod.status?.phase) return;
    const ready = readyOf(pod);
    const at = ready?.lastTransitionTime ? Date.parse(ready.lastTransitionTime) : this.clock.now();
    this.pods.set(
      uid,
      recordReadiness(this.pods.get(uid), ready?.status === "True", at, {
        horizonMs: MAX_HORIZON_MS,
        maxTransitions: MAX_TRANSITIONS,
      }),
    );
  }

  /**
   * The guard's look at one Deployment's pods now. `commit`: the Deployment's own reconcile
   * keeps the resulting state (and its flap reports go out); any other look (the policy's
   * status) only reads.
   */
  assess(
    key: { namespace: string; name: string },
    policy: HealthPolicy,
    pods: readonly Pod[],
    nodeZones: Readonly<Record<string, string>>,
    commit: boolean,
  ): GuardAssessment {
    const now = this.clock.now();
    const horizon = now - historyHorizonMs(policy.spec.guardrails);
    const views = pods.map((pod) => {
      const history = this.pods.get(pod.metadata.uid ?? "");
      const zone = pod.spec.nodeName ? nodeZones[pod.spec.nodeName] : undefined;
      return podView(pod, {
        heldByGate: isHeldByGate(pod),
        history: history && { ...history, transitions: history.transitions.filter((t) => t > horizon) },
        zone,
      });
    });
    const id = `${key.namespace}/${key.name}`;
    const { state, assessment } = assessGuard(
      this.states.get(id) ?? emptyGuardState(),
      views,
      now,
      policy.spec.guardrails,
    );
    if (!commit) return { ...assessment, reports: [] };
    this.states.set(id, state);
    const labels = { namespace: key.namespace, deployment: key.name };
    this.metrics?.correlatedFailure.set(labels, assessment.correlated ? 1 : 0);
    if (assessment.reports.length > 0) this.metrics?.flapReports.inc(labels, assessment.reports.length);
    return assessment;
  }

  /** The Deployment is gone or no longer governed. */
  forget(key: { namespace: string; name: string }): void {
    this.states.delete(`${key.namespace}/${key.name}`);
    this.metrics?.correlatedFailure.remove({ namespace: key.namespace, deployment: key.name });
  }
}
