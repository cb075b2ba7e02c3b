// Resilience against a real control plane: what happens to healthgate when the things it runs
// on fail under it.
//   - Two `healthgate run` processes share one Lease. SIGKILL the leader: the standby takes the
//     lease once it expires and reconciles what changed meanwhile. SIGTERM the leader: it
//     releases the lease, exits 0, and the standby takes over at its next poll.
//   - kube-apiserver stops and starts again under a running operator: its informers recover on
//     their own (no restart of the operator), later changes are reconciled, /readyz stays OK.
//   - A kube-apiserver that sheds load answers 429 with Retry-After: healthgate honours it,
//     syncs its caches and reconciles all the same.
// Takeover figures are printed (console.log) for the record; nothing here asserts a duration:
// each bound is only how long a test waits before it fails.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Deployment,
} from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { DEPLOYMENT_CONDITION_PREFIX, GROUP, PLURAL, VERSION } from "../../src/api/v1alpha1/index.ts";
import { Operator } from "../../src/controller/operator.ts";
import { startControlPlane, type ControlPlane } from "../../src/devcluster/controlPlane.ts";
import { freePort } from "../../src/devcluster/net.ts";
import { createLogger } from "../../src/observability/logger.ts";
import type { HealthgateMetrics } from "../../src/observability/metrics.ts";
import { makeDeployment, withLabels, withProbe } from "../support/builders.ts";
import { testClients, testKubeconfigPath, useTestNamespace } from "../support/kube.ts";
import { sumSamples } from "../support/promText.ts";
import { waitFor } from "../support/waitFor.ts";
import {
  createPolicy,
  deploymentCondition,
  installCrd,
  makePolicy,
  mergePatch,
  repoRoot,
  withDeepPaths,
  type HealthPolicyObject,
} from "./controller/support.ts";

const MAIN = path.join(repoRoot, "src/cli/main.ts");
const TIER = { tier: "frontend" };

/** An Audit policy selecting every Deployment labelled tier=frontend, with /health/deep declared deep. */
function frontendPolicy(): HealthPolicyObject {
  const policy = makePolicy("frontend", withDeepPaths("/health/deep"));
  policy.spec.selector = { matchLabels: TIER };
  return policy;
}

/** A Deployment the frontend policy selects, with a liveness probe on /livez (shallow until a policy says otherwise). */
function frontendDeployment(name: string): V1Deployment {
  return makeDeployment(
    name,
    withLabels(TIER),
    withProbe(name, "liveness", { httpGet: { path: "/livez", port: "http" } }),
  );
}

/** The Deployment's healthgate.io/ProbesCompliant condition, proof that a leader reconciled it. */
async function reconciledBy(apps: AppsV1Api, namespace: string, name: string) {
  const d = await apps.readNamespacedDeployment({ namespace, name });
  const condition = deploymentCondition(d, "ProbesCompliant");
  expect(condition, `Deployment ${name} carries ${DEPLOYMENT_CONDITION_PREFIX}ProbesCompliant`).toBeDefined();
  return condition!;
}

// ---- `healthgate run` as a child process --------------------------------------------------

interface OperatorProcess {
  readonly identity: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Everything it printed (pino JSON lines), for failure messages. */
  output(): string;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

const children: OperatorProcess[] = [];

afterEach(async () => {
  // Stop exactly the processes this file started, and wait for them to be gone.
  for (const op of children.splice(0)) {
    if (op.child.exitCode === null && op.child.signalCode === null) op.child.kill("SIGKILL");
    await op.exited;
  }
});

async function startOperatorProcess(options: {
  identity: string;
  namespace: string;
  leaseName: string;
  /** Default: the run's admin kubeconfig. */
  kubeconfig?: string;
}): Promise<OperatorProcess> {
  const port = await freePort("127.0.0.1");
  const child = spawn(
    process.execPath,
    [
      MAIN,
      "run",
      `--kubeconfig=${options.kubeconfig ?? testKubeconfigPath()}`,
      `--namespaces=${options.namespace}`,
      `--leader-election-namespace=${options.namespace}`,
      `--leader-election-id=${options.leaseName}`,
      `--leader-election-identity=${options.identity}`,
      `--http-port=${port}`,
      "--log-level=info",
    ],
    { cwd: repoRoot, env: { ...process.env, KUBECONFIG: "" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const op: OperatorProcess = {
    identity: options.identity,
    port,
    child,
    exited,
    output: () => output,
    async metric(name, labels = {}) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return sumSamples(text, name, labels);
    },
  };
  children.push(op);
  return op;
}

async function waitReady(op: OperatorProcess): Promise<void> {
  await waitFor(
    async () => {
      if (op.child.exitCode !== null)
        throw new Error(`${op.identity} exited (${op.child.exitCode}):\n${op.output()}`);
      const res = await fetch(`http://127.0.0.1:${op.port}/readyz`);
      expect(res.status, await res.text()).toBe(200);
      return true;
    },
    { what: `${op.identity}'s /readyz to pass (caches synced)`, timeoutMs: 60_000, intervalMs: 200 },
  );
}

interface LeaseView {
  holder: string;
  acquireTime: string | undefined;
  transitions: number;
}

async function readLease(namespace: string, name: string): Promise<LeaseView | undefined> {
  const coordination = testClients().kc.makeApiClient(CoordinationV1Api);
  try {
    const lease = await coordination.readNamespacedLease({ namespace, name });
    return {
      holder: lease.spec?.holderIdentity ?? "",
      // client-node types MicroTime as Date; keep it as an instant.
      acquireTime: lease.spec?.acquireTime ? new Date(lease.spec.acquireTime).toISOString() : undefined,
      transitions: lease.spec?.leaseTransitions ?? 0,
    };
  } catch {
    return undefined;
  }
}

/** Writes healthgate sent to Deployments and HealthPolicies (the leader's work; a standby sends none). */
async function workloadWrites(op: OperatorProcess): Promise<number> {
  let writes = 0;
  for (const verb of ["apply", "create", "update", "patch", "delete"]) {
    for (const resource of ["deployments", "deployments/status", "healthpolicies/status"]) {
      writes += await op.metric("healthgate_api_requests_total", { verb, resource });
    }
  }
  return writes;
}

/**
 * Given two `healthgate run` processes, a policy and a Deployment in the test namespace, waits
 * until one of them leads and has reconciled the Deployment; returns leader and standby.
 */
async function twoOperators(namespace: string, leaseName: string) {
  const { apps } = testClients();
  await createPolicy(namespace, frontendPolicy());
  await apps.createNamespacedDeployment({ namespace, body: frontendDeployment("web") });
  const a = await startOperatorProcess({ identity: "healthgate-a", namespace, leaseName });
  const b = await startOperatorProcess({ identity: "healthgate-b", namespace, leaseName });
  await Promise.all([waitReady(a), waitReady(b)]);
  const holder = await waitFor(
    async () => {
      const lease = await readLease(namespace, leaseName);
      expect(["healthgate-a", "healthgate-b"], `Lease ${leaseName} holder`).toContain(lease?.holder);
      return lease!.holder;
    },
    { what: `one operator to hold the Lease ${leaseName}`, timeoutMs: 30_000, intervalMs: 200 },
  );
  const [leader, standby] = holder === a.identity ? [a, b] : [b, a];
  await waitFor(() => reconciledBy(apps, namespace, "web"), {
    what: `the leader (${leader.identity}) to reconcile Deployment web`,
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  // Both caches are warm, only one acts.
  expect(await leader.metric("healthgate_leader", { lease: leaseName })).toBe(1);
  expect(await standby.metric("healthgate_leader", { lease: leaseName })).toBe(0);
  expect(await standby.metric("healthgate_watch_relists_total", { reason: "initial" })).toBeGreaterThan(0);
  expect(await workloadWrites(standby), standby.output()).toBe(0);
  expect(await workloadWrites(leader)).toBeGreaterThan(0);
  return { leader, standby };
}

describe("Leader failover between two healthgate processes", () => {
  const ns = useTestNamespace();
  beforeAll(() => installCrd());

  it(
    "after SIGKILL of the leader, the standby takes the expired lease and reconciles what changed meanwhile",
    { timeout: 180_000 },
    async () => {
      // Given two operators, one leading, and a Deployment it reconciled
      const namespace = ns.name;
      const leaseName = `healthgate-${namespace}`;
      const { leader, standby } = await twoOperators(namespace, leaseName);
      const before = await readLease(namespace, leaseName);

      // When the leader is killed outright (no chance to release the lease)
      const killedAt = Date.now();
      leader.child.kill("SIGKILL");
      const exit = await leader.exited;
      expect(exit.signal).toBe("SIGKILL");
      // and a new Deployment appears right after
      await testClients().apps.createNamespacedDeployment({
        namespace,
        body: frontendDeployment("checkout"),
      });

      // Then the standby takes the lease once it expires (15 s) …
      const lease = await waitFor(
        async () => {
          const l = await readLease(namespace, leaseName);
          expect(l?.holder, `Lease ${leaseName} holder`).toBe(standby.identity);
          return l!;
        },
        { what: `${standby.identity} to take the Lease`, timeoutMs: 30_000, intervalMs: 100 },
      );
      expect(lease.transitions).toBe(before!.transitions + 1);
      // … and reconciles the Deployment created while nobody led
      await waitFor(() => reconciledBy(testClients().apps, namespace, "checkout"), {
        what: `${standby.identity} to reconcile Deployment checkout`,
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      const reconciledAt = Date.now();
      expect(await standby.metric("healthgate_leader", { lease: leaseName })).toBe(1);

      const takeoverMs = Date.parse(lease.acquireTime!) - killedAt;
      console.log(
        `[resilience] SIGKILL failover: lease taken ${(takeoverMs / 1000).toFixed(1)} s after the kill ` +
          `(lease 15 s, goal <= 20 s); new Deployment reconciled ${((reconciledAt - killedAt) / 1000).toFixed(1)} s after the kill`,
      );
    },
  );

  it(
    "after SIGTERM the leader releases the lease and exits 0, and the standby takes over at its next poll",
    { timeout: 180_000 },
    async () => {
      // Given two operators, one leading
      const namespace = ns.name;
      const leaseName = `healthgate-${namespace}`;
      const { leader, standby } = await twoOperators(namespace, leaseName);

      // When the leader gets SIGTERM (what the kubelet sends on a rollout or drain)
      const termAt = Date.now();
      leader.child.kill("SIGTERM");

      // Then it exits 0 within its 10 s budget
      const exit = await Promise.race([
        leader.exited,
        delay(15_000, undefined, { ref: false }).then(() => ({ code: null, signal: null, at: Number.NaN })),
      ]);
      expect(exit, `${leader.identity} did not exit 0:\n${leader.output()}`).toMatchObject({ code: 0 });
      expect(exit.at - termAt).toBeLessThanOrEqual(10_000);
      // having released the lease rather than letting it expire
      expect(leader.output()).toContain("released the leader lease");

      // and the standby takes over without waiting for a 15 s expiry
      await testClients().apps.createNamespacedDeployment({
        namespace,
        body: frontendDeployment("checkout"),
      });
      const lease = await waitFor(
        async () => {
          const l = await readLease(namespace, leaseName);
          expect(l?.holder, `Lease ${leaseName} holder`).toBe(standby.identity);
          return l!;
        },
        { what: `${standby.identity} to take the released Lease`, timeoutMs: 15_000, intervalMs: 100 },
      );
      await waitFor(() => reconciledBy(testClients().apps, namespace, "checkout"), {
        what: `${standby.identity} to reconcile Deployment checkout`,
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      console.log(
        `[resilience] SIGTERM handover: leader exited 0 after ${((exit.at - termAt) / 1000).toFixed(1)} s; ` +
          `lease taken ${((Date.parse(lease.acquireTime!) - termAt) / 1000).toFixed(1)} s after SIGTERM`,
      );
    },
  );
});

// ---- a plane of our own: its API server can be stopped without disturbing other files ------

interface PrivatePlane {
  plane: ControlPlane;
  kc: KubeConfig;
  apps: AppsV1Api;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  stop(): Promise<void>;
}

async function privatePlane(extraApiServerArgs: string[] = []): Promise<PrivatePlane> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "healthgate-resilience-"));
  // No controller manager: nothing here needs ReplicaSets or pods, and it would only add load.
  const plane = await startControlPlane({
    binDir: inject("k8sBinDir"),
    dataDir,
    controllerManager: false,
    extraApiServerArgs,
  });
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  return {
    plane,
    kc,
    apps: kc.makeApiClient(AppsV1Api),
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    async stop() {
      await plane.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The CRD, namespace "shop", the frontend policy and Deployment "web" it selects; returns the namespace. */
async function seedShop(p: PrivatePlane): Promise<string> {
  const namespace = "shop";
  await installCrd(p.plane.kubeconfigPath);
  await p.core.createNamespace({ body: { metadata: { name: namespace } } });
  await p.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace,
    body: { ...frontendPolicy(), metadata: { name: "frontend", namespace } },
  });
  await p.apps.createNamespacedDeployment({ namespace, body: frontendDeployment("web") });
  return namespace;
}

async function counter(metrics: HealthgateMetrics, name: string, labels: Record<string, string> = {}) {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

async function readyzStatus(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
}

describe("A kube-apiserver restart under a running operator", () => {
  it(
    "is survived: informers recover by themselves and later changes are reconciled; /readyz stays OK",
    { timeout: 240_000 },
    async () => {
      const p = await privatePlane();
      let operator: Operator | undefined;
      try {
        // Given a policy, a Deployment and healthgate (leader election on, as the chart runs it)
        const namespace = await seedShop(p);
        operator = new Operator({
          kubeConfig: p.kc,
          logger: createLogger(process.env.HEALTHGATE_TEST_LOG_LEVEL === "debug" ? "debug" : "silent"),
          namespaces: [namespace],
          port: 0,
          leaderElection: { enabled: true, namespace, name: "healthgate" },
          identity: "healthgate-restart-test",
        });
        await operator.start();
        const port = operator.boundPort!;
        await waitFor(() => reconciledBy(p.apps, namespace, "web"), {
          what: "healthgate to reconcile Deployment web",
          timeoutMs: 30_000,
        });
        const recoveries = () =>
          Promise.all([
            counter(operator!.metrics, "healthgate_watch_restarts_total"),
            counter(operator!.metrics, "healthgate_watch_relists_total"),
          ]).then(([restarts, relists]) => ({ restarts, relists }));
        const before = await recoveries();

        // When kube-apiserver stops (etcd keeps the data) …
        await p.plane.stopApiServer();
        // … healthgate keeps serving from its caches: /readyz stays OK while the server is away
        await delay(3_000);
        expect(await readyzStatus(port)).toBe(200);
        // … and kube-apiserver comes back on the same port
        const restartedAt = Date.now();
        await p.plane.startApiServer();
        // and right after, a policy edit and a new Deployment
        await p.apps.createNamespacedDeployment({ namespace, body: frontendDeployment("checkout") });
        await p.custom.patchNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace,
          name: "frontend",
          body: [{ op: "add", path: "/spec/endpoints/deep/paths/-", value: "/livez" }],
        });

        // Then, with the same operator (no restart), both changes are reconciled: the policy's
        // new generation is observed and its deep path now flags web's liveness probe …
        await waitFor(
          async () => {
            const policy = (await p.custom.getNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              plural: PLURAL,
              namespace,
              name: "frontend",
            })) as HealthPolicyObject;
            expect(policy.status?.observedGeneration, "status.observedGeneration").toBe(
              policy.metadata.generation,
            );
            const web = await p.apps.readNamespacedDeployment({ namespace, name: "web" });
            expect(deploymentCondition(web, "LivenessShallow")).toMatchObject({
              status: "False",
              reason: "LivenessDeep",
            });
            return true;
          },
          {
            what: "healthgate to reconcile the policy edit made after the restart",
            timeoutMs: 90_000,
            intervalMs: 250,
          },
        );
        // … and the new Deployment carries its conditions
        await waitFor(() => reconciledBy(p.apps, namespace, "checkout"), {
          what: "healthgate to reconcile Deployment checkout, created after the restart",
          timeoutMs: 30_000,
        });
        console.log(
          `[resilience] kube-apiserver restart: changes made after it reconciled ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the restart began`,
        );
        // because its watches noticed the outage and came back by themselves
        const after = await recoveries();
        expect(after.restarts + after.relists, JSON.stringify({ before, after })).toBeGreaterThan(
          before.restarts + before.relists,
        );
        // and /readyz is OK
        await waitFor(async () => (await readyzStatus(port)) === 200, {
          what: "healthgate's /readyz to pass",
          timeoutMs: 10_000,
        });
      } finally {
        await operator?.stop();
        await p.stop();
      }
    },
  );
});

// ---- 429: a kube-apiserver that sheds load -------------------------------------------------

/** A kubeconfig for a ServiceAccount bound to cluster-admin: a client outside system:masters. */
async function serviceAccountKubeConfig(
  p: PrivatePlane,
  namespace: string,
  name: string,
): Promise<KubeConfig> {
  const rbac = p.kc.makeApiClient(RbacAuthorizationV1Api);
  await p.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: `${namespace}-${name}` },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    },
  });
  const token = (
    await p.core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    })
  ).status!.token;
  const cluster = p.kc.getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "plane", server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
    users: [{ name, token }],
    contexts: [{ name: "sa", cluster: "plane", user: name }],
    currentContext: "sa",
  });
  return kc;
}

describe("A kube-apiserver that answers 429 Too Many Requests", () => {
  it(
    "makes healthgate wait as Retry-After says, and it still syncs and reconciles",
    { timeout: 240_000 },
    async () => {
      // Given an API server that serves one read and one write at a time and refuses the rest
      // with 429 and Retry-After: 1 (the max-in-flight filter; system:masters is exempt, so
      // the test's own admin requests always pass)
      const p = await privatePlane([
        "--enable-priority-and-fairness=false",
        "--max-requests-inflight=1",
        "--max-mutating-requests-inflight=1",
      ]);
      let operator: Operator | undefined;
      const load = new AbortController();
      let loadRuns: Promise<void>[] = [];
      try {
        const namespace = await seedShop(p);
        const saKubeConfig = await serviceAccountKubeConfig(p, namespace, "healthgate");
        // and other clients (outside system:masters) keeping it busy
        const busy = saKubeConfig.makeApiClient(CoreV1Api);
        let loadRequests = 0;
        let loadRefused = 0;
        await p.core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "busy" } } });
        const reads = Array.from({ length: 4 }, async () => {
          while (!load.signal.aborted) {
            loadRequests++;
            await busy.listNamespacedConfigMap({ namespace: "kube-system" }).catch(() => loadRefused++);
          }
        });
        const writes = Array.from({ length: 4 }, async (_, i) => {
          while (!load.signal.aborted) {
            loadRequests++;
            await busy
              .patchNamespacedConfigMap(
                { namespace, name: "busy", body: { data: { [`writer-${i}`]: String(loadRequests) } } },
                mergePatch,
              )
              .catch(() => loadRefused++);
          }
        });
        loadRuns = [...reads, ...writes];
        await waitFor(() => loadRefused > 0, { what: "the load to draw 429s", timeoutMs: 30_000 });

        // When healthgate starts as one of those clients
        const lines: string[] = [];
        operator = new Operator({
          kubeConfig: saKubeConfig,
          logger: createLogger("debug", { write: (line: string) => void lines.push(line) }),
          namespaces: [namespace],
          port: 0,
          leaderElection: { enabled: true, namespace, name: "healthgate" },
          identity: "healthgate-429-test",
        });
        await operator.start();

        // Then it syncs its caches and reconciles, throttled as it is
        await waitFor(() => reconciledBy(p.apps, namespace, "web"), {
          what: "healthgate to reconcile Deployment web under load",
          timeoutMs: 120_000,
          intervalMs: 250,
        });
        expect(await readyzStatus(operator.boundPort!)).toBe(200);
        // having been refused, and having waited at least the second Retry-After asked for:
        // informers before they list or watch again, reconciles before they run again
        const refusals =
          (await operator.metrics.registry.getSingleMetric("healthgate_api_requests_total")?.get())?.values
            .filter((v) => v.labels.code === "429")
            .map((v) => `${v.labels.verb} ${v.labels.resource} ×${v.value}`) ?? [];
        expect(refusals.length, "requests healthgate saw refused with 429").toBeGreaterThan(0);
        const logged = lines.map(
          (l) => JSON.parse(l) as { msg?: string; delayMs?: number; retryInMs?: number; err?: unknown },
        );
        const refusedBy429 = (l: { err?: unknown }) => /\b429\b/.test(JSON.stringify(l.err ?? ""));
        const informerRetries = logged.filter(
          (l) =>
            (l.msg === "list failed; retrying" || l.msg === "watch failed; restarting") && refusedBy429(l),
        );
        const reconcileRetries = logged.filter((l) => l.msg === "reconcile failed" && refusedBy429(l));
        console.log(
          `[resilience] 429: refused ${refusals.join(", ")} (load: ${loadRefused}/${loadRequests} refused); ` +
            `informer retries waited ${informerRetries.map((r) => r.delayMs).join(", ") || "-"} ms; ` +
            `reconcile retries in ${reconcileRetries.map((r) => r.retryInMs).join(", ") || "-"} ms`,
        );
        expect(informerRetries.length + reconcileRetries.length).toBeGreaterThan(0);
        for (const retry of informerRetries) expect(retry.delayMs).toBe(1000);
        for (const retry of reconcileRetries) expect(retry.retryInMs).toBeGreaterThanOrEqual(1000);
      } finally {
        load.abort();
        await Promise.all(loadRuns);
        await operator?.stop();
        await p.stop();
      }
    },
  );
});

describe("SIGTERM before the caches sync", () => {
  const ns = useTestNamespace();

  it("stops promptly when the caches can never sync (credentials the API server refuses)", async () => {
    // Given credentials the API server refuses (as missing RBAC or a missing CRD would, every
    // list fails and the caches never sync)
    const admin = testClients().kc;
    const cluster = admin.getCurrentCluster()!;
    const refused = new KubeConfig();
    refused.loadFromOptions({
      clusters: [cluster],
      users: [{ name: "refused", token: "not-a-token-the-server-knows" }],
      contexts: [{ name: "refused", cluster: cluster.name, user: "refused" }],
      currentContext: "refused",
    });
    const dir = await mkdtemp(path.join(tmpdir(), "healthgate-refused-"));
    const kubeconfig = path.join(dir, "kubeconfig");
    await writeFile(kubeconfig, refused.exportConfig());
    try {
      const op = await startOperatorProcess({
        identity: "healthgate-unsynced",
        namespace: ns.name,
        leaseName: "healthgate-unsynced",
        kubeconfig,
      });
      await waitFor(
        () => {
          expect(op.output(), "its log").toContain("list failed; retrying");
          return true;
        },
        { what: "the operator to be retrying its lists", timeoutMs: 30_000, intervalMs: 100 },
      );
      const ready = await fetch(`http://127.0.0.1:${op.port}/readyz`);
      expect(ready.status, "unsynced caches keep /readyz failing").not.toBe(200);

      // When it gets SIGTERM
      const sentAt = Date.now();
      op.child.kill("SIGTERM");

      // Then it exits cleanly, within its 10 s shutdown budget, without waiting for the caches
      const exit = await Promise.race([op.exited, delay(15_000).then(() => undefined)]);
      expect(exit, `still running 15 s after SIGTERM:\n${op.output()}`).toBeDefined();
      expect({ code: exit!.code, signal: exit!.signal }, op.output()).toEqual({ code: 0, signal: null });
      expect(exit!.at - sentAt).toBeLessThan(10_000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
