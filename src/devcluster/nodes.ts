// Nodes of the local plane that run the real kubelet: healthgate-node (built by
// hack/build-k8s.sh from hack/k8sbin/cmd/healthgate-node) is kubemark's hollow
// kubelet with the real prober on a fake container runtime. Each node has its
// own zone, pod CIDR, address and kubelet port, and credentials that the Node
// authorizer knows (O=system:nodes, CN=system:node:<name>). Its Node object is
// created before its kubelet starts: registration by the kubelet races its
// CSINode setup and can leave a node NotReady for minutes.
//
// The kubelet dials each pod's probes at the pod's own IP, so something must
// serve there (src/devcluster/podApps.ts). Pod and node addresses come from
// 198.19.0.0/16 inside the test network namespace (hack/test.sh routes
// 198.18.0.0/15 to loopback; simulated pods keep to 198.18.0.0/16), or from
// 127.19.0.0/16 on a host's loopback (`healthgate dev`).
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { promisify } from "node:util";
import path from "node:path";
import { writeKubeconfig } from "./kubeconfig.ts";
import { freePort, httpGet, httpRequest, pollUntil, type TlsClient } from "./net.ts";
import { issueClientCert } from "./pki.ts";
import { LoggedProcess } from "./processes.ts";

export const ZONE_LABEL = "topology.kubernetes.io/zone";

export interface NodeSpec {
  name: string;
  zone: string;
  /** The node's InternalIP; its kubelet serves on it. */
  ip: string;
  /** Pod IPs of this node come from here, one per pod sandbox. */
  podCidr: string;
}

export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

/**
 * The taint of the test plane's nodes: only pods that tolerate it (those of tests written for
 * the real kubelet) are scheduled there, so the scheduler never takes a pod that the pod
 * simulator (test/support/podSimulator.ts) is about to bind to one of its simulated nodes.
 */
export const REAL_NODE_TAINT: Taint = {
  key: "test.healthgate.io/real-kubelet",
  value: "true",
  effect: "NoSchedule",
};

/** The test plane's nodes: three zones, addresses for the test network namespace or (outside one) loopback. */
export function testPlaneNodes(podIpsPublishable: boolean): { nodes: NodeSpec[]; nodeTaints: Taint[] } {
  return { nodes: zonedNodes(3, podIpsPublishable ? "198.19" : "127.19"), nodeTaints: [REAL_NODE_TAINT] };
}

/** First octets of node and pod addresses: routed to loopback in the test network namespace, or loopback itself. */
export type AddressBase = "198.19" | "127.19";

/**
 * `count` nodes named node-a, node-b, … in zones zone-a, zone-b, … (one zone each),
 * node i at <base>.255.<i+1> with pods in <base>.<16·i>.0/20.
 */
export function zonedNodes(count: number, base: AddressBase): NodeSpec[] {
  if (!Number.isInteger(count) || count < 0 || count > 15) {
    throw new Error(`node count must be an integer from 0 to 15, got ${count}`);
  }
  return Array.from({ length: count }, (_, i) => {
    const letter = String.fromCharCode(97 + i);
    return {
      name: `node-${letter}`,
      zone: `zone-${letter}`,
      ip: `${base}.255.${i + 1}`,
      podCidr: `${base}.${16 * i}.0/20`,
    };
  });
}

export interface StartNodesOptions {
  nodes: readonly NodeSpec[];
  /** Path of the healthgate-node binary. */
  binary: string;
  /** Each node keeps its kubeconfig, kubelet directory and log under <dataDir>/nodes/<name>. */
  dataDir: string;
  /** The plane's PKI directory (createPki): node certificates are issued from its CA. */
  pkiDir: string;
  server: string;
  /** Admin credentials, to create the Node objects. */
  admin: TlsClient;
  /** The cluster DNS Service IP pods are told of (nothing serves it; it spares a warning Event per pod). */
  clusterDns?: string;
  /** Taints every node registers with (e.g. to keep pods off unless they tolerate it). */
  taints?: readonly Taint[];
  detached: boolean;
  timeoutMs: number;
}

interface NodeView {
  spec?: { taints?: { key: string }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

/** Whether the Node reports Ready and node lifecycle has lifted its not-ready taint (the scheduler skips it until then). */
function schedulable(node: NodeView): boolean {
  return (
    (node.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True") &&
    !(node.spec?.taints ?? []).some((t) => t.key === "node.kubernetes.io/not-ready")
  );
}

/**
 * The kubelet reports its node IP as the Node's InternalIP (and the pods' hostIP) only when an
 * interface holds it, and never a loopback address. In the test network namespace (where
 * 198.19.x.y is routed to loopback but held by no interface) put it on lo; elsewhere (loopback
 * addresses, or no privilege) the kubelet logs that it cannot validate the address and carries on.
 */
async function holdAddress(ip: string): Promise<void> {
  if (ip.startsWith("127.")) return;
  await promisify(execFile)("ip", ["addr", "add", `${ip}/32`, "dev", "lo"]).catch(() => undefined);
}

/** Creates each Node, starts its kubelet and waits until every node is Ready and schedulable. */
export async function startNodes(options: StartNodesOptions): Promise<LoggedProcess[]> {
  const processes: LoggedProcess[] = [];
  const startOne = async (node: NodeSpec) => {
    const dir = path.join(options.dataDir, "nodes", node.name);
    await holdAddress(node.ip);
    await mkdir(path.join(dir, "kubelet"), { recursive: true });
    const identity = `system:node:${node.name}`;
    const cert = await issueClientCert(options.pkiDir, `node-${node.name}`, `/O=system:nodes/CN=${identity}`);
    const kubeconfig = path.join(dir, "kubeconfig");
    await writeKubeconfig(kubeconfig, options.server, {
      caFile: options.admin.caFile,
      certFile: cert.cert,
      keyFile: cert.key,
      user: identity,
    });
    const created = await httpRequest("POST", `${options.server}/api/v1/nodes`, {
      tls: options.admin,
      json: {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: node.name,
          labels: {
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": "linux",
            [ZONE_LABEL]: node.zone,
          },
        },
        spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr], taints: options.taints ?? [] },
      },
    });
    if (created.status !== 201 && created.status !== 409) {
      throw new Error(`creating Node ${node.name} failed with HTTP ${created.status}: ${created.body}`);
    }
    const kubelet = new LoggedProcess(
      node.name,
      options.binary,
      [
        `--kubeconfig=${kubeconfig}`,
        `--node-name=${node.name}`,
        `--node-ip=${node.ip}`,
        `--pod-cidr=${node.podCidr}`,
        `--zone=${node.zone}`,
        `--kubelet-port=${await freePort(node.ip)}`,
        `--root-dir=${path.join(dir, "kubelet")}`,
        ...(options.clusterDns ? [`--cluster-dns=${options.clusterDns}`] : []),
      ],
      path.join(dir, "node.log"),
      options.detached,
    );
    processes.push(kubelet);
    await kubelet.start();
    const died = kubelet.exited.then((exit) => {
      throw new Error(`${node.name} exited (${exit.signal ?? `code ${exit.code}`}); see ${kubelet.logPath}`);
    });
    await pollUntil(
      async () => {
        const res = await httpGet(`${options.server}/api/v1/nodes/${node.name}`, options.admin);
        return res.status === 200 && schedulable(JSON.parse(res.body) as NodeView) ? true : undefined;
      },
      {
        what: `Node ${node.name} to be Ready and schedulable (log: ${kubelet.logPath})`,
        timeoutMs: options.timeoutMs,
        intervalMs: 250,
        abort: died,
      },
    );
  };
  try {
    await Promise.all(options.nodes.map(startOne));
  } catch (err) {
    for (const p of processes) await p.stop(5_000).catch(() => {});
    throw err;
  }
  return processes;
}
