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
import type { KubeObject, KubeClient } from "../kube/client.ts";
import { resources } from "../kube/client.ts";
import type { HealthTargetStatus } from "../api/v1alpha1/index.ts";
import { controllerUidIndexer, Informer, type InformerOptions } from "../kube/informer.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";

export const ZONE_LABEL = "topology.kubernetes.io/zone";

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
    ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
    ...(m.uid !== undefined ? { uid: m.uid } : {}),
    ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
    ...(m.generation !== undefined ? { generation: m.generation } : {}),
    ...(m.creationTimestamp !== undefined ? { creationTimestamp: m.creationTimestamp } : {}),
    ...(m.deletionTimestamp !== undefined ? { deletionTimestamp: m.deletionTimestamp } : {}),
    ...(extra.labels && m.labels ? { labels: m.labels } : {}),
    ...(extra.annotations && m.annotations ? { annotations: m.annotations } : {}),
    ...(extra.ownerReferences && m.ownerReferences
      ? { ownerReferences: m.ownerReferences.filter((r) => r.controller) }
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
  pod: (obj: Raw): Pod => {
    const pod = obj as unknown as Pod;
    const status = pod.status ?? {};
    return {
      metadata: meta(obj, { labels: true, ownerReferences: true }),
      spec: {
        ...(pod.spec.nodeName ? { nodeName: pod.spec.nodeName } : {}),
        ...(pod.spec.readinessGates ? { readinessGates: pod.spec.readinessGates } : {}),
        containers: pod.spec.containers.map((c) => ({
          name: c.name,
          ...(c.resources?.requests ? { resources: { requests: c.resources.requests } } : {}),
        })),
      },
      status: {
        ...(status.phase ? { phase: status.phase } : {}),
        ...(status.podIP ? { podIP: status.podIP } : {}),
        conditions: (status.conditions ?? []).map(({ type, status: s }) => ({ type, status: s })),
        containerStatuses: (status.containerStatuses ?? []).map(({ name, ready, restartCount }) => ({
          name,
          ready,
          restartCount,
        })),
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
  client: KubeClient;
  metrics: HealthgateMetrics;
  logger: Logger;
  /** Watch one namespace; omit for all. */
  namespace?: string | undefined;
  watchdogMs?: number;
}

/** The informers, with indexers the reconciler needs. */
export function createWorld({ client, metrics, logger, namespace, watchdogMs }: WorldOptions) {
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
      ...(watchdogMs !== undefined ? { watchdogMs } : {}),
      ...extra,
    });

  const world = {
    policies: common<KubeObject>(resources.healthPolicies, slim.whole),
    deployments: common<CachedDeployment>(resources.deployments, slim.deployment),
    replicaSets: common<ReplicaSet>(resources.replicaSets, slim.replicaSet, {
      indexers: { owner: controllerUidIndexer("Deployment") },
    }),
    pods: common<Pod>(resources.pods, slim.pod, { indexers: { owner: controllerUidIndexer("ReplicaSet") } }),
    hpas: common<HorizontalPodAutoscaler>(resources.horizontalPodAutoscalers, slim.whole, {
      indexers: {
        target: (hpa) =>
          hpa.spec.scaleTargetRef.kind === "Deployment"
            ? [`${hpa.metadata.namespace ?? ""}/${hpa.spec.scaleTargetRef.name}`]
            : [],
      },
    }),
    pdbs: common<PodDisruptionBudget>(resources.podDisruptionBudgets, slim.whole),
    nodes: common<KubeObject>(resources.nodes, slim.node),
    targets: common<CachedTarget>(resources.healthTargets, (obj) => ({
      ...(obj as unknown as CachedTarget),
      metadata: meta(obj, { ownerReferences: true }),
    })),
  };
  const all = Object.values(world) as Informer<KubeObject>[];
  return {
    ...world,
    start: () => all.forEach((i) => i.start()),
    stop: () => Promise.all(all.map((i) => i.stop())),
    hasSynced: () => all.every((i) => i.hasSynced()),
    waitForSync: (signal?: AbortSignal) => Promise.all(all.map((i) => i.waitForSync(signal))),
  };
}

export type World = ReturnType<typeof createWorld>;
