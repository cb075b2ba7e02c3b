// Gauges computed at scrape time from the policies' status in the cache: they
// always agree with what `kubectl get hpol -o yaml` shows, and need no
// bookkeeping when a policy or target goes away.
//
// They are not prom-client Gauges: a Gauge keeps every series it was set to between scrapes and
// hashes each series' labels on every set, and with 1,000 Deployments these families hold about
// 8,000 series. A computedGauge keeps nothing and hands the registry the values it computes.
import type { Metric, MetricValue } from "prom-client";
import type { HealthPolicyStatus } from "../api/v1alpha1/index.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import type { World } from "./world.ts";

export function registerStatusGauges(metrics: HealthgateMetrics, world: World): void {
  const statuses = () =>
    world.policies.list().map((p) => ({
      namespace: p.metadata.namespace ?? "",
      policy: p.metadata.name,
      status: (p as { status?: HealthPolicyStatus }).status,
    }));
  const registers = [metrics.registry];

  computedGauge({
    name: "healthgate_findings",
    help: "Current findings across all targets, by rule and severity.",
    labelNames: ["rule", "severity"],
    registers,
    *values() {
      const counts = new Map<string, { rule: string; severity: string; n: number }>();
      for (const { status } of statuses()) {
        for (const f of (status?.targets ?? []).flatMap((t) => t.findings ?? [])) {
          const key = `${f.rule}/${f.severity}`;
          const entry = counts.get(key) ?? { rule: f.rule, severity: f.severity, n: 0 };
          entry.n += 1;
          counts.set(key, entry);
        }
      }
      for (const { rule, severity, n } of counts.values()) yield { labels: { rule, severity }, value: n };
    },
  });

  const labels = ["namespace", "policy", "deployment"] as const;
  computedGauge({
    name: "healthgate_headroom_after_loss_ratio",
    help: "Load per surviving replica after losing `tolerate` replicas (and a rollout's maxUnavailable), as a fraction of requests (1.07 = 107%).",
    labelNames: labels,
    registers,
    *values() {
      for (const { namespace, policy, status } of statuses()) {
        for (const t of status?.targets ?? []) {
          if (t.headroom?.afterLossPercent !== undefined) {
            yield {
              labels: { namespace, policy, deployment: t.name },
              value: t.headroom.afterLossPercent / 100,
            };
          }
        }
      }
    },
  });
  computedGauge({
    name: "healthgate_headroom_sufficient",
    help: "1 when the survivors stay under the ceiling after the loss, 0 when not.",
    labelNames: labels,
    registers,
    *values() {
      for (const { namespace, policy, status } of statuses()) {
        for (const t of status?.targets ?? []) {
          if (t.headroom)
            yield { labels: { namespace, policy, deployment: t.name }, value: t.headroom.ok ? 1 : 0 };
        }
      }
    },
  });
  registerRolloutGauges(registers, world);
  computedGauge({
    name: "healthgate_detection_seconds",
    help: "Worst-case detection time per container: kind is eject, readmit or restart.",
    labelNames: [...labels, "container", "kind"],
    registers,
    *values() {
      for (const { namespace, policy, status } of statuses()) {
        for (const t of status?.targets ?? []) {
          for (const d of t.detection ?? []) {
            const base = { namespace, policy, deployment: t.name, container: d.container };
            if (d.ejectSeconds !== undefined)
              yield { labels: { ...base, kind: "eject" }, value: d.ejectSeconds };
            if (d.readmitSeconds !== undefined)
              yield { labels: { ...base, kind: "readmit" }, value: d.readmitSeconds };
            if (d.restartSeconds !== undefined)
              yield { labels: { ...base, kind: "restart" }, value: d.restartSeconds };
          }
        }
      }
    },
  });
}

/** Gated rollouts, from the records' status.rollout (what `kubectl get htgt` shows). */
function registerRolloutGauges(registers: HealthgateMetrics["registry"][], world: World): void {
  const labels = ["namespace", "deployment"] as const;
  const states = () =>
    world.targets.list().flatMap((t) => {
      const rollout = t.status?.rollout;
      return rollout ? [{ namespace: t.metadata.namespace ?? "", deployment: t.metadata.name, rollout }] : [];
    });
  computedGauge({
    name: "healthgate_rollout_phase",
    help: "1 for the phase each gated Deployment's rollout is in (Progressing, Baking, Holding, Inconclusive, Aborted, Completed).",
    labelNames: [...labels, "phase"],
    registers,
    *values() {
      for (const { namespace, deployment, rollout } of states())
        yield { labels: { namespace, deployment, phase: rollout.phase }, value: 1 };
    },
  });
  computedGauge({
    name: "healthgate_rollout_step",
    help: "Index of the current step of each gated Deployment's rollout in spec.rollout.steps, from 0.",
    labelNames: labels,
    registers,
    *values() {
      for (const { namespace, deployment, rollout } of states())
        if (rollout.step !== undefined) yield { labels: { namespace, deployment }, value: rollout.step };
    },
  });
  computedGauge({
    name: "healthgate_rollout_admitted_pods",
    help: "New pods of the rollout whose healthgate.io/deep-check gate healthgate opened.",
    labelNames: labels,
    registers,
    *values() {
      for (const { namespace, deployment, rollout } of states())
        yield { labels: { namespace, deployment }, value: rollout.admitted?.length ?? 0 };
    },
  });
}

/**
 * A gauge whose series are computed when the registry reads it (a scrape) and kept nowhere:
 * prom-client's Registry reads a metric through `get()` and its `name`, `help`, `type` and
 * `labelNames` (hack/gen-metrics-doc.ts reads the same).
 */
export function computedGauge(options: {
  name: string;
  help: string;
  labelNames: readonly string[];
  registers: HealthgateMetrics["registry"][];
  values: () => Iterable<MetricValue<string>>;
}): void {
  const { name, help, labelNames, registers, values } = options;
  const metric = {
    name,
    help,
    type: "gauge",
    labelNames,
    aggregator: "sum",
    get: async () => ({ name, help, type: "gauge", aggregator: "sum", values: [...values()] }),
    reset: () => undefined,
  };
  for (const registry of registers) registry.registerMetric(metric as unknown as Metric);
}
