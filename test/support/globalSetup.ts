// One control plane per integration run: started here, or reused when
// hack/cluster.ts recorded one that lives in this network namespace and
// answers. Tests read its kubeconfig with inject("kubeconfigPath") (see
// kube.ts); child processes get HEALTHGATE_TEST_KUBECONFIG.
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { defaultBinDir, startControlPlane, type ControlPlane } from "../../src/devcluster/controlPlane.ts";
import { currentNetns } from "../../src/devcluster/net.ts";
import type { ProcessRecord } from "../../src/devcluster/processes.ts";
import { testPlaneNodes } from "../../src/devcluster/nodes.ts";
import {
  isPlaneReachable,
  isPlaneRunning,
  readPlaneState,
  type PlaneState,
} from "../../src/devcluster/state.ts";
import { createOperatorIdentity } from "./operatorIdentity.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin kubeconfig of the run's plane. */
    kubeconfigPath: string;
    /** Directory of the plane's binaries (kubectl included when built by hack/build-k8s.sh). */
    k8sBinDir: string;
    /** Pod IPs of the run come from here; simulators claim disjoint blocks of it. */
    podCidr: string;
    /** Whether pod IPs are routable on loopback outside 127/8, so EndpointSlices accept them. */
    podIpsPublishable: boolean;
    /** Scratch directory of this run (pod IP block claims). */
    runDir: string;
    /** The real nodes' kubelet processes, so tests can fail when one has died. */
    nodeProcesses: ProcessRecord[];
    /** Kubeconfig of the chart's ServiceAccount, with the chart's RBAC: what operators in tests run as. */
    operatorKubeconfigPath: string;
  }
}

/**
 * The simulators' range inside the test network namespace (hack/test.sh routes 198.18.0.0/15
 * to loopback); the real nodes' pods and addresses use the other half, 198.19.0.0/16.
 */
const NETNS_POD_CIDR = "198.18.0.0/16";
/** Outside it: any 127.x address can be bound, but EndpointSlices refuse loopback addresses. */
const LOOPBACK_POD_CIDR = "127.18.0.0/16";

function canBind(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(0, address, () => server.close(() => resolve(true)));
  });
}

/**
 * kube-apiserver's audit policy for a run: every request a ServiceAccount makes (the operator
 * runs as one), at Metadata level, once it completed; nothing else (admin, controllers).
 */
const AUDIT_POLICY = JSON.stringify({
  apiVersion: "audit.k8s.io/v1",
  kind: "Policy",
  omitStages: ["RequestReceived"],
  rules: [{ level: "Metadata", userGroups: ["system:serviceaccounts"] }, { level: "None" }],
});

const say = (message: string) => process.stderr.write(`[globalSetup] ${message}\n`);

async function reusablePlane(): Promise<PlaneState | undefined> {
  if (process.env.HEALTHGATE_FRESH_PLANE) return undefined;
  const state = await readPlaneState();
  if (!state || state.netns !== (await currentNetns())) return undefined;
  if (!(await isPlaneRunning(state)) || !(await isPlaneReachable(state))) return undefined;
  say(`reusing the plane recorded by hack/cluster.ts: ${state.server} (${state.version})`);
  return state;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runDir = await mkdtemp(path.join(os.tmpdir(), "healthgate-test-run-"));
  const podCidr =
    process.env.HEALTHGATE_TEST_POD_CIDR ??
    ((await canBind("198.18.0.1")) ? NETNS_POD_CIDR : LOOPBACK_POD_CIDR);
  const podIpsPublishable = !podCidr.startsWith("127.");
  if (!podIpsPublishable) {
    say(
      `198.18.0.0/15 is not local here: pod IPs come from ${podCidr}, which EndpointSlices refuse; run through npm test`,
    );
  }

  let plane: ControlPlane | undefined;
  let kubeconfigPath: string;
  let k8sBinDir: string;
  const reused = await reusablePlane();
  if (reused) {
    ({ kubeconfigPath, binDir: k8sBinDir } = reused);
  } else {
    plane = await startControlPlane({
      binDir: defaultBinDir(),
      log: say,
      auditPolicy: AUDIT_POLICY,
      ...testPlaneNodes(podIpsPublishable),
    });
    ({ kubeconfigPath, binDir: k8sBinDir } = plane);
  }
  const operatorKubeconfigPath = path.join(runDir, "operator.kubeconfig");
  await createOperatorIdentity({
    adminKubeconfig: kubeconfigPath,
    kubectl: path.join(k8sBinDir, "kubectl"),
    kubeconfigOut: operatorKubeconfigPath,
  });

  process.env.HEALTHGATE_TEST_KUBECONFIG = kubeconfigPath;
  process.env.HEALTHGATE_TEST_RUN_DIR = runDir;
  process.env.HEALTHGATE_TEST_POD_CIDR = podCidr;
  process.env.HEALTHGATE_TEST_OPERATOR_KUBECONFIG = operatorKubeconfigPath;
  // Read by test/audit/rbac.test.ts, which runs after every integration file (groupOrder).
  process.env.HEALTHGATE_TEST_AUDIT_LOG = plane?.auditLogPath ?? "";
  project.provide("operatorKubeconfigPath", operatorKubeconfigPath);
  project.provide("kubeconfigPath", kubeconfigPath);
  project.provide("k8sBinDir", k8sBinDir);
  project.provide("podCidr", podCidr);
  project.provide("podIpsPublishable", podIpsPublishable);
  project.provide("runDir", runDir);
  const nodeNames = new Set(testPlaneNodes(podIpsPublishable).nodes.map((n) => n.name));
  const processes = reused ? reused.processes : (plane?.processes() ?? []);
  project.provide(
    "nodeProcesses",
    processes.filter((p) => nodeNames.has(p.name)),
  );

  return async () => {
    if (plane) {
      const started = Date.now();
      await plane.stop();
      say(`control plane stopped in ${Date.now() - started} ms`);
    }
    await rm(runDir, { recursive: true, force: true });
  };
}
