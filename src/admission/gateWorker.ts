// The gate webhook's thread (issue 20: "admission answers must not wait behind a relist"). The
// HTTPS server that answers AdmissionReviews runs here, apart from the main thread, whose event
// loop a relist of thousands of pods, or reconciles over a large Deployment, keeps busy for
// seconds. The main thread sends what the decision reads — Deployments, parsed policies, each
// record's stable revision — as its caches change (GateWebhook in gateWebhook.ts), and the
// serving certificate; this thread keeps its own copy and decides with the same pure
// decideGate. It never refuses a pod.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import type { Pod } from "../api/k8s.ts";
import { governingPolicy } from "../policy/governance.ts";
import {
  decideGate,
  gatePatch,
  type GateDeployment,
  type GatePolicy,
  type GateWorld,
} from "../policy/gate.ts";
import type { FromGateWorker, GateWorkerConfig, ToGateWorker } from "./gateProtocol.ts";

if (!parentPort)
  throw new Error("src/admission/gateWorker.ts runs as a worker thread; start it with GateWebhook");
const port = parentPort;
const config = workerData as GateWorkerConfig;
const post = (message: FromGateWorker) => port.postMessage(message);

const MAX_REVIEW_BYTES = 8 << 20;

const deployments = new Map<string, GateDeployment>(config.deployments);
const policies = new Map<string, GatePolicy>(config.policies);
const stable = new Map<string, string>(config.stable);

function worldOf(namespace: string): GateWorld {
  return {
    excludedNamespaces: new Set(["kube-system", config.ownNamespace]),
    deployment: (name) => deployments.get(`${namespace}/${name}`),
    governingPolicy: (d) =>
      governingPolicy(
        [...policies.values()].filter((p) => p.metadata.namespace === namespace),
        d,
      ),
    stableRevision: (d) => stable.get(`${namespace}/${d.metadata.name}`),
  };
}

interface AdmissionRequest {
  uid: string;
  operation?: string;
  namespace?: string;
  object?: Pod;
}

function answer(request: AdmissionRequest): Record<string, unknown> {
  const allowed = { uid: request.uid, allowed: true };
  const pod = request.object;
  if (request.operation !== "CREATE" || !pod?.spec) return allowed;
  const namespace = request.namespace ?? pod.metadata?.namespace ?? "";
  try {
    const decision = decideGate(
      {
        namespace,
        labels: pod.metadata?.labels,
        ownerReferences: pod.metadata?.ownerReferences,
        hostNetwork: pod.spec.hostNetwork,
        readinessGates: pod.spec.readinessGates,
      },
      worldOf(namespace),
    );
    post({
      type: "admission",
      result: decision.gate ? "gated" : "ungated",
      namespace,
      reason: decision.reason,
      ...(decision.deployment ? { deployment: decision.deployment } : {}),
    });
    if (!decision.gate) return allowed;
    return {
      ...allowed,
      patchType: "JSONPatch",
      patch: Buffer.from(JSON.stringify(gatePatch(pod.spec))).toString("base64"),
    };
  } catch (err) {
    post({
      type: "admission",
      result: "error",
      namespace,
      error: err instanceof Error ? err.message : String(err),
    });
    return allowed;
  }
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== "POST" || req.url?.split("?")[0] !== config.path) {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_REVIEW_BYTES) req.destroy();
    else chunks.push(chunk);
  });
  req.on("end", () => {
    let review: { request?: AdmissionRequest };
    try {
      review = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { request?: AdmissionRequest };
    } catch {
      res.writeHead(400).end();
      return;
    }
    const request = review.request;
    if (!request?.uid) {
      res.writeHead(400).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: answer(request),
      }),
    );
  });
}

// The caches' snapshot came with workerData: it is in place before the first answer.

const server: Server = createServer({ cert: config.cert, key: config.key, minVersion: "TLSv1.2" }, handle);
function set<T>(map: Map<string, T>, key: string, value: T | undefined) {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}

port.on("message", (message: ToGateWorker) => {
  switch (message.type) {
    case "deployment":
      set(deployments, message.key, message.value);
      return;
    case "policy":
      set(policies, message.key, message.value);
      return;
    case "stable":
      set(stable, message.key, message.value);
      return;
    case "cert":
      server.setSecureContext({ cert: message.cert, key: message.key });
      return;
    case "stop":
      server.close(() => port.close());
      server.closeAllConnections();
      return;
  }
});

server.requestTimeout = 10_000;
server.headersTimeout = 10_000;
server.once("error", (err) => post({ type: "failed", error: err.message }));
server.listen(config.port, config.host, () => {
  post({ type: "listening", port: (server.address() as AddressInfo).port });
});
