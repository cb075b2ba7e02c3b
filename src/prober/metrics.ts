// The deep-check metrics, on the operator's registry. Labelled by cohort (new, stable), outcome
// and error class — never by pod: 10,000 pods would be 10,000 series per metric.
import { Counter, Gauge, Histogram } from "prom-client";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import type { Cohort, DeepCheckResult } from "./types.ts";

export interface DeepCheckMetrics {
  readonly probes: Counter<"cohort">;
  readonly results: Counter<"cohort" | "outcome" | "class">;
  readonly duration: Histogram<"cohort" | "outcome">;
  readonly startLateness: Histogram;
  readonly overruns: Counter;
  readonly targets: Gauge<"cohort">;
  readonly inFlight: Gauge;
  readonly unchecked: Gauge<"reason">;
}

/** "answered" when the pod gave a complete answer (whatever its status), else the error class. */
export const resultClass = (r: Pick<DeepCheckResult, "errorClass">): string => r.errorClass ?? "answered";

export function registerDeepCheckMetrics(metrics: HealthgateMetrics): DeepCheckMetrics {
  const registers = [metrics.registry];
  return {
    probes: new Counter({
      name: "healthgate_deep_check_probes_total",
      help: "Deep-check probes sent, by cohort (new: pods of the rollout's new revision; stable: the sample of stable pods).",
      labelNames: ["cohort"],
      registers,
    }),
    results: new Counter({
      name: "healthgate_deep_check_results_total",
      help:
        "Deep-check results by cohort, outcome (pass; fail: the pod answered wrongly; error: not reached) and class " +
        "(answered, or the error: refused, reset, unreachable, timeout-before-answer, tls, other, protocol, " +
        "timeout-during-body, reset-during-body).",
      labelNames: ["cohort", "outcome", "class"],
      registers,
    }),
    duration: new Histogram({
      name: "healthgate_deep_check_duration_seconds",
      help: "Time one deep check took, connect to last byte (or to the timeout), by cohort and outcome.",
      labelNames: ["cohort", "outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    startLateness: new Histogram({
      name: "healthgate_deep_check_start_lateness_seconds",
      help: "How long after its scheduled time a deep check started: the prober's own health (a busy worker, too little concurrency).",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    overruns: new Counter({
      name: "healthgate_deep_check_overruns_total",
      help: "Deep checks skipped because the previous check of the same pod was still running or waiting for a slot.",
      registers,
    }),
    targets: new Gauge({
      name: "healthgate_deep_check_targets",
      help: "Pods the prober checks, by cohort.",
      labelNames: ["cohort"],
      registers,
    }),
    unchecked: new Gauge({
      name: "healthgate_deep_check_unchecked_pods",
      help:
        "Pods handed to the prober that it does not deep-check, by reason (HostNetwork: its IP is the node's; " +
        "NoPodIP, NotRunning, Terminating, PortUnresolved, PathRefused, NoDeepCheck).",
      labelNames: ["reason"],
      registers,
    }),
    inFlight: new Gauge({
      name: "healthgate_deep_check_in_flight",
      help: "Deep checks running at the last report of the prober's thread.",
      registers,
    }),
  };
}

export function recordResults(
  m: DeepCheckMetrics,
  results: readonly DeepCheckResult[],
  sent: Record<Cohort, number>,
): void {
  for (const cohort of ["new", "stable"] as const)
    if (sent[cohort] > 0) m.probes.inc({ cohort }, sent[cohort]);
  for (const r of results) {
    m.results.inc({ cohort: r.cohort, outcome: r.outcome, class: resultClass(r) });
    m.duration.observe({ cohort: r.cohort, outcome: r.outcome }, r.durationMs / 1000);
    m.startLateness.observe(r.latenessMs / 1000);
  }
}
