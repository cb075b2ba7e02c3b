// What a rollout reads from the cluster, reduced to plain data: the Deployment's revisions and
// each pod's standing. Pure.
import type { Deployment, Pod, ReplicaSet } from "../../api/k8s.ts";
import { assessHeadroom, type HeadroomInputs } from "../headroom/concern.ts";
import { newestFirst, rolloutStrategy } from "../headroom/inputs.ts";
import { rolloutLossAt } from "../headroom/math.ts";
import { DEEP_CHECK_GATE, type HeadroomSpec } from "../../api/v1alpha1/index.ts";
import type { PodAssessment } from "./deepCheck.ts";

export const POD_TEMPLATE_HASH = "pod-template-hash";

/** One pod as the rollout sees it. */
export interface GatePod {
  name: string;
  uid: string;
  /** pod-template-hash: the revision it runs. */
  revision: string;
  /** Epoch ms. */
  createdAt: number;
  deleting: boolean;
  gated: boolean;
  /** Its healthgate.io/deep-check condition now. */
  gate?: "True" | "False" | "Unknown";
  containersReady: boolean;
  ready: boolean;
  /** PodScheduled=False reason Unschedulable: its message. */
  unschedulable?: string;
  /** A container in CrashLoopBackOff: "container web (3 restarts)". */
  crashLooping?: string;
  /** A container whose image cannot be pulled: "container web: ImagePullBackOff …". */
  imagePullFailing?: string;
  /** Deep checks since its containers became ready (absent: none yet). */
  assessment?: PodAssessment;
}

const IMAGE_PULL_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "RegistryUnavailable",
]);

const conditionStatus = (pod: Pod, type: string) => pod.status?.conditions?.find((c) => c.type === type);

export function gatePod(pod: Pod, assessment: PodAssessment | undefined): GatePod {
  const scheduled = conditionStatus(pod, "PodScheduled");
  const waiting = (pod.status?.containerStatuses ?? []).flatMap((c) =>
    c.state?.waiting ? [{ name: c.name, restarts: c.restartCount, ...c.state.waiting }] : [],
  );
  const crash = waiting.find((w) => w.reason === "CrashLoopBackOff");
  const pull = waiting.find((w) => w.reason !== undefined && IMAGE_PULL_REASONS.has(w.reason));
  const gate = conditionStatus(pod, DEEP_CHECK_GATE)?.status;
  return {
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? pod.metadata.name,
    revision: pod.metadata.labels?.[POD_TEMPLATE_HASH] ?? "",
    createdAt: Date.parse(pod.metadata.creationTimestamp ?? "") || 0,
    deleting: pod.metadata.deletionTimestamp !== undefined,
    // The gate as kube/podGate.ts's isGated reads it (policy code imports nothing from kube/).
    gated: pod.spec.readinessGates?.some((g) => g.conditionType === DEEP_CHECK_GATE) ?? false,
    ...(gate ? { gate } : {}),
    containersReady: conditionStatus(pod, "ContainersReady")?.status === "True",
    ready: conditionStatus(pod, "Ready")?.status === "True",
    ...(scheduled?.status === "False" && scheduled.reason === "Unschedulable"
      ? { unschedulable: scheduled.message ?? "no node fits" }
      : {}),
    ...(crash ? { crashLooping: `container ${crash.name} (${crash.restarts} restarts)` } : {}),
    ...(pull
      ? {
          imagePullFailing: `container ${pull.name}: ${pull.reason}${pull.message ? ` (${pull.message})` : ""}`,
        }
      : {}),
    ...(assessment ? { assessment } : {}),
  };
}

/**
 * The Deployment's newest revision (the ReplicaSet with the highest deployment.kubernetes.io/revision),
 * once the controller has seen the Deployment's current generation; undefined before.
 */
export function newestRevision(
  deployment: Deployment,
  replicaSets: readonly ReplicaSet[],
): string | undefined {
  if ((deployment.status?.observedGeneration ?? 0) < (deployment.metadata.generation ?? 0)) return undefined;
  const newest = [...replicaSets].sort(newestFirst)[0];
  return newest?.metadata.labels?.[POD_TEMPLATE_HASH];
}

/** Whether the Deployment runs only `revision`, every desired replica of it updated and available. */
export function fullyAvailable(
  deployment: Deployment,
  replicaSets: readonly ReplicaSet[],
  revision: string,
): boolean {
  const n = deployment.spec.replicas ?? 1;
  const s = deployment.status ?? {};
  const others = replicaSets.filter((rs) => rs.metadata.labels?.[POD_TEMPLATE_HASH] !== revision);
  return (
    (s.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0) &&
    (s.updatedReplicas ?? 0) === n &&
    (s.availableReplicas ?? 0) >= n &&
    (s.replicas ?? 0) === n &&
    others.every((rs) => (rs.spec.replicas ?? 0) === 0 && (rs.status?.replicas ?? 0) === 0)
  );
}

/** The serving floor and what the Deployment controller may take out at once. */
export interface ServingFloor {
  /** F: Ready pods a step or an abort never goes below. */
  floor: number;
  /** Why F is what it is. */
  why: string;
  /** The rolling update's resolved maxUnavailable at N (N for Recreate). */
  maxUnavailable: number;
  /** maxUnavailable as written, for messages. */
  rawMaxUnavailable: string;
}

/**
 * F = N − the largest safe maxUnavailable the headroom concern computes (it counts tolerate and
 * peak utilization for every source); without spec.headroom (or when it cannot say), F = N − 1.
 */
export function servingFloor(snapshot: HeadroomInputs, headroom: HeadroomSpec | undefined): ServingFloor {
  const n = snapshot.deployment.spec.replicas ?? 1;
  const strategy = rolloutStrategy(snapshot.deployment);
  const maxUnavailable = strategy.ok ? rolloutLossAt(strategy.disruption, n) : 0;
  const rawMaxUnavailable = strategy.ok
    ? (strategy.rawMaxUnavailable ?? "all (Recreate)")
    : String(snapshot.deployment.spec.strategy?.rollingUpdate?.maxUnavailable ?? "25%");
  const safe = headroom ? assessHeadroom(snapshot, headroom).figures?.maxSafeMaxUnavailable : undefined;
  if (safe !== undefined) {
    return {
      floor: Math.max(0, n - safe),
      why: `N − the largest safe maxUnavailable (${safe}) from spec.headroom`,
      maxUnavailable,
      rawMaxUnavailable,
    };
  }
  return { floor: Math.max(0, n - 1), why: "N − 1 (no spec.headroom)", maxUnavailable, rawMaxUnavailable };
}
