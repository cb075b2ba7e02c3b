// Reading the headroom inputs out of a snapshot: is a rollout in progress, what
// does it take away, what does the HPA target, what did metrics.k8s.io measure.
// Pure: objects in, numbers (or a reason why there are none) out.
import type {
  Container,
  Deployment,
  HorizontalPodAutoscaler,
  Pod,
  PodUsageSample,
  ReplicaSet,
} from "../../api/k8s.ts";
import { parseIntOrPercent, type RolloutDisruption } from "./math.ts";

const REVISION_ANNOTATION = "deployment.kubernetes.io/revision";

/** The API server's defaults for a RollingUpdate Deployment. */
export const DEFAULT_MAX_SURGE = "25%";
export const DEFAULT_MAX_UNAVAILABLE = "25%";

const revisionOf = (rs: ReplicaSet): number => {
  const raw = rs.metadata.annotations?.[REVISION_ANNOTATION];
  const n = raw === undefined ? Number.NaN : Number(raw);
  return Number.isSafeInteger(n) ? n : -1;
};

/** Newest first: highest revision annotation, then newest creationTimestamp, then name. */
export const newestFirst = (a: ReplicaSet, b: ReplicaSet): number => {
  const byRevision = revisionOf(b) - revisionOf(a);
  if (byRevision !== 0) return byRevision;
  const ta = a.metadata.creationTimestamp ?? "";
  const tb = b.metadata.creationTimestamp ?? "";
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
};

/**
 * Whether a rollout is in progress: a ReplicaSet other than the newest one (highest
 * `deployment.kubernetes.io/revision`) still wants or has pods — the controller is replacing
 * an old revision. Scaling (the HPA's doing) moves only the newest ReplicaSet and is not a
 * rollout, which is why neither observedGeneration < generation nor updatedReplicas <
 * replicas is used: both are also true for a moment after every scale. The instant between a
 * template change and the controller creating the new ReplicaSet is caught by the reconcile
 * that the ReplicaSet's creation triggers. A paused rollout with old pods left counts as in
 * progress: its old pods, and the capacity it took, are still out.
 */
export function rolloutInProgress(replicaSets: readonly ReplicaSet[]): boolean {
  const [, ...older] = [...replicaSets].sort(newestFirst);
  return older.some((rs) => (rs.spec.replicas ?? 1) > 0 || (rs.status?.replicas ?? 0) > 0);
}

export type RolloutStrategy =
  | {
      ok: true;
      disruption: RolloutDisruption;
      /** maxUnavailable as the user wrote it (after defaulting), for messages; absent for Recreate. */
      rawMaxUnavailable?: string;
    }
  | { ok: false; message: string };

/** The Deployment's strategy with the API server's defaults (RollingUpdate, 25% / 25%). */
export function rolloutStrategy(deployment: Deployment): RolloutStrategy {
  const strategy = deployment.spec.strategy;
  if (strategy?.type === "Recreate") return { ok: true, disruption: { strategy: "Recreate" } };
  const rawSurge = strategy?.rollingUpdate?.maxSurge ?? DEFAULT_MAX_SURGE;
  const rawUnavailable = strategy?.rollingUpdate?.maxUnavailable ?? DEFAULT_MAX_UNAVAILABLE;
  const maxSurge = parseIntOrPercent(rawSurge);
  const maxUnavailable = parseIntOrPercent(rawUnavailable);
  if (!maxSurge || !maxUnavailable) {
    return {
      ok: false,
      message:
        `Deployment ${deployment.metadata.name}: spec.strategy.rollingUpdate has maxSurge ${JSON.stringify(rawSurge)} and ` +
        `maxUnavailable ${JSON.stringify(rawUnavailable)}; each must be a non-negative integer or a percentage such as 25%`,
    };
  }
  return {
    ok: true,
    disruption: { strategy: "RollingUpdate", maxSurge, maxUnavailable },
    rawMaxUnavailable: String(rawUnavailable),
  };
}

export interface HpaTarget {
  name: string;
  targetPercent: number;
  minReplicas: number;
  maxReplicas: number;
}

/** The autoscaling/v2 default when `metrics` is absent: average CPU utilization 80%. */
const HPA_DEFAULT_CPU_UTILIZATION = 80;

/**
 * The HPA's CPU Resource metric with a Utilization target. A missing `metrics` list is the
 * API server's default (CPU 80%); a list without such a target has none — never a guess.
 */
export function hpaTarget(
  hpa: HorizontalPodAutoscaler | undefined,
):
  | { ok: true; value: HpaTarget }
  | { ok: false; reason: "HPANotFound" | "HPAHasNoUtilizationTarget"; hpa?: string } {
  if (!hpa) return { ok: false, reason: "HPANotFound" };
  const metrics = hpa.spec.metrics;
  const target =
    metrics === undefined
      ? HPA_DEFAULT_CPU_UTILIZATION
      : metrics.find(
          (m) =>
            m.type === "Resource" &&
            m.resource?.name === "cpu" &&
            m.resource.target.type === "Utilization" &&
            m.resource.target.averageUtilization !== undefined,
        )?.resource?.target.averageUtilization;
  if (target === undefined || !Number.isSafeInteger(target) || target < 1) {
    return { ok: false, reason: "HPAHasNoUtilizationTarget", hpa: hpa.metadata.name };
  }
  return {
    ok: true,
    value: {
      name: hpa.metadata.name,
      targetPercent: target,
      minReplicas: hpa.spec.minReplicas ?? 1,
      maxReplicas: hpa.spec.maxReplicas,
    },
  };
}

const DECIMAL_EXPONENT: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_POWER: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };

/**
 * A CPU quantity ("250m", "1", "0.5", "123456789n", "1e3", "2Ki") in nanocores, rounded up;
 * undefined when it is not a non-negative Kubernetes quantity. Exact: decimal strings are
 * scaled as integers, never through binary floating point.
 */
export function cpuNanocores(quantity: string): number | undefined {
  const m = /^\+?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(quantity);
  if (!m) return undefined;
  const whole = m[1] ?? "";
  const fraction = m[2] ?? "";
  if (whole === "" && fraction === "") return undefined;
  let mantissa = BigInt(whole + fraction || "0");
  let exponent = 9 - fraction.length;
  if (m[3] !== undefined) exponent += Number(m[3]);
  else if (m[4] !== undefined && m[4] in BINARY_POWER) mantissa *= 1024n ** BigInt(BINARY_POWER[m[4]] ?? 0);
  else exponent += DECIMAL_EXPONENT[m[4] ?? ""] ?? 0;
  if (exponent >= 0) return Number(mantissa * 10n ** BigInt(exponent));
  const divisor = 10n ** BigInt(-exponent);
  return Number((mantissa + divisor - 1n) / divisor);
}

export type PeakUtilization =
  | { ok: true; peakPercent: number; pod: string; at: Date }
  | { ok: false; reason: "MetricsUnavailable" | "NoResourceRequests"; message: string };

/**
 * The Metrics source's u: per sample, the pod's CPU usage ÷ its CPU requests (summed over its
 * containers, as the HPA does), and the peak over the samples taken in the last
 * `windowSeconds`; rounded up to a whole percent. The requests come from the live pod, or
 * from the Deployment's template for a pod that is gone. Like the HPA, it refuses to compute a
 * utilization when a container has no CPU request.
 */
export function peakUtilization(input: {
  deploymentName: string;
  usage: readonly PodUsageSample[] | "unavailable" | undefined;
  pods: readonly Pod[];
  template: readonly Container[];
  windowSeconds: number;
  now: Date;
}): PeakUtilization {
  const { deploymentName, usage, windowSeconds, now } = input;
  const window = formatWindow(windowSeconds);
  if (usage === undefined || usage === "unavailable") {
    return {
      ok: false,
      reason: "MetricsUnavailable",
      message:
        `source Metrics, but metrics.k8s.io is not available, so the peak utilization of Deployment ${deploymentName} ` +
        `is unknown; install metrics-server, or set spec.headroom.source to Static with peakUtilizationPercent`,
    };
  }
  const since = now.getTime() - windowSeconds * 1000;
  const inWindow = usage.filter((sample) => {
    const at = Date.parse(sample.timestamp);
    return !Number.isNaN(at) && at >= since && at <= now.getTime();
  });
  const podsByName = new Map(input.pods.map((p) => [p.metadata.name, p.spec.containers] as const));
  const requestsOf = (containers: readonly Container[]) =>
    containers.map((c) => {
      const request = c.resources?.requests?.cpu;
      return { name: c.name, nanocores: request === undefined ? undefined : cpuNanocores(request) };
    });
  const missing = new Set<string>();
  const requested = (containers: readonly Container[]): number => {
    let sum = 0;
    for (const { name, nanocores } of requestsOf(containers)) {
      if (nanocores === undefined || nanocores === 0) missing.add(name);
      else sum += nanocores;
    }
    return sum;
  };
  requested(input.template);
  let peak: { percent: number; pod: string; at: Date } | undefined;
  for (const sample of inWindow) {
    const requests = requested(podsByName.get(sample.pod) ?? input.template);
    let used = 0;
    let measured = false;
    for (const c of sample.containers) {
      const nanocores = c.cpu === undefined ? undefined : cpuNanocores(c.cpu);
      if (nanocores === undefined) continue;
      used += nanocores;
      measured = true;
    }
    if (!measured || requests === 0) continue;
    const percent = Math.ceil((used * 100) / requests);
    if (!peak || percent > peak.percent)
      peak = { percent, pod: sample.pod, at: new Date(Date.parse(sample.timestamp)) };
  }
  if (missing.size > 0) {
    return {
      ok: false,
      reason: "NoResourceRequests",
      message:
        `container(s) ${[...missing].sort().join(", ")} of Deployment ${deploymentName} have no CPU request, so utilization ` +
        `(usage ÷ requests) is undefined; set resources.requests.cpu on every container`,
    };
  }
  if (!peak) {
    return {
      ok: false,
      reason: "MetricsUnavailable",
      message:
        `no metrics.k8s.io CPU samples for the pods of Deployment ${deploymentName} in the last ${window}; ` +
        `check that metrics-server scrapes them, or set spec.headroom.source to Static with peakUtilizationPercent`,
    };
  }
  return { ok: true, peakPercent: peak.percent, pod: peak.pod, at: peak.at };
}

/** 3600 → "1h", 5400 → "1h30m", 90 → "1m30s". */
export function formatWindow(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || (!h && !m) ? `${s}s` : ""}`;
}
