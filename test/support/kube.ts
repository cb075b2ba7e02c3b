// Clients for the run's control plane and a fresh namespace per test.
import "../../src/kube/http1.ts";
import { randomBytes } from "node:crypto";
import {
  AdmissionregistrationV1Api,
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  AuthenticationV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { afterAll, afterEach, beforeEach, inject } from "vitest";
import { waitFor } from "./waitFor.ts";

/** The admin kubeconfig of the run's plane (provided by globalSetup; the env var serves other processes). */
export function testKubeconfigPath(): string {
  const path = inject("kubeconfigPath") ?? process.env.HEALTHGATE_TEST_KUBECONFIG;
  if (!path) {
    throw new Error(
      "no test control plane: run the integration tests through `npm test` (hack/test.sh), " +
        "whose globalSetup starts one, or set HEALTHGATE_TEST_KUBECONFIG",
    );
  }
  return path;
}

export interface TestClients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  autoscaling: AutoscalingV2Api;
  policy: PolicyV1Api;
  discovery: DiscoveryV1Api;
  rbac: RbacAuthorizationV1Api;
  authn: AuthenticationV1Api;
  apiextensions: ApiextensionsV1Api;
  admissionregistration: AdmissionregistrationV1Api;
  custom: CustomObjectsApi;
  /** Generic create/patch/apply of any object (builders' output included). */
  objects: KubernetesObjectApi;
}

/**
 * What an operator started by a test runs as: the chart's ServiceAccount with the chart's RBAC
 * (test/support/operatorIdentity.ts), so the audit log shows what healthgate itself asks for.
 */
export function operatorKubeconfigPath(): string {
  const path = inject("operatorKubeconfigPath") ?? process.env.HEALTHGATE_TEST_OPERATOR_KUBECONFIG;
  if (!path)
    throw new Error("no operator identity: run the integration tests through `npm test` (hack/test.sh)");
  return path;
}

export function operatorKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(operatorKubeconfigPath());
  return kc;
}

export function testKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(testKubeconfigPath());
  return kc;
}

let clients: TestClients | undefined;

/** Clients for the run's plane, as the cluster admin (system:masters). */
export function testClients(): TestClients {
  if (clients) return clients;
  const kc = testKubeConfig();
  clients = {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    autoscaling: kc.makeApiClient(AutoscalingV2Api),
    policy: kc.makeApiClient(PolicyV1Api),
    discovery: kc.makeApiClient(DiscoveryV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    authn: kc.makeApiClient(AuthenticationV1Api),
    apiextensions: kc.makeApiClient(ApiextensionsV1Api),
    admissionregistration: kc.makeApiClient(AdmissionregistrationV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
  return clients;
}

/** Whether `err` is an API error, optionally with the given HTTP status. */
export function isApiError(err: unknown, code?: number): err is ApiException<unknown> {
  return err instanceof ApiException && (code === undefined || err.code === code);
}

/** Runs `call`, treating a 404 as "already gone". */
export async function ignoreNotFound<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (isApiError(err, 404)) return undefined;
    throw err;
  }
}

/** A DNS-1123 label from free text: "Given a rollout, when…" → "given-a-rollout-when". */
function slug(text: string, max: number): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, max)
    .replace(/^-+|-+$/g, "");
}

export const TEST_NAMESPACE_LABEL = "test.healthgate.io/run";

/** Creates a namespace whose name starts with `hint` (slugged) and ends with a random suffix. */
export async function createTestNamespace(
  hint = "test",
  labels: Record<string, string> = {},
): Promise<string> {
  const name = `${slug(hint, 40) || "test"}-${randomBytes(3).toString("hex")}`;
  await testClients().core.createNamespace({
    body: { metadata: { name, labels: { ...labels, [TEST_NAMESPACE_LABEL]: "true" } } },
  });
  return name;
}

/**
 * Starts deleting a test namespace, fast. The namespace controller waits 5 s
 * (hard-coded) before it looks at a deleted namespace, and if it then finds
 * pods still terminating it waits again, for up to their grace period. Without
 * a kubelet, pods marked for deletion also stay Terminating until someone
 * finishes them. So the workload controllers go first (nothing recreates pods
 * afterwards), then the pods with grace period 0, then the namespace.
 */
export async function beginNamespaceDeletion(namespace: string): Promise<void> {
  const { core, apps } = testClients();
  await Promise.all([
    ignoreNotFound(apps.deleteCollectionNamespacedDeployment({ namespace })),
    ignoreNotFound(apps.deleteCollectionNamespacedReplicaSet({ namespace })),
    ignoreNotFound(apps.deleteCollectionNamespacedStatefulSet({ namespace })),
    ignoreNotFound(apps.deleteCollectionNamespacedDaemonSet({ namespace })),
  ]);
  await ignoreNotFound(core.deleteCollectionNamespacedPod({ namespace, gracePeriodSeconds: 0 }));
  await ignoreNotFound(core.deleteNamespace({ name: namespace }));
}

/** Waits until a deleted namespace is gone, finishing pods left Terminating; the error names what remains. */
export async function awaitNamespaceDeletion(namespace: string, timeoutMs = 60_000): Promise<void> {
  const { core } = testClients();
  await waitFor(
    async () => {
      const ns = await ignoreNotFound(core.readNamespace({ name: namespace }));
      if (!ns) return true;
      const pods = await core.listNamespacedPod({ namespace });
      await Promise.all(
        pods.items
          .filter((pod) => pod.metadata?.deletionTimestamp)
          .map((pod) =>
            ignoreNotFound(
              core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace, gracePeriodSeconds: 0 }),
            ),
          ),
      );
      const why = (ns.status?.conditions ?? [])
        .filter((c) => c.status === "True")
        .map((c) => `${c.type}: ${c.message}`);
      throw new Error(
        `namespace ${namespace} is ${ns.status?.phase}${why.length ? ` (${why.join("; ")})` : ""}`,
      );
    },
    { timeoutMs, intervalMs: 200, what: `namespace ${namespace} to be deleted` },
  );
}

/** Deletes a namespace and waits until it is gone (at least 5 s: see beginNamespaceDeletion). */
export async function deleteTestNamespace(namespace: string, timeoutMs = 60_000): Promise<void> {
  await beginNamespaceDeletion(namespace);
  await awaitNamespaceDeletion(namespace, timeoutMs);
}

/** Runs `fn` in a fresh namespace and deletes the namespace afterwards, waiting for it to be gone. */
export async function withNamespace<T>(fn: (namespace: string) => Promise<T>, hint?: string): Promise<T> {
  const namespace = await createTestNamespace(hint);
  try {
    return await fn(namespace);
  } finally {
    await deleteTestNamespace(namespace);
  }
}

export interface TestNamespaceOptions {
  /**
   * When to wait for the namespace to be gone. "afterAll" (default): deletion
   * starts after each test and the suite waits for all its namespaces at the
   * end, so the namespace controller's fixed 5 s delay is paid once per suite
   * rather than once per test. "afterEach": each test waits for its own.
   */
  awaitDeletion?: "afterEach" | "afterAll";
  /** Labels the namespace carries from its creation (admission's namespace selectors see them at once). */
  labels?: Record<string, string>;
}

/**
 * Gives each test of the enclosing suite its own namespace, named after the
 * test, and deletes it after the test; the suite fails if one does not go away:
 *
 *   const ns = useTestNamespace();
 *   it("…", async () => { await apps.createNamespacedDeployment({ namespace: ns.name, body }) });
 */
export function useTestNamespace(options: TestNamespaceOptions = {}): { readonly name: string } {
  const awaitEach = options.awaitDeletion === "afterEach";
  let current: string | undefined;
  const deleting: string[] = [];
  beforeEach(async (context) => {
    current = await createTestNamespace(context.task.name, options.labels);
  });
  afterEach(async () => {
    if (!current) return;
    const namespace = current;
    current = undefined;
    await beginNamespaceDeletion(namespace);
    if (awaitEach) await awaitNamespaceDeletion(namespace);
    else deleting.push(namespace);
  });
  afterAll(async () => {
    await Promise.all(deleting.splice(0).map((namespace) => awaitNamespaceDeletion(namespace)));
  });
  return {
    get name(): string {
      if (!current) throw new Error("useTestNamespace().name is only available inside a test");
      return current;
    },
  };
}

/**
 * Sets one pod condition the way a controller such as healthgate sets a
 * readiness gate: a strategic-merge patch of pods/status that names only that
 * condition type, leaving the kubelet's conditions alone.
 */
export async function setPodCondition(
  namespace: string,
  name: string,
  condition: { type: string; status: "True" | "False" | "Unknown"; reason?: string; message?: string },
): Promise<void> {
  await testClients().core.patchNamespacedPodStatus(
    {
      name,
      namespace,
      body: { status: { conditions: [{ ...condition, lastTransitionTime: new Date().toISOString() }] } },
    },
    setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
  );
}
