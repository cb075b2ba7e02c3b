// Gauges computed at scrape time from the policies' status in the cache: they
// always agree with what `kubectl get hpol -o yaml` shows, and need no
// bookkeeping when a policy or target goes away.
import { Gauge } from "prom-client";
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

  new Gauge({
    name: "healthgate_findings",
    help: "Current findings across all targets, by rule and severity.",
    labelNames: ["rule", "severity"],
    registers,
    collect() {
      this.reset();
      const counts = new Map<string, { rule: string; severity: string; n: number }>();
      for (const { status } of statuses()) {
        for (const f of (status?.targets ?? []).flatMap((t) => t.findings ?? [])) {
          const key = `${f.rule}/${f.severity}`;
          const entry = counts.get(key) ?? { rule: f.rule, severity: f.severity, n: 0 };
          entry.n += 1;
          counts.set(key, entry);
        }
      }
      for (const { rule, severity, n } of counts.values()) this.set({ rule, severity }, n);
    },
  });

  const labels = ["namespace", "policy", "deployment"] as const;
  new Gauge({
    name: "healthgate_headroom_after_loss_ratio",
    help: "Load per surviving replica after losing `tolerate` replicas (and a rollout's maxUnavailable), as a fraction of requests (1.07 = 107%).",
    labelNames: labels,
    registers,
    collect() {
      this.reset();
      for (const { namespace, policy, status } of statuses()) {
        for (const t of status?.targets ?? []) {
          if (t.headroom?.afterLossPercent !== undefined) {
            this.set({ namespace, policy, deployment: t.name }, t.headroom.afterLossPercent / 100);
          }
        }
      }
    },
  });
  new Gauge({
    name: "healthgate_headroom_sufficient",
    help: "1 when the survivors stay under the ceiling after the loss, 0 when not.",
    labelNames: labels,
    registers,
    collect() {
      this.reset();
      for (const { namespace, policy, status } of statuses()) {
        for (const t of status?.targets ?? []) {
          if (t.headroom) this.set({ namespace, policy, deployment: t.name }, t.headroom.ok ? 1 : 0);
        }
      }
    },
  });
  registerRolloutGauges(registers, world);
  new Gauge({
    name: "healthgate_detection_seconds",
    help: "Worst-case detection time per container: kind is eject, readmit or restart.",
    labelNames: [...labels, "container", "kind"] as const,
    registers,
    collect() {
      this.reset();
      for (const { namespace, policy, status } of statuses()) {
        for (const t of status?.targets ?? []) {
          for (const d of t.detection ?? []) {
            const base = { namespace, policy, deployment: t.name, container: d.container };
            if (d.ejectSeconds !== undefined) this.set({ ...base, kind: "eject" }, d.ejectSeconds);
            if (d.readmitSeconds !== undefined) this.set({ ...base, kind: "readmit" }, d.readmitSeconds);
            if (d.restartSeconds !== undefined) this.set({ ...base, kind: "restart" }, d.restartSeconds);
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
  new Gauge({
    name: "healthgate_rollout_phase",
    help: "1 for the phase each gated Deployment's rollout is in (Progressing, Baking, Holding, Inconclusive, Aborted, Completed).",
    labelNames: [...labels, "phase"] as const,
    registers,
    collect() {
      this.reset();
      for (const { namespace, deployment, rollout } of states())
        this.set({ namespace, deployment, phase: rollout.phase }, 1);
    },
  });
  new Gauge({
    name: "healthgate_rollout_step",
    help: "Index of the current step of each gated Deployment's rollout in spec.rollout.steps, from 0.",
    labelNames: labels,
    registers,
    collect() {
      this.reset();
      for (const { namespace, deployment, rollout } of states())
        if (rollout.step !== undefined) this.set({ namespace, deployment }, rollout.step);
    },
  });
  new Gauge({
    name: "healthgate_rollout_admitted_pods",
    help: "New pods of the rollout whose healthgate.io/deep-check gate healthgate opened.",
    labelNames: labels,
    registers,
    collect() {
      this.reset();
      for (const { namespace, deployment, rollout } of states())
        this.set({ namespace, deployment }, rollout.admitted?.length ?? 0);
    },
  });
}
