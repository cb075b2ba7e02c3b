// The readiness gate healthgate adds to the pods of a new revision (DESIGN.md, "Rollout
// gating") and the one write that opens or closes it: a server-side apply of the single
// `healthgate.io/deep-check` condition on pods/status, under healthgate's own field manager.
// Pod conditions are a map keyed by type, so the apply touches no condition the kubelet
// owns. Both the rollout logic (admit, abort) and the gate release (gating stopped,
// `healthgate release-gates`) write through here; callers write on transitions only.
import { DEEP_CHECK_GATE } from "../api/v1alpha1/healthpolicy.ts";
import type { Pod, PodCondition } from "../api/k8s.ts";
import type { KubeClient } from "./client.ts";

/** Field manager of every write of the deep-check condition. */
export const GATE_FIELD_MANAGER = "healthgate-gate";

/** Whether the pod carries healthgate's readiness gate. */
export function isGated(pod: Pick<Pod, "spec">): boolean {
  return pod.spec.readinessGates?.some((g) => g.conditionType === DEEP_CHECK_GATE) ?? false;
}

/** The pod's deep-check condition, if it has one. */
export function gateCondition(pod: Pick<Pod, "status">): PodCondition | undefined {
  return pod.status?.conditions?.find((c) => c.type === DEEP_CHECK_GATE);
}

/** A gated pod whose gate is not True: it cannot become Ready until healthgate opens it. */
export function isHeldByGate(pod: Pick<Pod, "spec" | "status">): boolean {
  return isGated(pod) && gateCondition(pod)?.status !== "True";
}

export interface GateWrite {
  status: "True" | "False";
  /** CamelCase. */
  reason: string;
  message: string;
}

/**
 * Sets the pod's deep-check condition. `lastTransitionTime` moves only when the status
 * changes (the caller's view of the pod says whether it does). Returns the pod as stored.
 */
export async function writeGate(
  client: KubeClient,
  pod: Pick<Pod, "metadata" | "status">,
  write: GateWrite,
  now: Date,
  signal?: AbortSignal,
): Promise<Pod> {
  const previous = gateCondition(pod);
  const lastTransitionTime =
    previous?.status === write.status && previous.lastTransitionTime
      ? previous.lastTransitionTime
      : now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const condition: PodCondition = { type: DEEP_CHECK_GATE, ...write, lastTransitionTime };
  const stored = await client.applyObject(
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace ?? "" },
      status: { conditions: [condition] },
    },
    { fieldManager: GATE_FIELD_MANAGER, subresource: "status", force: true, ...(signal ? { signal } : {}) },
  );
  return stored as unknown as Pod;
}
