// Fail-open made visible (issue 20): pods of a gated revision that were created without the
// healthgate.io/deep-check gate — no healthgate replica answered admission, so the API server
// let them in ungated — are found by the leader and reported in the Deployment's record
// (`status.gating`, field manager healthgate-gate) and in a Warning Event naming the pods.
import type { Deployment, Pod } from "../api/k8s.ts";
import type { GatingState } from "../api/v1alpha1/index.ts";
import { gateWorldOf } from "../admission/gateWebhook.ts";
import { type KubeClient, apiErrorMessage } from "../kube/client.ts";
import { eventFor } from "../kube/events.ts";
import { GATE_FIELD_MANAGER, isGated } from "../kube/podGate.ts";
import { sameJson } from "../policy/decide.ts";
import { decideGate } from "../policy/gate.ts";
import type { Logger } from "../observability/logger.ts";
import type { World } from "./world.ts";

const MAX_LISTED = 100;

/** `namespace/deployment` → the revision and names of its pods that should carry the gate and do not. */
export function ungatedPods(
  pods: readonly Pod[],
  world: World,
  ownNamespace: string,
): Map<string, { deployment: Deployment; revision: string; pods: string[] }> {
  const found = new Map<string, { deployment: Deployment; revision: string; pods: string[] }>();
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp || isGated(pod)) continue;
    const namespace = pod.metadata.namespace ?? "";
    const gates = gateWorldOf(world, ownNamespace, namespace);
    const decision = decideGate(
      {
        namespace,
        labels: pod.metadata.labels,
        ownerReferences: pod.metadata.ownerReferences,
        hostNetwork: pod.spec.hostNetwork,
        readinessGates: pod.spec.readinessGates,
      },
      gates,
    );
    if (!decision.gate || !decision.deployment || !decision.revision) continue;
    const key = `${namespace}/${decision.deployment}`;
    const entry = found.get(key) ?? {
      deployment: world.deployments.get(key)!,
      revision: decision.revision,
      pods: [],
    };
    entry.pods.push(pod.metadata.name);
    found.set(key, entry);
  }
  return found;
}

export interface FailOpenReportOptions {
  client: KubeClient;
  world: World;
  logger: Logger;
  identity: string;
  ownNamespace: string;
  now: Date;
  signal?: AbortSignal;
}

/** Writes `status.gating` where it changed, with an Event naming newly found ungated pods. */
export async function reportFailOpen(pods: readonly Pod[], o: FailOpenReportOptions): Promise<void> {
  const found = ungatedPods(pods, o.world, o.ownNamespace);
  const keys = new Set([
    ...found.keys(),
    // Records that still report ungated pods: cleared once there are none.
    ...o.world.targets
      .list()
      .filter((t) => (t.status?.gating?.ungatedCount ?? 0) > 0)
      .map((t) => `${t.metadata.namespace ?? ""}/${t.metadata.name}`),
  ]);
  for (const key of keys) {
    const [namespace = "", name = ""] = key.split("/");
    const record = o.world.targets.get(key);
    if (!record) continue;
    const entry = found.get(key);
    const previous = record.status?.gating ?? {};
    const names = (entry?.pods ?? []).sort();
    const wanted: GatingState = entry
      ? { revision: entry.revision, ungatedPods: names.slice(0, MAX_LISTED), ungatedCount: names.length }
      : {};
    const { observedAt: _, ...before } = previous;
    if (sameJson(before, wanted)) continue;
    try {
      await o.client.applyObject(
        {
          apiVersion: "healthgate.io/v1alpha1",
          kind: "HealthTarget",
          metadata: { name, namespace },
          // Clearing: the manager sends no gating at all, so server-side apply removes the field it
          // owned (an empty object is refused: the API server sees null).
          status: entry
            ? { gating: { ...wanted, observedAt: o.now.toISOString().replace(/\.\d{3}Z$/, "Z") } }
            : {},
        },
        {
          fieldManager: GATE_FIELD_MANAGER,
          subresource: "status",
          force: true,
          ...(o.signal ? { signal: o.signal } : {}),
        },
      );
      const fresh = names.filter((n) => !(previous.ungatedPods ?? []).includes(n));
      if (entry && fresh.length > 0) {
        const note =
          `Rollout of revision ${entry.revision} ran partly ungated: ${fresh.length} pod(s) were created without the ` +
          `healthgate.io/deep-check readiness gate while no healthgate replica answered admission (fail-open): ` +
          fresh.join(", ");
        await o.client.create(
          eventFor(entry.deployment, "Warning", "UngatedPods", note, {
            identity: o.identity,
            now: o.now,
            random: Math.random(),
          }),
          o.signal,
        );
        o.logger.warn({ namespace, name, kind: "Deployment", reason: "UngatedPods", pods: fresh }, note);
      }
    } catch (err) {
      o.logger.warn({ namespace, name, err: apiErrorMessage(err) }, "reporting ungated pods failed");
    }
  }
}
