// Builders with modifiers for headroom snapshots:
//   snapshotOf(makeDeployment("web", withReplicas(4)), { headroom: { source: "Static", peakUtilizationPercent: 80 } })
import type {
  Deployment,
  HorizontalPodAutoscaler,
  IntOrString,
  Pod,
  PodDisruptionBudget,
  PodUsageSample,
  ReplicaSet,
} from "../../../src/api/k8s.ts";
import { healthPolicy, type HealthPolicySpecInput } from "../../../src/api/v1alpha1/index.ts";
import type { TargetSnapshot } from "../../../src/policy/seam.ts";
import {
  type IntOrPercent,
  parseIntOrPercent,
  type RolloutDisruption,
} from "../../../src/policy/headroom/math.ts";

export const NOW = new Date("2025-06-01T12:00:00Z");
const NAMESPACE = "shop";

/** A RollingUpdate disruption from int-or-percent values, as written in a Deployment. */
export const rolling = (maxSurge: IntOrPercent, maxUnavailable: IntOrPercent): RolloutDisruption => {
  const surge = parseIntOrPercent(maxSurge);
  const unavailable = parseIntOrPercent(maxUnavailable);
  if (!surge || !unavailable) throw new Error(`bad rolling update ${maxSurge}/${maxUnavailable}`);
  return { strategy: "RollingUpdate", maxSurge: surge, maxUnavailable: unavailable };
};

type Modifier<T> = (object: T) => T;
const apply = <T>(object: T, modifiers: Modifier<T>[]): T => modifiers.reduce((o, m) => m(o), object);

export function makeDeployment(name: string, ...modifiers: Modifier<Deployment>[]): Deployment {
  return apply<Deployment>(
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: NAMESPACE, generation: 1, labels: { app: name } },
      spec: {
        replicas: 4,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            containers: [
              {
                name: "web",
                ports: [{ name: "http", containerPort: 8080 }],
                resources: { requests: { cpu: "500m" } },
              },
            ],
          },
        },
        strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: "25%" } },
      },
      status: {
        observedGeneration: 1,
        replicas: 4,
        updatedReplicas: 4,
        readyReplicas: 4,
        availableReplicas: 4,
      },
    },
    modifiers,
  );
}

export const withReplicas =
  (replicas: number): Modifier<Deployment> =>
  (d) => ({ ...d, spec: { ...d.spec, replicas } });

export const withRollingUpdate =
  (maxSurge: IntOrString | undefined, maxUnavailable: IntOrString | undefined): Modifier<Deployment> =>
  (d) => ({
    ...d,
    spec: {
      ...d.spec,
      strategy: {
        type: "RollingUpdate",
        rollingUpdate: {
          ...(maxSurge !== undefined ? { maxSurge } : {}),
          ...(maxUnavailable !== undefined ? { maxUnavailable } : {}),
        },
      },
    },
  });

export const withRecreate: Modifier<Deployment> = (d) => ({
  ...d,
  spec: { ...d.spec, strategy: { type: "Recreate" } },
});

export const withoutStrategy: Modifier<Deployment> = (d) => {
  const { strategy: _strategy, ...spec } = d.spec;
  return { ...d, spec };
};

export const withCpuRequests =
  (...cpu: (string | undefined)[]): Modifier<Deployment> =>
  (d) => ({
    ...d,
    spec: {
      ...d.spec,
      template: {
        ...d.spec.template,
        spec: {
          ...d.spec.template.spec,
          containers: cpu.map((request, i) => ({
            name: i === 0 ? "web" : `sidecar-${i}`,
            ...(request !== undefined ? { resources: { requests: { cpu: request } } } : {}),
          })),
        },
      },
    },
  });

export function makeReplicaSet(
  name: string,
  revision: number | undefined,
  replicas: number,
  ...modifiers: Modifier<ReplicaSet>[]
): ReplicaSet {
  return apply<ReplicaSet>(
    {
      metadata: {
        name,
        namespace: NAMESPACE,
        ...(revision !== undefined
          ? { annotations: { "deployment.kubernetes.io/revision": String(revision) } }
          : {}),
      },
      spec: { replicas },
      status: { replicas },
    },
    modifiers,
  );
}

export const createdAt =
  (timestamp: string): Modifier<ReplicaSet> =>
  (rs) => ({ ...rs, metadata: { ...rs.metadata, creationTimestamp: timestamp } });

export const withStatusReplicas =
  (replicas: number): Modifier<ReplicaSet> =>
  (rs) => ({ ...rs, status: { ...rs.status, replicas } });

/** The ReplicaSets of a Deployment in the middle of a rollout: the old revision still has pods. */
export const rollingOut = (name = "web"): ReplicaSet[] => [
  makeReplicaSet(`${name}-new`, 2, 2),
  makeReplicaSet(`${name}-old`, 1, 3),
];

/** The ReplicaSets of a Deployment at rest: old revisions scaled to zero. */
export const atRest = (name = "web"): ReplicaSet[] => [
  makeReplicaSet(`${name}-new`, 2, 4),
  makeReplicaSet(`${name}-old`, 1, 0),
];

export function makePod(name: string, nodeName: string | undefined, ...modifiers: Modifier<Pod>[]): Pod {
  return apply<Pod>(
    {
      metadata: { name, namespace: NAMESPACE, labels: { app: "web" } },
      spec: {
        ...(nodeName !== undefined ? { nodeName } : {}),
        containers: [{ name: "web", resources: { requests: { cpu: "500m" } } }],
      },
      status: { phase: "Running" },
    },
    modifiers,
  );
}

export const terminating: Modifier<Pod> = (p) => ({
  ...p,
  metadata: { ...p.metadata, deletionTimestamp: "2025-06-01T11:59:00Z" },
});

export const withPodCpuRequest =
  (cpu: string | undefined): Modifier<Pod> =>
  (p) => ({
    ...p,
    spec: {
      ...p.spec,
      containers: [{ name: "web", ...(cpu !== undefined ? { resources: { requests: { cpu } } } : {}) }],
    },
  });

/** Pods spread over zones: podsInZones({ a: 3, b: 1 }) → 3 pods on node-a-*, 1 on node-b-*. */
export function podsInZones(counts: Record<string, number>): {
  pods: Pod[];
  nodeZones: Record<string, string>;
} {
  const pods: Pod[] = [];
  const nodeZones: Record<string, string> = {};
  for (const [zone, count] of Object.entries(counts)) {
    for (let i = 0; i < count; i++) {
      const node = `node-${zone}-${i}`;
      nodeZones[node] = zone;
      pods.push(makePod(`web-${zone}-${i}`, node));
    }
    nodeZones[`node-${zone}-spare`] = zone;
  }
  return { pods, nodeZones };
}

export function makeHpa(
  spec: Partial<HorizontalPodAutoscaler["spec"]> & { cpuTarget?: number },
): HorizontalPodAutoscaler {
  const { cpuTarget, ...rest } = spec;
  return {
    metadata: { name: "web", namespace: NAMESPACE },
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
      maxReplicas: 10,
      ...(cpuTarget !== undefined
        ? {
            metrics: [
              {
                type: "Resource",
                resource: { name: "cpu", target: { type: "Utilization", averageUtilization: cpuTarget } },
              },
            ],
          }
        : {}),
      ...rest,
    },
  };
}

export function makePdb(
  name: string,
  spec: Partial<PodDisruptionBudget["spec"]>,
  ...modifiers: Modifier<PodDisruptionBudget>[]
): PodDisruptionBudget {
  return apply<PodDisruptionBudget>(
    {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name, namespace: NAMESPACE },
      spec: { selector: { matchLabels: { app: "web" } }, ...spec },
    },
    modifiers,
  );
}

export const managedByHealthgate: Modifier<PodDisruptionBudget> = (pdb) => ({
  ...pdb,
  metadata: { ...pdb.metadata, labels: { "app.kubernetes.io/managed-by": "healthgate" } },
});

export const withPdbStatus =
  (status: NonNullable<PodDisruptionBudget["status"]>): Modifier<PodDisruptionBudget> =>
  (pdb) => ({ ...pdb, status });

/** A metrics.k8s.io sample, `minutesAgo` before NOW. */
export const sample = (pod: string, cpu: string | undefined, minutesAgo = 1): PodUsageSample => ({
  pod,
  timestamp: new Date(NOW.getTime() - minutesAgo * 60_000).toISOString(),
  containers: [{ name: "web", ...(cpu !== undefined ? { cpu } : {}) }],
});

export interface SnapshotParts {
  headroom?: NonNullable<HealthPolicySpecInput["headroom"]>;
  replicaSets?: ReplicaSet[];
  pods?: Pod[];
  hpa?: HorizontalPodAutoscaler;
  pdbs?: PodDisruptionBudget[];
  nodeZones?: Record<string, string>;
  usage?: TargetSnapshot["usage"];
}

/** A snapshot around a Deployment; the policy is parsed with the real schema, so its defaults apply. */
export function snapshotOf(deployment: Deployment, parts: SnapshotParts = {}): TargetSnapshot {
  const policy = healthPolicy.parse({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "web", namespace: NAMESPACE, creationTimestamp: "2025-01-01T00:00:00Z" },
    spec: {
      selector: { matchLabels: { app: deployment.metadata.name } },
      endpoints: {},
      ...(parts.headroom ? { headroom: parts.headroom } : {}),
    },
  });
  return {
    policy,
    deployment,
    replicaSets: parts.replicaSets ?? atRest(deployment.metadata.name),
    pods: parts.pods ?? [],
    ...(parts.hpa ? { hpa: parts.hpa } : {}),
    pdbs: parts.pdbs ?? [],
    nodeZones: parts.nodeZones ?? {},
    ...(parts.usage !== undefined ? { usage: parts.usage } : {}),
    now: NOW,
  };
}

/** Freezes an object graph, so a test proves the code under test does not mutate its input. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
