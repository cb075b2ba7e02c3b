// Object builders with modifiers, so each test states only what matters to it:
//
//   makeDeployment("web",
//     withReplicas(4),
//     withProbe("web", "liveness", { httpGet: { path: "/healthz", port: "http" } }),
//     withRollingUpdate({ maxSurge: 1, maxUnavailable: 0 }),
//     withReadinessGate("healthgate.io/deep-check"))
//
// Defaults: labels and selector `app: <name>`, one container named after the
// object with a port named "http" (8080). Builders return plain objects with
// apiVersion and kind, fit for typed clients and KubernetesObjectApi alike.
import type {
  KubernetesObject,
  V1Container,
  V1Deployment,
  V1Pod,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1PodTemplateSpec,
  V1Probe,
  V1Service,
  V2HorizontalPodAutoscaler,
} from "@kubernetes/client-node";

export type Modifier<T> = (object: T) => void;

/** Objects that carry a pod spec: a Pod itself or a workload with a pod template. */
export type PodCarrier = V1Pod | V1Deployment;

export const DEFAULT_IMAGE = "registry.invalid/healthgate/test-app:1";

function build<T>(object: T, modifiers: readonly Modifier<T>[]): T {
  for (const modify of modifiers) modify(object);
  return object;
}

function podSpecOf(object: PodCarrier): V1PodSpec {
  if (object.kind === "Pod") return ((object as V1Pod).spec ??= { containers: [] });
  const template: V1PodTemplateSpec = ((object as V1Deployment).spec!.template ??= {});
  return (template.spec ??= { containers: [] });
}

function podMetadataOf(object: PodCarrier) {
  if (object.kind === "Pod") return (object.metadata ??= {});
  return ((object as V1Deployment).spec!.template.metadata ??= {});
}

function containerOf(object: PodCarrier, name: string): V1Container {
  const container = podSpecOf(object).containers.find((c) => c.name === name);
  if (!container) {
    const names = podSpecOf(object).containers.map((c) => c.name);
    throw new Error(
      `${object.kind} ${object.metadata?.name} has no container "${name}" (has: ${names.join(", ")})`,
    );
  }
  return container;
}

// ---- containers ---------------------------------------------------------

export function makeContainer(name: string, ...modifiers: Modifier<V1Container>[]): V1Container {
  return build<V1Container>(
    { name, image: DEFAULT_IMAGE, ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }] },
    modifiers,
  );
}

export const withContainerImage =
  (image: string): Modifier<V1Container> =>
  (container) => {
    container.image = image;
  };

export const withContainerPort =
  (name: string, containerPort: number): Modifier<V1Container> =>
  (container) => {
    container.ports = [
      ...(container.ports ?? []).filter((p) => p.name !== name),
      { name, containerPort, protocol: "TCP" },
    ];
  };

// ---- any object ---------------------------------------------------------

export const inNamespace =
  (namespace: string): Modifier<KubernetesObject> =>
  (object) => {
    (object.metadata ??= {}).namespace = namespace;
  };

export const withLabels =
  (labels: Record<string, string>): Modifier<KubernetesObject> =>
  (object) => {
    const metadata = (object.metadata ??= {});
    metadata.labels = { ...metadata.labels, ...labels };
  };

export const withAnnotations =
  (annotations: Record<string, string>): Modifier<KubernetesObject> =>
  (object) => {
    const metadata = (object.metadata ??= {});
    metadata.annotations = { ...metadata.annotations, ...annotations };
  };

// ---- pods and pod templates ---------------------------------------------

/** Adds a container, or replaces the one with the same name. */
export const withContainer =
  (container: V1Container): Modifier<PodCarrier> =>
  (object) => {
    const spec = podSpecOf(object);
    spec.containers = [...spec.containers.filter((c) => c.name !== container.name), container];
  };

export const withProbe =
  (container: string, kind: "liveness" | "readiness" | "startup", probe: V1Probe): Modifier<PodCarrier> =>
  (object) => {
    containerOf(object, container)[`${kind}Probe`] = probe;
  };

export const withImage =
  (container: string, image: string): Modifier<PodCarrier> =>
  (object) => {
    containerOf(object, container).image = image;
  };

export const withReadinessGate =
  (conditionType: string): Modifier<PodCarrier> =>
  (object) => {
    const spec = podSpecOf(object);
    if (!spec.readinessGates?.some((g) => g.conditionType === conditionType)) {
      spec.readinessGates = [...(spec.readinessGates ?? []), { conditionType }];
    }
  };

/** Labels on the pods (the pod itself, or the template), not on the workload or its selector. */
export const withPodLabels =
  (labels: Record<string, string>): Modifier<PodCarrier> =>
  (object) => {
    const metadata = podMetadataOf(object);
    metadata.labels = { ...metadata.labels, ...labels };
  };

/** Annotations on the pods; on a Deployment, changing them starts a rollout. */
export const withPodAnnotations =
  (annotations: Record<string, string>): Modifier<PodCarrier> =>
  (object) => {
    const metadata = podMetadataOf(object);
    metadata.annotations = { ...metadata.annotations, ...annotations };
  };

export const withTerminationGracePeriod =
  (seconds: number): Modifier<PodCarrier> =>
  (object) => {
    podSpecOf(object).terminationGracePeriodSeconds = seconds;
  };

export function makePod(name: string, ...modifiers: Modifier<V1Pod>[]): V1Pod {
  return build<V1Pod>(
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels: { app: name } },
      spec: { containers: [makeContainer(name)] },
    },
    modifiers,
  );
}

// ---- Deployments --------------------------------------------------------

export function makeDeployment(name: string, ...modifiers: Modifier<V1Deployment>[]): V1Deployment {
  return build<V1Deployment>(
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, labels: { app: name } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [makeContainer(name)] },
        },
      },
    },
    modifiers,
  );
}

export const withReplicas =
  (replicas: number): Modifier<V1Deployment> =>
  (deployment) => {
    deployment.spec!.replicas = replicas;
  };

export const withRollingUpdate =
  (rollingUpdate: { maxSurge?: number | string; maxUnavailable?: number | string }): Modifier<V1Deployment> =>
  (deployment) => {
    deployment.spec!.strategy = { type: "RollingUpdate", rollingUpdate };
  };

export const withMinReadySeconds =
  (seconds: number): Modifier<V1Deployment> =>
  (deployment) => {
    deployment.spec!.minReadySeconds = seconds;
  };

export const withProgressDeadline =
  (seconds: number): Modifier<V1Deployment> =>
  (deployment) => {
    deployment.spec!.progressDeadlineSeconds = seconds;
  };

// ---- Services, HPAs, PDBs -----------------------------------------------

export function makeService(name: string, ...modifiers: Modifier<V1Service>[]): V1Service {
  return build<V1Service>(
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, labels: { app: name } },
      spec: {
        selector: { app: name },
        ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
      },
    },
    modifiers,
  );
}

export const withSelector =
  (selector: Record<string, string>): Modifier<V1Service> =>
  (service) => {
    service.spec!.selector = selector;
  };

export const withPublishNotReadyAddresses =
  (publish = true): Modifier<V1Service> =>
  (service) => {
    service.spec!.publishNotReadyAddresses = publish;
  };

export function makeHpa(
  name: string,
  ...modifiers: Modifier<V2HorizontalPodAutoscaler>[]
): V2HorizontalPodAutoscaler {
  return build<V2HorizontalPodAutoscaler>(
    {
      apiVersion: "autoscaling/v2",
      kind: "HorizontalPodAutoscaler",
      metadata: { name, labels: { app: name } },
      spec: {
        scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
        minReplicas: 2,
        maxReplicas: 10,
        metrics: [
          {
            type: "Resource",
            resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } },
          },
        ],
      },
    },
    modifiers,
  );
}

export const withMinReplicas =
  (minReplicas: number): Modifier<V2HorizontalPodAutoscaler> =>
  (hpa) => {
    hpa.spec!.minReplicas = minReplicas;
  };

export const withMaxReplicas =
  (maxReplicas: number): Modifier<V2HorizontalPodAutoscaler> =>
  (hpa) => {
    hpa.spec!.maxReplicas = maxReplicas;
  };

export const withCpuTarget =
  (averageUtilization: number): Modifier<V2HorizontalPodAutoscaler> =>
  (hpa) => {
    hpa.spec!.metrics = [
      { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization } } },
    ];
  };

export function makePdb(
  name: string,
  ...modifiers: Modifier<V1PodDisruptionBudget>[]
): V1PodDisruptionBudget {
  return build<V1PodDisruptionBudget>(
    {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name, labels: { app: name } },
      spec: { selector: { matchLabels: { app: name } }, maxUnavailable: 1 },
    },
    modifiers,
  );
}

export const withMaxUnavailable =
  (maxUnavailable: number | string): Modifier<V1PodDisruptionBudget> =>
  (pdb) => {
    delete pdb.spec!.minAvailable;
    pdb.spec!.maxUnavailable = maxUnavailable;
  };

export const withMinAvailable =
  (minAvailable: number | string): Modifier<V1PodDisruptionBudget> =>
  (pdb) => {
    delete pdb.spec!.maxUnavailable;
    pdb.spec!.minAvailable = minAvailable;
  };

export const withUnhealthyPodEvictionPolicy =
  (policy: "IfHealthyBudget" | "AlwaysAllow"): Modifier<V1PodDisruptionBudget> =>
  (pdb) => {
    pdb.spec!.unhealthyPodEvictionPolicy = policy;
  };
