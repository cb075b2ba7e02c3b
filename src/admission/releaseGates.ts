// A gate is never stranded (issue 20): when gating stops for a pod — its policy deleted or
// without spec.rollout, its Deployment no longer selected, healthgate uninstalled — every
// `healthgate.io/deep-check` that is False or missing on a still-gated pod is set True, so no
// pod stays unready because healthgate left. Used by `healthgate release-gates` (uninstall,
// also from the chart's pre-delete hook) and by the leader's sweep (gating stopped).
// Releasing the gates of an aborted revision would roll it out: those are only released
// when the caller allows it explicitly, and are reported otherwise.
import type { Pod } from "../api/k8s.ts";
import { type KubeClient, type KubeObject, isNotFound, resources, apiErrorMessage } from "../kube/client.ts";
import { eventFor } from "../kube/events.ts";
import { isHeldByGate, writeGate } from "../kube/podGate.ts";
import { deploymentOfReplicaSet, POD_TEMPLATE_HASH } from "../policy/gate.ts";

/** The rollout phase recorded in `status.rollout.phase` for an aborted revision. */
export const ABORTED_PHASE = "Aborted";

export interface HeldPod {
  pod: Pod;
  namespace: string;
  /** The Deployment, from the pod's ReplicaSet name and pod-template-hash; undefined for other owners. */
  deployment: string | undefined;
  revision: string | undefined;
}

/** Pods whose deep-check gate is not True, with their Deployment resolved. */
export function heldPods(pods: readonly Pod[]): HeldPod[] {
  return pods.filter(isHeldByGate).map((pod) => {
    const revision = pod.metadata.labels?.[POD_TEMPLATE_HASH];
    const rs = pod.metadata.ownerReferences?.find((r) => r.controller && r.kind === "ReplicaSet")?.name;
    return {
      pod,
      namespace: pod.metadata.namespace ?? "",
      deployment: rs && revision ? deploymentOfReplicaSet(rs, revision) : undefined,
      revision,
    };
  });
}

/** What the record says of a Deployment's rollout (h-rollout's `status.rollout`). */
export interface RolloutRecord {
  phase?: string;
  stableRevision?: string;
}

/** Whether releasing this pod's gate would promote an aborted revision. */
export function isAbortedRevision(held: HeldPod, rollout: RolloutRecord | undefined): boolean {
  return (
    rollout?.phase === ABORTED_PHASE &&
    held.revision !== undefined &&
    held.revision !== rollout.stableRevision
  );
}

export interface ReleaseOptions {
  client: KubeClient;
  /** Namespaces to sweep; empty: all. */
  namespaces: readonly string[];
  /** Release gates of aborted revisions too (they then roll out). */
  allowAborted: boolean;
  /** Only pods for which this says gating stopped; omitted: every held pod (uninstall). */
  gatingStopped?: (held: HeldPod) => boolean;
  /** Why: the condition's reason and the Event's (CamelCase), e.g. Uninstalled, GatingStopped. */
  reason: string;
  identity: string;
  now: () => Date;
  dryRun?: boolean;
  signal?: AbortSignal;
  /** The pods to look at (listRevisionPods); omitted: listed here. */
  pods?: readonly Pod[];
  /** The record's rollout state; omitted: read from the API (get healthtargets). */
  rolloutOf?: (namespace: string, deployment: string) => RolloutRecord | undefined;
}

export interface ReleaseReport {
  released: string[];
  /** `namespace/deployment` of aborted revisions whose gates were kept. */
  abortedKept: string[];
  failed: string[];
}

/** Lists the pods, sets every stranded gate True, and records an Event per Deployment. */
export async function releaseGates(o: ReleaseOptions): Promise<ReleaseReport> {
  const pods = o.pods ?? (await listRevisionPods(o.client, o.namespaces, o.signal));
  const report: ReleaseReport = { released: [], abortedKept: [], failed: [] };
  const rollouts = new Map<string, RolloutRecord | undefined>();
  const releasedBy = new Map<string, string[]>();
  for (const held of heldPods(pods)) {
    if (held.pod.metadata.deletionTimestamp) continue;
    if (o.gatingStopped && !o.gatingStopped(held)) continue;
    const key = `${held.namespace}/${held.deployment ?? ""}`;
    if (held.deployment && !rollouts.has(key)) {
      rollouts.set(
        key,
        o.rolloutOf
          ? o.rolloutOf(held.namespace, held.deployment)
          : await readRollout(o.client, held.namespace, held.deployment, o.signal),
      );
    }
    if (!o.allowAborted && isAbortedRevision(held, rollouts.get(key))) {
      if (!report.abortedKept.includes(key)) report.abortedKept.push(key);
      continue;
    }
    const name = `${held.namespace}/${held.pod.metadata.name}`;
    if (o.dryRun) {
      report.released.push(name);
      continue;
    }
    try {
      await writeGate(
        o.client,
        held.pod,
        {
          status: "True",
          reason: o.reason,
          message: "healthgate no longer gates this pod; its gate was released so it can become Ready",
        },
        o.now(),
        o.signal,
      );
      report.released.push(name);
      releasedBy.set(key, [...(releasedBy.get(key) ?? []), held.pod.metadata.name]);
    } catch (err) {
      // A pod deleted meanwhile needs nothing.
      if (!isNotFound(err)) report.failed.push(`${name}: ${apiErrorMessage(err)}`);
    }
  }
  for (const [key, names] of releasedBy) {
    const [namespace = "", deployment = ""] = key.split("/");
    const regarding: KubeObject = deployment
      ? { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: deployment, namespace } }
      : { apiVersion: "v1", kind: "Pod", metadata: { name: names[0]!, namespace } };
    const note = `Released the healthgate.io/deep-check gate of ${names.length} pod(s) (${o.reason}): ${names.join(", ")}`;
    try {
      await o.client.create(
        eventFor(regarding, "Normal", "GatesReleased", note, {
          identity: o.identity,
          now: o.now(),
          random: Math.random(),
        }),
        o.signal,
      );
    } catch (err) {
      report.failed.push(`Event for ${key}: ${apiErrorMessage(err)}`);
    }
  }
  return report;
}

/** Every pod of a Deployment's revision (those carrying pod-template-hash) in the namespaces (empty: all). */
export async function listRevisionPods(
  client: KubeClient,
  namespaces: readonly string[],
  signal?: AbortSignal,
): Promise<Pod[]> {
  const pods: Pod[] = [];
  for (const namespace of namespaces.length > 0 ? namespaces : [undefined]) {
    let next: string | undefined;
    do {
      const page = await client.list(
        resources.pods,
        namespace,
        { labelSelector: POD_TEMPLATE_HASH, limit: 500, continue: next },
        signal,
      );
      pods.push(...(page.items as unknown as Pod[]));
      next = page.metadata.continue || undefined;
    } while (next);
  }
  return pods;
}

async function readRollout(
  client: KubeClient,
  namespace: string,
  name: string,
  signal?: AbortSignal,
): Promise<RolloutRecord | undefined> {
  try {
    const record = await client.get<KubeObject & { status?: { rollout?: RolloutRecord } }>(
      resources.healthTargets,
      { namespace, name },
      signal,
    );
    return record.status?.rollout;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
