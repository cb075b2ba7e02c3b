// The test harness itself, against the real control plane: the plane's
// version and RBAC, the pod simulator playing the kubelet under the real
// Deployment, ReplicaSet, EndpointSlice and namespace controllers, and a real
// HTTP server on a pod IP. Everything else in test/integration builds on this.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import { describe, expect, inject, it } from "vitest";
import { startControlPlane } from "../../src/devcluster/controlPlane.ts";
import { isAlive } from "../../src/devcluster/processes.ts";
import {
  makeDeployment,
  makePod,
  makeService,
  withPodLabels,
  withReadinessGate,
  withReplicas,
  withRollingUpdate,
  withTerminationGracePeriod,
} from "../support/builders.ts";
import {
  createTestNamespace,
  ignoreNotFound,
  isApiError,
  setPodCondition,
  testClients,
  testKubeconfigPath,
  useTestNamespace,
} from "../support/kube.ts";
import { FAKE_NODES, PodSimulator, useSimulatedNamespace } from "../support/podSimulator.ts";
import { cidrContains } from "../support/podIps.ts";
import { holdsFor, waitFor } from "../support/waitFor.ts";

const execFileAsync = promisify(execFile);
const GATE = "healthgate.io/deep-check";

function condition(pod: V1Pod | undefined, type: string) {
  return pod?.status?.conditions?.find((c) => c.type === type);
}

async function readDeployment(namespace: string, name: string): Promise<V1Deployment> {
  return testClients().apps.readNamespacedDeployment({ name, namespace });
}

async function podsOf(namespace: string, labelSelector: string): Promise<V1Pod[]> {
  const list = await testClients().core.listNamespacedPod({ namespace, labelSelector });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

describe("the control plane", () => {
  const ns = useTestNamespace();

  it("reports the version hack/k8sbin builds, through kubectl built at that version", async () => {
    // Given the version the wrapper module pins
    const goMod = await readFile(path.join(import.meta.dirname, "../../hack/k8sbin/go.mod"), "utf8");
    const pinned = /^\s*k8s\.io\/kubernetes (v[\d.]+)/m.exec(goMod)?.[1];
    expect(pinned, "hack/k8sbin/go.mod requires k8s.io/kubernetes").toBeDefined();

    // When kubectl asks the server
    const kubectl = path.join(inject("k8sBinDir"), "kubectl");
    const { stdout } = await execFileAsync(kubectl, [
      "version",
      "-o",
      "json",
      "--kubeconfig",
      testKubeconfigPath(),
    ]);
    const versions = JSON.parse(stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };

    // Then both sides carry the stamped version
    expect(versions.serverVersion.gitVersion).toBe(pinned);
    expect(versions.clientVersion.gitVersion).toBe(pinned);
  });

  it("enforces RBAC: a ServiceAccount is refused with 403 until a RoleBinding allows it", async () => {
    const namespace = ns.name;
    const { core, rbac } = testClients();
    // Given a ServiceAccount and a token for it (TokenRequest needs the signing-key flags)
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "reader" } } });
    const token = (
      await core.createNamespacedServiceAccountToken({
        name: "reader",
        namespace,
        body: { spec: { audiences: [], expirationSeconds: 600 } },
      })
    ).status!.token;
    const cluster = testClients().kc.getCurrentCluster()!;
    const listPods = () =>
      new Promise<number>((resolve, reject) => {
        https
          .get(
            `${cluster.server}/api/v1/namespaces/${namespace}/pods`,
            { ca: Buffer.from(cluster.caData!, "base64"), headers: { Authorization: `Bearer ${token}` } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
          .on("error", reject);
      });

    // When it lists pods without any binding, then it is forbidden
    expect(await listPods()).toBe(403);

    // When a Role and RoleBinding grant it, then the same request succeeds
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: "pod-reader" },
        rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "reader-reads-pods" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace }],
      },
    });
    await waitFor(async () => (await listPods()) === 200, {
      what: "the RoleBinding to take effect",
      timeoutMs: 10_000,
    });
  });

  it("keeps its data across a kube-apiserver restart", async () => {
    // Given a plane of its own (etcd + kube-apiserver only: restarting the
    // run's shared API server would disturb other test files) holding an object
    const plane = await startControlPlane({ binDir: inject("k8sBinDir"), controllerManager: false });
    try {
      const { KubeConfig, CoreV1Api } = await import("@kubernetes/client-node");
      const kc = new KubeConfig();
      kc.loadFromFile(plane.kubeconfigPath);
      const core = kc.makeApiClient(CoreV1Api);
      await core.createNamespacedConfigMap({
        namespace: "default",
        body: { metadata: { name: "survivor" }, data: { answer: "42" } },
      });
      const firstPid = plane.pids.kubeApiServer;

      // When kube-apiserver alone is stopped and started again
      await plane.stopApiServer();
      await expect(
        core.readNamespacedConfigMap({ name: "survivor", namespace: "default" }),
      ).rejects.toThrow();
      await plane.startApiServer();

      // Then it is a new process serving the same data
      expect(plane.pids.kubeApiServer).not.toBe(firstPid);
      const survivor = await core.readNamespacedConfigMap({ name: "survivor", namespace: "default" });
      expect(survivor.data).toEqual({ answer: "42" });
    } finally {
      const processes = plane.processes();
      await plane.stop();
      // And stop() leaves no process behind
      for (const record of processes)
        expect(await isAlive(record), `${record.name} still running`).toBe(false);
    }
  });
});

describe("the pod simulator under the real controllers", () => {
  const ns = useSimulatedNamespace();

  it("Given a Deployment of 3 replicas, its ReplicaSet's pods run across zones and it reports 3 available", async () => {
    const { apps } = testClients();
    const namespace = ns.name;
    // Given
    await apps.createNamespacedDeployment({ namespace, body: makeDeployment("web", withReplicas(3)) });

    // Then the Deployment controller creates one ReplicaSet of 3
    const replicaSet = await waitFor(
      async () => {
        const list = await apps.listNamespacedReplicaSet({ namespace, labelSelector: "app=web" });
        return list.items.length === 1 && list.items[0]!.status?.replicas === 3 ? list.items[0] : undefined;
      },
      { what: "one ReplicaSet of 3 for deployment web" },
    );

    // And the simulator runs its 3 pods, one per zone, with distinct IPs of the run's range
    const pods = await waitFor(
      async () => {
        const running = (await podsOf(namespace, "app=web")).filter(
          (p) => condition(p, "Ready")?.status === "True",
        );
        expect(running).toHaveLength(3);
        return running;
      },
      { what: "3 ready pods of deployment web" },
    );
    expect(pods.every((p) => p.metadata?.ownerReferences?.[0]?.uid === replicaSet.metadata?.uid)).toBe(true);
    expect(new Set(pods.map((p) => p.spec?.nodeName))).toEqual(new Set(FAKE_NODES.map((n) => n.name)));
    const ips = pods.map((p) => p.status!.podIP!);
    expect(new Set(ips).size).toBe(3);
    for (const ip of ips)
      expect(cidrContains(ns.simulator.podCidr, ip), `${ip} in ${ns.simulator.podCidr}`).toBe(true);

    // And the Deployment reports 3 available
    const deployment = await waitFor(
      async () => {
        const d = await readDeployment(namespace, "web");
        expect(d.status?.availableReplicas).toBe(3);
        return d;
      },
      { what: "deployment web to report 3 available replicas" },
    );
    expect(deployment.status?.conditions?.find((c) => c.type === "Available")?.status).toBe("True");
  });

  it("Given a pod with a readiness gate, it stays unready until the gate condition is True", async () => {
    const namespace = ns.name;
    // Given a pod whose containers become ready at once, gated on healthgate's condition
    await testClients().core.createNamespacedPod({
      namespace,
      body: makePod("gated", withReadinessGate(GATE)),
    });
    await ns.simulator.waitForRunning("gated");

    // Then it is not Ready, for the kubelet's reason: the gate's condition is missing
    const read = () => testClients().core.readNamespacedPod({ name: "gated", namespace });
    let pod = await waitFor(
      async () => condition(await read(), "ContainersReady")?.status === "True" && read(),
      {
        what: "pod gated's containers to be ready",
      },
    );
    expect(condition(pod, "Ready")).toMatchObject({
      status: "False",
      reason: "ReadinessGatesNotReady",
      message: `corresponding condition of pod readiness gate "${GATE}" does not exist.`,
    });

    // When the gate is set False, it stays unready
    await setPodCondition(namespace, "gated", { type: GATE, status: "False", reason: "Checking" });
    pod = await waitFor(
      async () => {
        const p = await read();
        return condition(p, "Ready")?.message?.includes('is not "True", but False') && p;
      },
      { what: "Ready to cite the False gate" },
    );
    expect(condition(pod, "Ready")?.status).toBe("False");

    // When the gate is set True, it becomes Ready, and the gate condition is left as written
    await setPodCondition(namespace, "gated", { type: GATE, status: "True", reason: "DeepCheckPassed" });
    pod = await waitFor(async () => condition(await read(), "Ready")?.status === "True" && read(), {
      what: "pod gated to become Ready",
    });
    expect(condition(pod, GATE)).toMatchObject({ status: "True", reason: "DeepCheckPassed" });

    // When a container's readiness probe fails, it is unready again despite the gate
    await ns.simulator.setReady("gated", false);
    pod = await read();
    expect(condition(pod, "Ready")).toMatchObject({ status: "False", reason: "ContainersNotReady" });
  });

  it("Given maxSurge 1 / maxUnavailable 0, a rolling update waits while new pods are unready and completes once they are Ready", async () => {
    const { apps } = testClients();
    const namespace = ns.name;
    // Given a Deployment of 3 at revision v1, fully available
    const v1 = makeDeployment(
      "web",
      withReplicas(3),
      withRollingUpdate({ maxSurge: 1, maxUnavailable: 0 }),
      withPodLabels({ version: "v1" }),
    );
    await apps.createNamespacedDeployment({ namespace, body: v1 });
    await waitFor(async () => (await readDeployment(namespace, "web")).status?.availableReplicas === 3, {
      what: "v1 to be available",
    });

    // When the template changes to v2, whose pods carry a readiness gate nobody sets yet
    await apps.patchNamespacedDeployment({
      name: "web",
      namespace,
      body: [
        { op: "replace", path: "/spec/template/metadata/labels/version", value: "v2" },
        { op: "add", path: "/spec/template/spec/readinessGates", value: [{ conditionType: GATE }] },
      ],
    });

    // Then one surge pod of v2 runs, unready, and the rollout makes no progress
    const surge = await waitFor(
      async () => {
        const v2 = await podsOf(namespace, "app=web,version=v2");
        return v2.length === 1 && v2[0]!.status?.phase === "Running" ? v2[0] : undefined;
      },
      { what: "one running v2 surge pod" },
    );
    expect(condition(surge, "Ready")?.reason).toBe("ReadinessGatesNotReady");
    await holdsFor(
      async () => {
        const d = await readDeployment(namespace, "web");
        expect(d.status?.availableReplicas).toBe(3);
        expect(d.status?.updatedReplicas).toBe(1);
        expect(await podsOf(namespace, "app=web,version=v1")).toHaveLength(3);
      },
      { forMs: 1_500, what: "the rollout to hold at 3 old pods + 1 unready new pod" },
    );

    // When every v2 pod's gate is set True as it appears
    let minAvailable = Infinity;
    const done = await waitFor(
      async () => {
        for (const pod of await podsOf(namespace, "app=web,version=v2")) {
          if (pod.status?.phase === "Running" && condition(pod, GATE)?.status !== "True") {
            await setPodCondition(namespace, pod.metadata!.name!, {
              type: GATE,
              status: "True",
              reason: "Test",
            });
          }
        }
        const d = await readDeployment(namespace, "web");
        minAvailable = Math.min(minAvailable, d.status?.availableReplicas ?? 0);
        const progressing = d.status?.conditions?.find((c) => c.type === "Progressing");
        return d.status?.updatedReplicas === 3 &&
          d.status.availableReplicas === 3 &&
          d.status.replicas === 3 &&
          progressing?.reason === "NewReplicaSetAvailable"
          ? d
          : undefined;
      },
      { what: "the rollout to v2 to complete", timeoutMs: 60_000 },
    );

    // Then it completes, never dropping below 3 available, and only v2 pods remain
    expect(done.status?.unavailableReplicas ?? 0).toBe(0);
    expect(minAvailable).toBeGreaterThanOrEqual(3);
    await waitFor(async () => (await podsOf(namespace, "app=web,version=v1")).length === 0, {
      what: "the v1 pods to be gone",
    });
  });

  it("Given a Service over ready and gated pods, its EndpointSlice lists the gated one as not ready", async () => {
    expect(
      inject("podIpsPublishable"),
      "EndpointSlices refuse loopback pod IPs; run through `npm test`, which routes 198.18.0.0/15 in a network namespace",
    ).toBe(true);
    const { core, discovery } = testClients();
    const namespace = ns.name;
    // Given two ready pods and one whose readiness gate is unset, all selected by Service web
    await core.createNamespacedService({ namespace, body: makeService("web") });
    for (const name of ["web-a", "web-b"]) {
      await core.createNamespacedPod({ namespace, body: makePod(name, withPodLabels({ app: "web" })) });
    }
    await core.createNamespacedPod({
      namespace,
      body: makePod("web-gated", withPodLabels({ app: "web" }), withReadinessGate(GATE)),
    });
    const ips = Object.fromEntries(
      await Promise.all(
        ["web-a", "web-b", "web-gated"].map(async (n) => [await ns.simulator.waitForRunning(n), n]),
      ),
    ) as Record<string, string>;

    // Then the EndpointSlice controller publishes all three, the gated one not ready
    const readiness = async () => {
      const slices = await discovery.listNamespacedEndpointSlice({
        namespace,
        labelSelector: "kubernetes.io/service-name=web",
      });
      const endpoints = slices.items.flatMap((s) => s.endpoints ?? []);
      return Object.fromEntries(
        endpoints.map((e) => [ips[e.addresses[0]!] ?? e.addresses[0], e.conditions?.ready]),
      );
    };
    await waitFor(
      async () => {
        expect(await readiness()).toEqual({ "web-a": true, "web-b": true, "web-gated": false });
        return true;
      },
      { what: "EndpointSlice of service web to list web-a and web-b ready, web-gated not ready" },
    );
    const slice = (await discovery.listNamespacedEndpointSlice({ namespace })).items[0]!;
    expect(slice.ports?.[0]).toMatchObject({ name: "http", port: 8080 });
    expect(slice.endpoints?.every((e) => e.zone?.startsWith("zone-"))).toBe(true);

    // When the gate is set True, then the slice marks it ready
    await setPodCondition(namespace, "web-gated", { type: GATE, status: "True", reason: "Test" });
    await waitFor(async () => (await readiness())["web-gated"] === true, {
      what: "web-gated to be ready in the EndpointSlice",
    });
  });

  it("Given a pod IP, a real HTTP server bound on it answers", async () => {
    // Given a running pod
    await testClients().core.createNamespacedPod({ namespace: ns.name, body: makePod("web") });
    const ip = await ns.simulator.waitForRunning("web");
    expect(ns.simulator.podIP("web")).toBe(ip);

    // When a test binds an HTTP server on its IP
    const server = http.createServer((req, res) => res.end(`healthy at ${req.url}`));
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(8080, ip, resolve));
    try {
      // Then it answers there
      const response = await fetch(`http://${ip}:${(server.address() as AddressInfo).port}/healthz`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("healthy at /healthz");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("Given a running pod, a crash restarts its container and readiness starts over", async () => {
    const { core } = testClients();
    const namespace = ns.name;
    // (1.5 s: long enough that "not ready yet" is never a race, short enough to keep the test quick.)
    ns.simulator.setBehaviour({ readyAfterMs: 1_500 });
    // Given a pod that became ready after its slow start
    await core.createNamespacedPod({ namespace, body: makePod("web") });
    await ns.simulator.waitForRunning("web");
    const read = () => core.readNamespacedPod({ name: "web", namespace });
    expect(condition(await read(), "Ready")?.status).toBe("False");
    await waitFor(async () => condition(await read(), "Ready")?.status === "True", {
      what: "web to become ready",
    });

    // When it crashes
    await ns.simulator.crash("web", { exitCode: 137, reason: "OOMKilled" });

    // Then the restart is recorded, it is unready, and ready again after the start-up delay
    const crashed = await read();
    expect(crashed.status?.containerStatuses?.[0]).toMatchObject({
      restartCount: 1,
      ready: false,
      lastState: { terminated: { exitCode: 137, reason: "OOMKilled" } },
    });
    expect(condition(crashed, "Ready")?.status).toBe("False");
    await waitFor(async () => condition(await read(), "Ready")?.status === "True", {
      what: "web to be ready again",
    });
  });

  it("Given running pods, deleting their namespace completes (the simulator finishes the pods)", async () => {
    const { apps, core } = testClients();
    // Given a namespace of its own, served by a second simulator, with a Deployment's pods running
    const namespace = await createTestNamespace("deleted-by-the-test");
    const simulator = await PodSimulator.start({ namespace });
    try {
      // (A short grace period: the namespace controller waits out part of it for pods still terminating.)
      await apps.createNamespacedDeployment({
        namespace,
        body: makeDeployment("web", withReplicas(2), withTerminationGracePeriod(1)),
      });
      await waitFor(async () => (await readDeployment(namespace, "web")).status?.availableReplicas === 2, {
        what: "2 available replicas",
      });

      // When the namespace is deleted the plain way
      const started = Date.now();
      await core.deleteNamespace({ name: namespace });

      // Then it is gone; the pods needed the simulator to finish them
      await waitFor(
        async () => (await ignoreNotFound(core.readNamespace({ name: namespace }))) === undefined,
        {
          what: `namespace ${namespace} to be deleted`,
          timeoutMs: 60_000,
        },
      );
      console.info(`namespace with running pods deleted in ${Date.now() - started} ms`);
    } finally {
      await simulator.stop();
      await ignoreNotFound(core.deleteNamespace({ name: namespace })).catch((err) => {
        if (!isApiError(err)) throw err;
      });
    }
  });
});
