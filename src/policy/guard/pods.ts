// What the guard reads of each pod: whether it counts (serving), whether it is
// unready and since when, its zone and revision, and its recent readiness
// changes. Pure: the caller passes what it knows (whether the pod is held by its
// deep-check gate, the readiness history it kept) and the time.
import type { Pod } from "../../api/k8s.ts";

/**
 * Ready: serving. Unready: was Ready and is not (a failure). HeldByGate: unready only because
 * its healthgate.io/deep-check gate is not open (a rollout's new pod, not a failure).
 * NeverReady: has not been Ready yet (starting). Inactive: not running or being deleted.
 */
export type PodState = "Ready" | "Unready" | "HeldByGate" | "NeverReady" | "Inactive";

/** A pod's readiness changes the controller saw, oldest first (epoch ms), bounded. */
export interface ReadinessHistory {
  readonly transitions: readonly number[];
  /** Whether the pod was seen Ready at some point. */
  readonly seenReady: boolean;
}

export interface PodView {
  readonly name: string;
  readonly uid: string;
  readonly state: PodState;
  /** When it went unready (epoch ms): for Unready pods. */
  readonly unreadySince?: number;
  readonly zone?: string;
  /** pod-template-hash: the revision the pod belongs to. */
  readonly revision?: string;
  /** Readiness changes (epoch ms), oldest first. */
  readonly transitions: readonly number[];
}

export const REVISION_LABEL = "pod-template-hash";

/**
 * A Ready condition that went False at least this long after the pod started has been True in
 * between (the kubelet writes Ready=False when it starts the pod and flips it only on changes):
 * how a pod's past readiness is known without history (after healthgate restarts).
 */
const READY_BEFORE_MARGIN_MS = 2_000;

const condition = (pod: Pod, type: string) => pod.status?.conditions?.find((c) => c.type === type);
const time = (iso: string | undefined) => (iso ? Date.parse(iso) : Number.NaN);

/**
 * The pod as the guard sees it. `heldByGate` is the caller's isHeldByGate(pod) (src/kube/podGate.ts):
 * a pod counts as held only when its containers are ready too — its readiness probe passes
 * and the gate alone keeps it out.
 */
export function podView(
  pod: Pod,
  input: { heldByGate: boolean; history?: ReadinessHistory | undefined; zone?: string | undefined },
): PodView {
  const transitions = input.history?.transitions ?? [];
  const base = {
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? pod.metadata.name,
    transitions,
    ...(input.zone !== undefined ? { zone: input.zone } : {}),
    ...(pod.metadata.labels?.[REVISION_LABEL] !== undefined
      ? { revision: pod.metadata.labels[REVISION_LABEL] }
      : {}),
  };
  if (pod.metadata.deletionTimestamp || pod.status?.phase !== "Running")
    return { ...base, state: "Inactive" };
  const ready = condition(pod, "Ready");
  if (ready?.status === "True") return { ...base, state: "Ready" };
  if (input.heldByGate && condition(pod, "ContainersReady")?.status === "True") {
    return { ...base, state: "HeldByGate" };
  }
  const since = time(ready?.lastTransitionTime);
  const wasReady =
    (input.history?.seenReady ?? false) ||
    (Number.isFinite(since) && since - time(pod.status.startTime) >= READY_BEFORE_MARGIN_MS);
  if (!wasReady) return { ...base, state: "NeverReady" };
  const lastChange = transitions[transitions.length - 1];
  const unreadySince = Number.isFinite(since) ? since : lastChange;
  return { ...base, state: "Unready", ...(unreadySince !== undefined ? { unreadySince } : {}) };
}

export interface HistoryLimits {
  /** Changes older than this (ms before the newest) are dropped. */
  horizonMs: number;
  /** At most this many changes are kept per pod. */
  maxTransitions: number;
}

/** The pod's history after a readiness observation at `at`; unchanged when readiness did not change. */
export function recordReadiness(
  history: (ReadinessHistory & { ready?: boolean }) | undefined,
  ready: boolean,
  at: number,
  limits: HistoryLimits,
): ReadinessHistory & { ready: boolean } {
  if (history?.ready === ready) return { ...history, ready };
  const changed = history?.ready !== undefined;
  const transitions = changed ? [...history.transitions, at] : [...(history?.transitions ?? [])];
  const kept = transitions.filter((t) => t > at - limits.horizonMs).slice(-limits.maxTransitions);
  return { transitions: kept, seenReady: (history?.seenReady ?? false) || ready, ready };
}
