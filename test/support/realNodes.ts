// Tests on the real kubelet: the run's plane has three nodes (node-a/b/c in
// zone-a/b/c) that run healthgate-node — the real kubelet on a fake container
// runtime (src/devcluster/nodes.ts) — so probes are dialled by the kubelet,
// startup probes gate, liveness failures restart containers and deletion runs
// preStop within the grace period. Pods get there only if they tolerate the
// nodes' taint (onRealNodes()); everything else stays with the pod simulator.
//
// The containers are fake, so PodApps (src/devcluster/podApps.ts) serves each
// pod's ports on its IP; what a path answers comes from the pod's image tag or
// from a per-pod override. The fake runtime's remaining behaviours are steered
// by pod annotations (hack/k8sbin/cmd/healthgate-node/main.go):
//   EXEC_EXIT_CODE_ANNOTATION  every exec (probe or hook) in the pod exits with it
//   EXIT_CODE_ANNOTATION       the pod's containers exit with it (crash loop)
//   an image on a host ending in ".invalid" cannot be pulled (ErrImagePull)
import type { V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeEach, expect, inject } from "vitest";
import { REAL_NODE_TAINT } from "../../src/devcluster/nodes.ts";
import { PodApps, type App } from "../../src/devcluster/podApps.ts";
import { isAlive } from "../../src/devcluster/processes.ts";
import type { Modifier, PodCarrier } from "./builders.ts";
import { testClients, testKubeConfig, useTestNamespace, type TestNamespaceOptions } from "./kube.ts";
import { waitFor } from "./waitFor.ts";

export const EXEC_EXIT_CODE_ANNOTATION = "test-node.healthgate.io/exec-exit-code";
export const EXIT_CODE_ANNOTATION = "test-node.healthgate.io/exit-code";
/** An image the real nodes "pull" (any host not ending in .invalid); its tag picks the app's behaviour. */
export const APP_IMAGE = "registry.example/healthgate/test-app";

/** Lets the pods run on the real nodes (they tolerate the nodes' taint) with APP_IMAGE:<tag>. */
export const onRealNodes =
  (tag = "1"): Modifier<PodCarrier> =>
  (object) => {
    const spec =
      object.kind === "Pod"
        ? (object as V1Pod).spec!
        : (object as { spec: { template: { spec: V1Pod["spec"] } } }).spec.template.spec!;
    spec.tolerations = [
      ...(spec.tolerations ?? []),
      {
        key: REAL_NODE_TAINT.key,
        operator: "Equal",
        value: REAL_NODE_TAINT.value!,
        effect: REAL_NODE_TAINT.effect,
      },
    ];
    for (const container of spec.containers) container.image = `${APP_IMAGE}:${tag}`;
  };

/** Fails when a real node's kubelet has died or its Node is not Ready: a test must not pass on a broken harness. */
export async function expectRealNodesReady(): Promise<void> {
  for (const record of inject("nodeProcesses")) {
    expect(await isAlive(record), `kubelet of ${record.name} (pid ${record.pid}) is running`).toBe(true);
  }
  const nodes = (await testClients().core.listNode()).items.filter((n) =>
    (n.spec?.taints ?? []).some((t) => t.key === REAL_NODE_TAINT.key),
  );
  expect(nodes.length, "real nodes in the plane").toBeGreaterThan(0);
  for (const node of nodes) {
    const ready = node.status?.conditions?.find((c) => c.type === "Ready");
    expect(ready?.status, `Node ${node.metadata?.name} Ready: ${ready?.message}`).toBe("True");
  }
}

/** Starts serving a namespace's pods; returns a stop function that fails on the apps' errors. */
export async function servePods(
  namespace: string,
  app: (pod: V1Pod) => App,
): Promise<{
  apps: PodApps;
  stop: () => Promise<void>;
}> {
  const apps = await PodApps.start({ kubeConfig: testKubeConfig(), namespace, app });
  return {
    apps,
    async stop() {
      await apps.stop();
      if (apps.errors.length > 0) {
        throw new Error(`serving the pods met errors: ${apps.errors.map((e) => e.message).join("; ")}`);
      }
      await expectRealNodesReady();
    },
  };
}

/**
 * A fresh namespace per test whose pods (on the real nodes) are served by `app`:
 *
 *   const ns = useRealNodeNamespace((pod) => ({ "/readyz": { status: 200 } }));
 *   it("…", async () => { ns.apps.set(podName, "/readyz", { status: 500 }) });
 *
 * The test fails if serving met errors or a node is not Ready afterwards.
 */
export function useRealNodeNamespace(
  app: (pod: V1Pod) => App,
  options: TestNamespaceOptions = {},
): { readonly name: string; readonly apps: PodApps } {
  const namespace = useTestNamespace(options);
  let current: Awaited<ReturnType<typeof servePods>> | undefined;
  beforeEach(async () => {
    current = await servePods(namespace.name, app);
  });
  afterEach(async () => {
    const serving = current;
    current = undefined;
    await serving?.stop();
  });
  return {
    get name() {
      return namespace.name;
    },
    get apps() {
      if (!current) throw new Error("useRealNodeNamespace().apps is only available inside a test");
      return current.apps;
    },
  };
}

/** The namespace's pods with label app=<app>, not being deleted, oldest first. */
export async function livePods(namespace: string, app: string): Promise<V1Pod[]> {
  const items = (await testClients().core.listNamespacedPod({ namespace, labelSelector: `app=${app}` }))
    .items;
  return items
    .filter((p) => !p.metadata?.deletionTimestamp)
    .sort((a, b) =>
      String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
    );
}

export function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

export function restarts(pod: V1Pod): number {
  return (pod.status?.containerStatuses ?? []).reduce((sum, c) => sum + c.restartCount, 0);
}

/** Waits until `count` pods of the app are Ready and returns them. */
export function waitForReadyPods(namespace: string, app: string, count: number, timeoutMs = 60_000) {
  return waitFor(
    async () => {
      const pods = await livePods(namespace, app);
      const ready = pods.filter(isReady);
      expect(
        ready.length,
        `Ready pods of ${app}: ${pods.map((p) => `${p.metadata?.name}=${isReady(p)}`).join(", ")}`,
      ).toBe(count);
      return ready;
    },
    { what: `${count} Ready pods of ${namespace}/${app} on the real nodes`, timeoutMs, intervalMs: 250 },
  );
}
