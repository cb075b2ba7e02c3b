// The operator's view of the cluster: one informer per kind, each caching
// only what healthgate reads (memory is the reason: client-node alone costs
// ~128 MiB, a naive pod cache of 10,000 pods ~350 MiB).
import type {
  Deployment,
  HorizontalPodAutoscaler,
  Pod,
  PodDisruptionBudget,
  ReplicaSet,
} from "../api/k8s.ts";
import type { KubeObject } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import { resources } from "../kube/client.ts";
import {
  controllerUidIndexer,
  Informer,
  type InformerOptions,
  type ListWatchClient,
} from "../kube/informer.ts";
import { DEEP_CHECK_GATE, type HealthReleaseStatus, type HealthTargetStatus } from "../api/v1alpha1/index.ts";
import { slimService, type CachedService } from "./panicServices.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import { intern } from "../kube/intern.ts";

export const ZONE_LABEL = "topology.kubernetes.io/zone";
const POD_TEMPLATE_HASH = "pod-template-hash";
/** The pod conditions rollout gating and the correlated-failure guard read. */
const POD_CONDITIONS = new Set(["PodScheduled", "ContainersReady", "Ready", DEEP_CHECK_GATE]);

/** The field manager of healthgate's applies (records, PDBs), and of its status writes. */
export const FIELD_MANAGER = "healthgate";
export const STATUS_FIELD_MANAGER = "healthgate-status";
/** The field manager of the release write: the Deployment's healthgate.io/released label, nothing else. */
export const RELEASE_FIELD_MANAGER = "healthgate-release";

/**
 * A cached Deployment. managedFields are not kept (they can outweigh the spec); only where
 * v0.1's forced apply left its `healthgate` entry on spec (the upgrade removes it).
 */
export type CachedDeployment = Deployment & { readonly v01ManagedFieldsIndex?: number };

/** A cached HealthTarget record. */
export type CachedTarget = KubeObject & {
  spec?: { deployment: string; policy: string };
  status?: HealthTargetStatus;
};

/** A cached HealthRelease: the namespace's released decisions, as admission reads them. */
export type CachedReleaseIndex = KubeObject & { status?: HealthReleaseStatus };

/** Index of v0.1's Enforce entry: manager healthgate, Apply, no subresource, owning something under spec. */
function v01EntryIndex(obj: Raw): number | undefined {
  const index = (obj.metadata.managedFields ?? []).findIndex(
    (m) =>
      m.manager === FIELD_MANAGER &&
      m.operation === "Apply" &&
      !m.subresource &&
      typeof m.fieldsV1 === "object" &&
      m.fieldsV1 !== null &&
      "f:spec" in m.fieldsV1,
  );
  return index >= 0 ? index : undefined;
}

type Raw = KubeObject & Record<string, unknown>;

const meta = (
  obj: Raw,
  extra: Partial<Record<"labels" | "annotations" | "ownerReferences", boolean>> = {},
) => {
  const m = obj.metadata;
  return {
    name: m.name,
    ...(m.namespace !== undefined ? { namespace: intern(m.namespace) } : {}),
    ...(m.uid !== undefined ? { uid: m.uid } : {}),
    ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
    ...(m.generation !== undefined ? { generation: m.generation } : {}),
    ...(m.creationTimestamp !== undefined ? { creationTimestamp: m.creationTimestamp } : {}),
    ...(m.deletionTimestamp !== undefined ? { deletionTimestamp: m.deletionTimestamp } : {}),
    ...(extra.labels && m.labels ? { labels: m.labels } : {}),
    ...(extra.annotations && m.annotations ? { annotations: m.annotations } : {}),
    ...(extra.ownerReferences && m.ownerReferences
      ? {
          // Shared by every pod of a ReplicaSet (every ReplicaSet of a Deployment): one copy each.
          ownerReferences: m.ownerReferences
            .filter((r) => r.controller)
            .map((r) => ({
              ...r,
              apiVersion: intern(r.apiVersion),
              kind: intern(r.kind),
              name: intern(r.name),
              uid: intern(r.uid),
            })),
        }
      : {}),
  };
};

/** Transforms: what each kind keeps in the cache. */
export const slim = {
  deployment: (obj: Raw): CachedDeployment => {
    const d = obj as unknown as Deployment;
    const v01 = v01EntryIndex(obj);
    return {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta(obj, { labels: true }),
      spec: d.spec,
      status: d.status ?? {},
      ...(v01 !== undefined ? { v01ManagedFieldsIndex: v01 } : {}),
    };
  },
  replicaSet: (obj: Raw): ReplicaSet => {
    const rs = obj as unknown as ReplicaSet;
    return {
      metadata: meta(obj, { labels: true, ownerReferences: true, annotations: true }),
      spec: { ...(rs.spec.replicas !== undefined ? { replicas: rs.spec.replicas } : {}) },
      status: rs.status ?? {},
    };
  },
  /**
   * What the concerns read of a pod: its node (zones), phase and deletion (which pods count),
   * its containers' CPU requests (Metrics-source headroom) and its controlling ReplicaSet; for
   * rollout gating its revision, readiness gates and conditions, what keeps its containers
   * waiting (crash loop, image pull), and where to deep-check it (IP, ports, hostNetwork); for
   * the correlated-failure guard when its readiness last changed and when it started.
   */
  pod: (obj: Raw): Pod => {
    const pod = obj as unknown as Pod;
    const hash = obj.metadata.labels?.[POD_TEMPLATE_HASH];
    const status = pod.status ?? {};
    const conditions = (status.conditions ?? [])
      .filter((c) => POD_CONDITIONS.has(c.type))
      .map((c) =>
        c.type === DEEP_CHECK_GATE
          ? c
          : {
              type: intern(c.type),
              status: intern(c.status),
              ...(c.reason ? { reason: intern(c.reason) } : {}),
              // When readiness last changed: the correlated-failure guard's "went unready together".
              ...(c.type !== "PodScheduled" && c.lastTransitionTime
                ? { lastTransitionTime: c.lastTransitionTime }
                : {}),
              ...(c.type === "PodScheduled" && c.message ? { message: c.message } : {}),
            },
      );
    const waiting = (status.containerStatuses ?? []).map((c) => ({
      name: intern(c.name),
      ready: c.ready,
      restartCount: c.restartCount,
      ...(c.state?.waiting?.reason ? { state: { waiting: { reason: intern(c.state.waiting.reason) } } } : {}),
    }));
    return {
      metadata: {
        ...meta(obj, { ownerReferences: true }),
        ...(hash !== undefined ? { labels: { [POD_TEMPLATE_HASH]: intern(hash) } } : {}),
      },
      spec: {
        ...(pod.spec.nodeName ? { nodeName: intern(pod.spec.nodeName) } : {}),
        ...(pod.spec.hostNetwork ? { hostNetwork: true } : {}),
        ...(pod.spec.readinessGates?.length ? { readinessGates: pod.spec.readinessGates } : {}),
        containers: pod.spec.containers.map((c) => {
          const cpu = c.resources?.requests?.cpu;
          return {
            name: intern(c.name),
            ...(cpu !== undefined ? { resources: { requests: { cpu: intern(cpu) } } } : {}),
            ...(c.ports?.length
              ? {
                  ports: c.ports.map((p) => ({
                    ...(p.name ? { name: intern(p.name) } : {}),
                    containerPort: p.containerPort,
                  })),
                }
              : {}),
          };
        }),
      },
      status: {
        ...(status.phase ? { phase: intern(status.phase) } : {}),
        ...(status.podIP ? { podIP: status.podIP } : {}),
        // The guard tells a pod never Ready from one that was by its start time.
        ...(status.startTime ? { startTime: status.startTime } : {}),
        ...(conditions.length > 0 ? { conditions } : {}),
        ...(waiting.length > 0 ? { containerStatuses: waiting } : {}),
      },
    };
  },
  node: (obj: Raw) => {
    const zone = obj.metadata.labels?.[ZONE_LABEL];
    return { metadata: { ...meta(obj), ...(zone ? { labels: { [ZONE_LABEL]: zone } } : {}) } };
  },
  whole: <T>(obj: Raw) => obj as unknown as T,
};

export interface WorldOptions {
  client: ListWatchClient;
  metrics: HealthgateMetrics;
  logger: Logger;
  /** Watch one namespace; omit for all. */
  namespace?: string | undefined;
  watchdogMs?: number;
  /** Periodic relist-and-diff of every informer (`--resync-seconds`); 0 or omitted: off. */
  resyncMs?: number;
  /** Which pods to cache (those a governed Deployment needs); omitted: all. */
  keepPod?: (pod: Pod) => boolean;
  clock?: Clock;
}

/** The informers, with indexers the reconciler needs. */
export function createWorld({
  client,
  metrics,
  logger,
  namespace,
  watchdogMs,
  resyncMs,
  clock,
  keepPod,
}: WorldOptions) {
  const common = <T extends KubeObject>(
    resource: InformerOptions<T>["resource"],
    transform: (obj: Raw) => T,
    extra: Partial<InformerOptions<T>> = {},
  ) =>
    new Informer<T>({
      client,
      resource,
      namespace: resource.namespaced ? namespace : undefined,
      transform: transform as InformerOptions<T>["transform"],
      metrics,
      logger: logger.child({ informer: resource.plural }),
      // Pages of 100: a page of 500 pods (~5.5 MB as served, managedFields included) parsed at
      // once set the process's peak memory at start-up.
      pageSize: 100,
      ...(watchdogMs !== undefined ? { watchdogMs } : {}),
      ...(resyncMs !== undefined ? { resyncMs } : {}),
      ...(clock !== undefined ? { clock } : {}),
      ...extra,
    });

  const world = {
    policies: common<KubeObject>(resources.healthPolicies, slim.whole),
    deployments: common<CachedDeployment>(resources.deployments, slim.deployment),
    replicaSets: common<ReplicaSet>(resources.replicaSets, slim.replicaSet, {
      indexers: { owner: controllerUidIndexer("Deployment") },
    }),
    pods: common<Pod>(resources.pods, slim.pod, {
      indexers: { owner: controllerUidIndexer("ReplicaSet") },
      ...(keepPod ? { keep: keepPod } : {}),
    }),
    hpas: common<HorizontalPodAutoscaler>(resources.horizontalPodAutoscalers, slim.whole, {
      indexers: {
        target: (hpa) =>
          hpa.spec.scaleTargetRef.kind === "Deployment"
            ? [`${hpa.metadata.namespace ?? ""}/${hpa.spec.scaleTargetRef.name}`]
            : [],
      },
    }),
    pdbs: common<PodDisruptionBudget>(resources.podDisruptionBudgets, slim.whole),
    services: common<CachedService>(resources.services, slimService),
    nodes: common<KubeObject>(resources.nodes, slim.node),
    targets: common<CachedTarget>(resources.healthTargets, (obj) => ({
      ...(obj as unknown as CachedTarget),
      // annotations: a human's healthgate.io/rollout-command
      metadata: meta(obj, { ownerReferences: true, annotations: true }),
    })),
    releaseIndexes: common<CachedReleaseIndex>(resources.healthReleases, (obj) => ({
      ...(obj as unknown as CachedReleaseIndex),
      metadata: meta(obj),
    })),
  };
  const all = Object.values(world) as Informer<KubeObject>[];
  let zones: { version: number; byNode: Readonly<Record<string, string>> } | undefined;
  return {
    ...world,
    /**
     * Node name → zone (topology.kubernetes.io/zone), for nodes that carry the label. Computed
     * once per version of the node cache, not once per reconcile; frozen, shared.
     */
    nodeZones: (): Readonly<Record<string, string>> => {
      if (zones?.version !== world.nodes.version) {
        const byNode: Record<string, string> = {};
        for (const node of world.nodes.list()) {
          const zone = node.metadata.labels?.[ZONE_LABEL];
          if (zone) byNode[node.metadata.name] = zone;
        }
        zones = { version: world.nodes.version, byNode: Object.freeze(byNode) };
      }
      return zones.byNode;
    },
    start: () => all.forEach((i) => i.start()),
    stop: () => Promise.all(all.map((i) => i.stop())),
    hasSynced: () => all.every((i) => i.hasSynced()),
    waitForSync: (signal?: AbortSignal) => Promise.all(all.map((i) => i.waitForSync(signal))),
  };
}

export type World = ReturnType<typeof createWorld>;
