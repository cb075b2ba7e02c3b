// A real Kubernetes control plane on loopback: etcd, kube-apiserver and
// kube-controller-manager (the real Deployment, ReplicaSet, EndpointSlice,
// namespace and garbage-collector controllers), started from a directory of
// binaries. With `nodes`, also kube-scheduler and one real kubelet per node
// (src/devcluster/nodes.ts), and node lifecycle among the controllers; without,
// whoever needs running pods plays the kubelet (test/support/podSimulator.ts).
//
// Used by the integration tests and by `healthgate dev`, so it depends on
// node: modules only.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { checkBinaries, findBinaries, NODE_BINARIES } from "./binaries.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { freePort, httpGet, pollUntil, type TlsClient } from "./net.ts";
import { startNodes, type NodeSpec, type Taint } from "./nodes.ts";
import { createPki } from "./pki.ts";
import { LoggedProcess, type ProcessRecord } from "./processes.ts";

export { KUBERNETES_VERSION, cacheDir, defaultBinDir } from "./binaries.ts";
export type { ProcessRecord } from "./processes.ts";

export interface ControlPlaneOptions {
  /** Directory holding etcd, kube-apiserver and kube-controller-manager. */
  binDir: string;
  /** Where PKI, etcd data, kubeconfig and logs go. Default: a fresh temporary directory, removed by stop(). */
  dataDir?: string;
  /** Loopback address every component binds. Default 127.0.0.1. */
  host?: string;
  /** ClusterIPs come from here. Nothing ever dials them; a documentation range keeps them off real networks. */
  serviceClusterIpRange?: string;
  /** Start components in their own session so they outlive this process (the dev CLI). Default false. */
  detached?: boolean;
  /** Per component start-up budget. Default 60 s (kube-apiserver on 2 cores needs ~4 s, more under load). */
  startTimeoutMs?: number;
  /** SIGTERM-to-SIGKILL grace on stop. Default 10 s. */
  stopGraceMs?: number;
  /** Run kube-controller-manager at all. Default true; false gives a bare API server (cheaper, no controllers). */
  controllerManager?: boolean;
  /** kube-controller-manager --controllers. Default: all; all but node lifecycle when there are no nodes. */
  controllers?: readonly string[];
  /** Nodes that run the real kubelet (zonedNodes() makes them); with any, kube-scheduler runs too. Default none. */
  nodes?: readonly NodeSpec[];
  /** Taints every node registers with. */
  nodeTaints?: readonly Taint[];
  extraApiServerArgs?: readonly string[];
  /**
   * An audit.k8s.io/v1 Policy (YAML or JSON). When set, kube-apiserver writes its audit log, one
   * JSON event a line, to `auditLogPath` (the tests prove least privilege from it).
   */
  auditPolicy?: string;
  extraControllerManagerArgs?: readonly string[];
  /** Progress messages ("etcd ready in 310 ms"). Default: silent. */
  log?: (message: string) => void;
}

export interface ControlPlanePids {
  etcd: number | undefined;
  kubeApiServer: number | undefined;
  kubeControllerManager: number | undefined;
  kubeScheduler: number | undefined;
}

export interface ControlPlane {
  /** Admin kubeconfig (client certificate in system:masters), credentials embedded. */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** The CA that signed the serving certificate and every client certificate. */
  readonly caFile: string;
  /** gitVersion reported by /version, e.g. "v1.37.2". */
  readonly version: string;
  readonly dataDir: string;
  readonly binDir: string;
  /** PIDs of the running components; kubeApiServer changes across stopApiServer()/startApiServer(). */
  readonly pids: ControlPlanePids;
  /** Identity (PID + start time) of each running component, for a state file. */
  processes(): ProcessRecord[];
  /** kube-apiserver's audit log, when an audit policy was given. */
  readonly auditLogPath: string | undefined;
  /** Milliseconds from the call to startControlPlane until every component was ready. */
  readonly startupMs: number;
  /** Stops every component (controller manager, API server, etcd) and removes a temporary data dir. Idempotent. */
  stop(): Promise<void>;
  /** Stops kube-apiserver alone; etcd keeps the data. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again with the same flags and port; resolves once /readyz passes. */
  startApiServer(): Promise<void>;
}

const ADMIN_USER = "healthgate-admin";
const CONTROLLERS_WITHOUT_NODES = ["*", "-node-lifecycle-controller"];

/** The last lines of a component's log, for error messages. */
async function logTail(file: string, lines = 25): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A promise that rejects, with the component's log tail, if it exits. Used to stop waiting early. */
function diesDuringStartup(component: LoggedProcess): Promise<never> {
  return component.exited.then(async (exit) => {
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    throw new Error(
      `${component.name} exited with ${how} during start-up; last lines of ${component.logPath}:\n` +
        (await logTail(component.logPath)),
    );
  });
}

async function freePorts(host: string, count: number): Promise<number[]> {
  const ports = new Set<number>();
  // The kernel hands out different ephemeral ports to sockets open at the same
  // time, but freePort closes its socket; retry the rare repeat.
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}

/** Starts etcd, kube-apiserver and kube-controller-manager and waits until all three are ready. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const began = Date.now();
  const log = options.log ?? (() => {});
  const host = options.host ?? "127.0.0.1";
  const serviceRange = options.serviceClusterIpRange ?? "198.51.100.0/24";
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const stopGraceMs = options.stopGraceMs ?? 10_000;
  const detached = options.detached ?? false;
  const binDir = path.resolve(options.binDir);
  await checkBinaries(binDir);
  const nodes = options.nodes ?? [];
  const nodeBinaries = nodes.length > 0 ? await findBinaries(binDir, NODE_BINARIES) : undefined;

  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir
    ? path.resolve(options.dataDir)
    : await mkdtemp(path.join(os.tmpdir(), "healthgate-plane-"));
  const file = (name: string) => path.join(dataDir, name);

  const [etcdClientPort, etcdPeerPort, apiPort] = (await freePorts(host, 3)) as [number, number, number];
  const server = `https://${host}:${apiPort}`;
  const firstServiceIp = serviceRange.replace(/\.0\/\d+$/, ".1");
  const pki = await createPki(file("pki"), {
    adminUser: ADMIN_USER,
    servingSans: [
      `IP:${host}`,
      "DNS:localhost",
      `IP:${firstServiceIp}`,
      "DNS:kubernetes",
      "DNS:kubernetes.default",
      "DNS:kubernetes.default.svc",
      "DNS:kubernetes.default.svc.cluster.local",
    ],
  });
  const kubeconfigPath = file("admin.kubeconfig");
  await writeKubeconfig(kubeconfigPath, server, {
    caFile: pki.caCert,
    certFile: pki.adminCert,
    keyFile: pki.adminKey,
    user: ADMIN_USER,
  });
  const admin: TlsClient = { caFile: pki.caCert, certFile: pki.adminCert, keyFile: pki.adminKey };
  const auditLogPath = options.auditPolicy !== undefined ? file("audit.log") : undefined;
  if (options.auditPolicy !== undefined) await writeFile(file("audit-policy.yaml"), options.auditPolicy);
  const auditArgs = auditLogPath
    ? [
        `--audit-policy-file=${file("audit-policy.yaml")}`,
        `--audit-log-path=${auditLogPath}`,
        "--audit-log-format=json",
      ]
    : [];

  const etcdUrl = `http://${host}:${etcdClientPort}`;
  const etcdPeerUrl = `http://${host}:${etcdPeerPort}`;
  const etcd = new LoggedProcess(
    "etcd",
    path.join(binDir, "etcd"),
    [
      "--name=default",
      `--data-dir=${file("etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=default=${etcdPeerUrl}`,
      // Throw-away data: skipping fsync makes every write several times faster.
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ],
    file("etcd.log"),
    detached,
  );

  const apiServer = new LoggedProcess(
    "kube-apiserver",
    path.join(binDir, "kube-apiserver"),
    [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=${host}`,
      `--secure-port=${apiPort}`,
      // A loopback advertise address is refused unless nothing reconciles the
      // `kubernetes` Endpoints to it.
      `--advertise-address=${host}`,
      "--endpoint-reconciler-type=none",
      `--cert-dir=${file("pki")}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      "--authorization-mode=Node,RBAC",
      // A node's kubelet may change only its own Node and the pods bound to it (with the Node authorizer).
      "--enable-admission-plugins=NodeRestriction",
      // Makes TokenRequest (and so ServiceAccount identities in tests) work.
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki.serviceAccountPublicKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      `--service-cluster-ip-range=${serviceRange}`,
      "--allow-privileged=true",
      // With it, pods in a fresh namespace are refused until the controller
      // manager has created its `default` ServiceAccount, and get a token
      // volume that no kubelet will ever mount.
      "--disable-admission-plugins=ServiceAccount",
      // Owner references need delete on the object, blockOwnerDeletion update on the owner's finalizers (as on OpenShift).
      "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
      "--profiling=false",
      // Without it, after SIGTERM the process keeps waiting on clients' open
      // watches (the controller manager's), well past a 10 s grace; with it,
      // watches are closed after 2 s and stopApiServer() takes about a second.
      "--shutdown-watch-termination-grace-period=2s",
      // Aggregated APIs (an APIService backed by a Service) are dialled at the Service's
      // endpoint rather than its ClusterIP: nothing routes ClusterIPs here (no kube-proxy).
      "--enable-aggregator-routing=true",
      ...auditArgs,
      ...(options.extraApiServerArgs ?? []),
    ],
    file("kube-apiserver.log"),
    detached,
  );

  const controllerManager = new LoggedProcess(
    "kube-controller-manager",
    path.join(binDir, "kube-controller-manager"),
    [
      `--kubeconfig=${kubeconfigPath}`,
      "--leader-elect=false",
      `--controllers=${(options.controllers ?? (nodes.length > 0 ? ["*"] : CONTROLLERS_WITHOUT_NODES)).join(",")}`,
      `--root-ca-file=${pki.caCert}`,
      `--service-account-private-key-file=${pki.serviceAccountKey}`,
      // Lets CertificateSigningRequests be signed, should a test need a cert from the cluster CA.
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      // No HTTPS endpoint: it would need a fixed port (10257) that two planes would share.
      "--secure-port=0",
      ...(options.extraControllerManagerArgs ?? []),
    ],
    file("kube-controller-manager.log"),
    detached,
  );

  const scheduler = new LoggedProcess(
    "kube-scheduler",
    nodeBinaries?.["kube-scheduler"] ?? "kube-scheduler",
    [
      `--kubeconfig=${kubeconfigPath}`,
      "--leader-elect=false",
      // No HTTPS endpoint: its fixed default port (10259) would be shared by two planes.
      "--secure-port=0",
    ],
    file("kube-scheduler.log"),
    detached,
  );

  const withControllerManager = options.controllerManager ?? true;
  const components = withControllerManager ? [etcd, apiServer, controllerManager] : [etcd, apiServer];
  if (nodes.length > 0) components.push(scheduler);
  const timed = async <T>(what: string, step: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    const value = await step();
    log(`${what} ready in ${Date.now() - t0} ms`);
    return value;
  };

  const waitApiServerReady = () =>
    pollUntil(async () => ((await httpGet(`${server}/readyz`, admin)).status === 200 ? true : undefined), {
      what: `kube-apiserver ${server}/readyz (log: ${apiServer.logPath})`,
      timeoutMs: startTimeoutMs,
      abort: diesDuringStartup(apiServer),
    });

  let version: string;
  try {
    await timed("etcd", async () => {
      await etcd.start();
      await pollUntil(
        async () => (/"health":\s*"true"/.test((await httpGet(`${etcdUrl}/health`)).body) ? true : undefined),
        {
          what: `etcd ${etcdUrl}/health (log: ${etcd.logPath})`,
          timeoutMs: startTimeoutMs,
          abort: diesDuringStartup(etcd),
        },
      );
    });
    await timed("kube-apiserver", async () => {
      await apiServer.start();
      await waitApiServerReady();
    });
    if (withControllerManager) {
      await timed("kube-controller-manager", async () => {
        await controllerManager.start();
        // It serves no health endpoint here (--secure-port=0); the `default`
        // ServiceAccount, created by its serviceaccount controller, shows its
        // informers synced and its controllers run.
        await pollUntil(
          async () =>
            (await httpGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, admin)).status ===
            200
              ? true
              : undefined,
          {
            what: `kube-controller-manager to create ServiceAccount default/default (log: ${controllerManager.logPath})`,
            timeoutMs: startTimeoutMs,
            abort: diesDuringStartup(controllerManager),
          },
        );
      });
    }
    if (nodeBinaries) {
      await timed("kube-scheduler", () => scheduler.start());
      await timed(`${nodes.length} nodes`, async () => {
        components.push(
          ...(await startNodes({
            nodes,
            binary: nodeBinaries["healthgate-node"],
            dataDir,
            pkiDir: file("pki"),
            server,
            admin,
            taints: options.nodeTaints ?? [],
            clusterDns: serviceRange.replace(/\.0\/\d+$/, ".10"),
            detached,
            timeoutMs: Math.max(startTimeoutMs, 120_000),
          })),
        );
      });
    }
    const info = JSON.parse((await httpGet(`${server}/version`, admin)).body) as { gitVersion?: string };
    version = info.gitVersion ?? "unknown";
  } catch (err) {
    for (const component of [...components].reverse()) await component.stop(stopGraceMs).catch(() => {});
    // Keep the data dir: its logs explain the failure.
    throw new Error(
      `control plane did not start (data and logs kept in ${dataDir}): ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }

  const startupMs = Date.now() - began;
  log(`control plane ${version} at ${server} up in ${startupMs} ms`);
  let stopped = false;
  return {
    kubeconfigPath,
    server,
    auditLogPath,
    caFile: pki.caCert,
    version,
    dataDir,
    binDir,
    startupMs,
    get pids(): ControlPlanePids {
      return {
        etcd: etcd.record?.pid,
        kubeApiServer: apiServer.record?.pid,
        kubeControllerManager: controllerManager.record?.pid,
        kubeScheduler: scheduler.record?.pid,
      };
    },
    processes: () => components.flatMap((c) => (c.record ? [c.record] : [])),
    async stop() {
      if (stopped) return;
      stopped = true;
      // Reverse start order: clients before the servers they talk to.
      for (const component of [...components].reverse()) await component.stop(stopGraceMs);
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    },
    stopApiServer: () => apiServer.stop(stopGraceMs),
    async startApiServer() {
      if (apiServer.record) return;
      await apiServer.start();
      await waitApiServerReady();
    },
  };
}
