// Headroom with `source: Metrics` through the real API server's aggregation layer. The test
// plane runs no metrics-server, so first healthgate must say it cannot know the peak
// (Unknown MetricsUnavailable: no APIService serves metrics.k8s.io). Then the test plays
// metrics-server: an HTTPS server on a pod-range address (routed to loopback in the test
// network namespace, so an EndpointSlice accepts it) behind a selector-less Service, and an
// APIService v1beta1.metrics.k8s.io pointing at it. kube-apiserver runs with
// --enable-aggregator-routing (src/devcluster/controlPlane.ts), so it dials that endpoint
// directly; nothing here routes ClusterIPs.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { KubernetesObject, V1Deployment } from "@kubernetes/client-node";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { Operator } from "../../src/controller/operator.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { makeDeployment, withReplicas, type Modifier } from "../support/builders.ts";
import { ignoreNotFound, isApiError, testClients, operatorKubeConfig } from "../support/kube.ts";
import { claimIpBlock, IpAllocator } from "../support/podIps.ts";
import { waitFor } from "../support/waitFor.ts";
import {
  installCrd,
  makePolicy,
  readPolicy,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForPolicyCondition,
  waitForRolloutComplete,
  withHeadroom,
} from "./controller/support.ts";

const execFileAsync = promisify(execFile);
const METRICS_API_SERVICE = "v1beta1.metrics.k8s.io";
const apiServiceHeader = {
  apiVersion: "apiregistration.k8s.io/v1",
  kind: "APIService",
  metadata: { name: METRICS_API_SERVICE },
};

beforeAll(() => installCrd());

const withCpuRequest =
  (cpu: string): Modifier<V1Deployment> =>
  (deployment) => {
    for (const c of deployment.spec!.template.spec!.containers) c.resources = { requests: { cpu } };
  };

/**
 * What metrics-server answers, and the discovery documents the aggregator asks for. Every list
 * of pod metrics is fresh: one sample per pod of the namespace, stamped now, at `cpu`.
 */
class FakeMetricsServer {
  cpu = "0";
  /** Pod-metrics lists served per CPU value, to know a value has reached the operator. */
  readonly served = new Map<string, number>();
  private server: https.Server | undefined;
  private readonly namespace: string;

  constructor(namespace: string) {
    this.namespace = namespace;
  }

  async listen(address: string): Promise<number> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "healthgate-fake-metrics-"));
    try {
      await execFileAsync("openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=metrics-server",
        "-keyout",
        path.join(dir, "key.pem"),
        "-out",
        path.join(dir, "cert.pem"),
      ]);
      const [key, cert] = await Promise.all([
        readFile(path.join(dir, "key.pem")),
        readFile(path.join(dir, "cert.pem")),
      ]);
      this.server = https.createServer({ key, cert }, (req, res) => {
        void this.answer(new URL(req.url ?? "/", "https://metrics").pathname).then(
          (body) => {
            res.writeHead(body ? 200 : 404, { "content-type": "application/json" });
            res.end(
              JSON.stringify(body ?? { kind: "Status", apiVersion: "v1", status: "Failure", code: 404 }),
            );
          },
          (err: unknown) => {
            res.writeHead(500, { "content-type": "text/plain" });
            res.end(String(err));
          },
        );
      });
      const server = this.server;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, address, resolve);
      });
      return (server.address() as AddressInfo).port;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve(undefined)));
  }

  private async answer(pathname: string): Promise<unknown> {
    const groupVersion = { groupVersion: "metrics.k8s.io/v1beta1", version: "v1beta1" };
    const group = { name: "metrics.k8s.io", versions: [groupVersion], preferredVersion: groupVersion };
    switch (pathname) {
      case "/apis":
        return { kind: "APIGroupList", apiVersion: "v1", groups: [group] };
      case "/apis/metrics.k8s.io":
        return { kind: "APIGroup", apiVersion: "v1", ...group };
      case "/apis/metrics.k8s.io/v1beta1":
        return {
          kind: "APIResourceList",
          apiVersion: "v1",
          groupVersion: "metrics.k8s.io/v1beta1",
          resources: [
            { name: "pods", singularName: "", namespaced: true, kind: "PodMetrics", verbs: ["get", "list"] },
            {
              name: "nodes",
              singularName: "",
              namespaced: false,
              kind: "NodeMetrics",
              verbs: ["get", "list"],
            },
          ],
        };
    }
    const pods = /^\/apis\/metrics\.k8s\.io\/v1beta1\/(?:namespaces\/([^/]+)\/)?(pods|nodes)$/.exec(pathname);
    if (!pods) return undefined;
    const list = (kind: string, items: unknown[]) => ({
      kind,
      apiVersion: "metrics.k8s.io/v1beta1",
      metadata: {},
      items,
    });
    if (pods[2] === "nodes" || pods[1] !== this.namespace)
      return list(`${pods[2] === "nodes" ? "Node" : "Pod"}MetricsList`, []);
    const cpu = this.cpu;
    const running = (await testClients().core.listNamespacedPod({ namespace: this.namespace })).items.filter(
      (p) => p.status?.phase === "Running" && !p.metadata?.deletionTimestamp,
    );
    this.served.set(cpu, (this.served.get(cpu) ?? 0) + 1);
    const timestamp = new Date().toISOString();
    return list(
      "PodMetricsList",
      running.map((p) => ({
        metadata: { name: p.metadata!.name, namespace: this.namespace },
        timestamp,
        window: "15s",
        containers: p.spec!.containers.map((c) => ({ name: c.name, usage: { cpu, memory: "64Mi" } })),
      })),
    );
  }
}

/** Registers `address:port` as metrics.k8s.io/v1beta1: Service, Endpoints and EndpointSlice, APIService. */
async function registerMetricsApi(namespace: string, address: string, port: number): Promise<void> {
  const { core, discovery, objects } = testClients();
  const name = "metrics-server";
  await core.createNamespacedService({
    namespace,
    body: { metadata: { name }, spec: { ports: [{ name: "https", port: 443, targetPort: port }] } },
  });
  // The aggregator's resolver reads one or the other depending on the release; give it both.
  await core.createNamespacedEndpoints({
    namespace,
    body: {
      metadata: { name },
      subsets: [{ addresses: [{ ip: address }], ports: [{ name: "https", port }] }],
    },
  });
  await discovery.createNamespacedEndpointSlice({
    namespace,
    body: {
      metadata: { name: `${name}-manual`, labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      endpoints: [{ addresses: [address], conditions: { ready: true } }],
      ports: [{ name: "https", port, protocol: "TCP" }],
    },
  });
  await objects.create({
    apiVersion: "apiregistration.k8s.io/v1",
    kind: "APIService",
    metadata: { name: METRICS_API_SERVICE },
    spec: {
      group: "metrics.k8s.io",
      version: "v1beta1",
      service: { namespace, name, port: 443 },
      // A throwaway self-signed certificate; a real metrics-server gets a caBundle.
      insecureSkipTLSVerify: true,
      groupPriorityMinimum: 100,
      versionPriority: 100,
    },
  } as KubernetesObject);
  await waitFor(
    async () => {
      const apiService = (await objects.read(apiServiceHeader)) as KubernetesObject & {
        status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
      };
      const available = apiService.status?.conditions?.find((c) => c.type === "Available");
      if (available?.status !== "True") throw new Error(`Available: ${JSON.stringify(available)}`);
      return true;
    },
    { what: `APIService ${METRICS_API_SERVICE} to be Available`, timeoutMs: 60_000, intervalMs: 250 },
  );
}

async function deleteMetricsApi(): Promise<void> {
  await ignoreNotFound(testClients().objects.delete(apiServiceHeader));
}

describe("Headroom source Metrics", () => {
  const hg = useControllerHarness();

  it("is Unknown without metrics.k8s.io, then judges the peak of what metrics-server reports over the window", async () => {
    // The test plays metrics-server on a pod-range address, which must be local (npm test's network namespace).
    expect(inject("podIpsPublishable"), "pod IPs must be publishable: run through npm test").toBe(true);
    const { objects } = testClients();
    const existing = await objects
      .read(apiServiceHeader)
      .catch((err: unknown) => (isApiError(err, 404) ? undefined : Promise.reject(err)));
    expect(existing, `this plane must have no ${METRICS_API_SERVICE} yet`).toBeUndefined();

    // Given 4 replicas requesting 500m CPU each, and a policy taking their peak from metrics.k8s.io
    await hg.apply(makeDeployment("web", withReplicas(4), withCpuRequest("500m")));
    await waitForRolloutComplete(hg.namespace, "web");
    await hg.createPolicy(
      makePolicy("web", withHeadroom({ source: "Metrics", window: "1h", tolerate: 1, zones: false })),
    );
    // (healthgate in-process, scoped to the namespace, polling metrics.k8s.io every 200 ms)
    const operator = new Operator({
      kubeConfig: operatorKubeConfig(),
      logger: createLogger("silent"),
      namespaces: [hg.namespace],
      leaderElection: { enabled: false },
      identity: "healthgate-metrics-source-test",
      podMetricsIntervalMs: 200,
    });
    const metricsServer = new FakeMetricsServer(hg.namespace);
    try {
      await operator.start();

      // Then, with no APIService for metrics.k8s.io, the peak is unknown
      const unavailable = { status: "Unknown", reason: "MetricsUnavailable" } as const;
      await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", unavailable);
      await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", unavailable);

      // When metrics-server appears and reports 450m of 500m (90%) for every pod
      const block = await claimIpBlock(inject("runDir"), inject("podCidr"));
      const address = new IpAllocator(block).allocate();
      metricsServer.cpu = "450m";
      const port = await metricsServer.listen(address);
      await registerMetricsApi(hg.namespace, address, port);

      // Then (with no other event: the poll enqueues the Deployment) 3 survivors at 120% are too few
      const insufficient = { status: "False", reason: "TooFewReplicas" } as const;
      await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", insufficient);
      const policy = await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", insufficient);
      expect(policy.status?.targets?.[0]?.headroom).toMatchObject({
        source: "Metrics",
        replicas: 4,
        tolerate: 1,
        peakPercent: 90,
      });

      // When usage drops to 100m (20%) and that sample reaches healthgate
      metricsServer.cpu = "100m";
      await waitFor(() => (metricsServer.served.get("100m") ?? 0) >= 3, {
        what: "healthgate to poll the lower sample a few times",
        timeoutMs: 30_000,
        intervalMs: 100,
      });

      // Then the peak over the 1h window is still the 90% sample
      const after = await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", insufficient);
      expect(after.status?.targets?.[0]?.headroom).toMatchObject({ source: "Metrics", peakPercent: 90 });
      expect((await readPolicy(hg.namespace, "web")).status?.targets?.[0]?.headroom?.peakPercent).toBe(90);
    } finally {
      // The APIService goes first: an unavailable aggregated API stalls namespace deletion everywhere.
      await deleteMetricsApi();
      await operator.stop();
      await metricsServer.close();
    }
  });
});
