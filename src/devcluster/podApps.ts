// The application behind pods that run on the local plane's nodes
// (src/devcluster/nodes.ts): their containers are fake, so this serves each
// running pod's container ports on the pod's own IP, where the kubelet dials
// its probes (and tests or healthgate dial anything else). What each path
// answers is decided per pod — typically from its image tag, so a rollout
// changes behaviour the way a user does — and can be overridden per pod and
// path while it runs (status, latency, body).
//
// Pods are found by listing the namespace every `pollMs`; a pod is served from
// the moment it has an IP until it is gone or has another.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";

export interface Reply {
  /** Default 200. */
  status?: number;
  /** Default: "ok" for 2xx, else the status text. */
  body?: string;
  /** Milliseconds before the answer starts (a slow dependency, a probe timeout). */
  delayMs?: number;
}

export interface RouteContext {
  pod: V1Pod;
  /** Milliseconds since the pod's first container (re)started, per its status; 0 before. */
  sinceStartMs: number;
}

export type Route = Reply | ((context: RouteContext) => Reply);
/** Path → route; "*" answers any path not listed. Without "*", a path not listed answers 404. */
export type App = Readonly<Record<string, Route>>;

export interface PodAppsOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The routes of a pod (called once per pod, when it is first served). */
  app: (pod: V1Pod) => App;
  /** Default 250 ms. */
  pollMs?: number;
}

/** The tag of a pod's first container image ("app:slow" → "slow"), or "" without one. */
export function imageTag(pod: V1Pod): string {
  const image = pod.spec?.containers[0]?.image ?? "";
  const last = image.slice(image.lastIndexOf("/") + 1);
  return last.includes(":") ? last.slice(last.indexOf(":") + 1) : "";
}

interface Served {
  pod: string;
  uid: string;
  server: http.Server;
}

function sinceStart(pod: V1Pod, now: number): number {
  const started = pod.status?.containerStatuses?.[0]?.state?.running?.startedAt;
  return started ? Math.max(0, now - new Date(started).getTime()) : 0;
}

export class PodApps {
  /** Errors met while listing pods or binding servers; a test fails on them. */
  readonly errors: Error[] = [];
  private readonly core: CoreV1Api;
  private readonly options: PodAppsOptions;
  private readonly pods = new Map<string, V1Pod>();
  private readonly apps = new Map<string, App>();
  private readonly served = new Map<string, Served>();
  private readonly overrides = new Map<string, Route>();
  private readonly hitCounts = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();
  private stopped = false;

  private constructor(options: PodAppsOptions) {
    this.options = options;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Starts serving the namespace's pods; resolves after the first pass. */
  static async start(options: PodAppsOptions): Promise<PodApps> {
    const apps = new PodApps(options);
    await apps.poll();
    apps.timer = setInterval(() => {
      apps.polling = apps.polling.then(() => apps.poll());
    }, options.pollMs ?? 250);
    apps.timer.unref();
    return apps;
  }

  /**
   * Overrides what `path` answers on pod `pod` (a name, or "*" for every pod) until cleared
   * with `undefined`. A pod's own override wins over "*".
   */
  set(pod: string, path: string, route: Route | undefined): void {
    const key = `${pod} ${path}`;
    if (route === undefined) this.overrides.delete(key);
    else this.overrides.set(key, route);
  }

  /** Requests served for `path` on the pod (every path when omitted). */
  hits(pod: string, path?: string): number {
    if (path !== undefined) return this.hitCounts.get(`${pod} ${path}`) ?? 0;
    let total = 0;
    for (const [key, count] of this.hitCounts) if (key.startsWith(`${pod} `)) total += count;
    return total;
  }

  /** Names of the pods being served now. */
  servedPods(): string[] {
    return [...new Set([...this.served.values()].map((s) => s.pod))];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.polling;
    await Promise.all([...this.served.keys()].map((key) => this.close(key)));
  }

  private report(what: string, err: unknown): void {
    const error = new Error(`pod apps in ${this.options.namespace}: ${what}: ${(err as Error).message}`);
    this.errors.push(error);
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    let items: V1Pod[];
    try {
      items = (await this.core.listNamespacedPod({ namespace: this.options.namespace })).items;
    } catch (err) {
      this.report("listing pods", err);
      return;
    }
    const wanted = new Map<string, V1Pod>();
    this.pods.clear();
    for (const pod of items) {
      const name = pod.metadata!.name!;
      this.pods.set(name, pod);
      const ip = pod.status?.podIP;
      if (!ip || pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") continue;
      const ports = pod.spec!.containers.flatMap((c) =>
        (c.ports ?? []).filter((p) => (p.protocol ?? "TCP") === "TCP").map((p) => p.containerPort),
      );
      for (const port of ports.length > 0 ? ports : [8080]) wanted.set(`${ip}:${port}`, pod);
    }
    for (const [key, served] of this.served) {
      const pod = wanted.get(key);
      if (!pod || pod.metadata!.uid !== served.uid) await this.close(key);
    }
    for (const [key, pod] of wanted) {
      if (this.served.has(key)) continue;
      try {
        await this.listen(key, pod);
      } catch (err) {
        // The address may still be held for a pod that left a moment ago; retried next pass.
        if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") this.report(`serving ${key}`, err);
      }
    }
  }

  private route(name: string, uid: string, path: string): Route | undefined {
    const app = this.apps.get(uid);
    return (
      this.overrides.get(`${name} ${path}`) ?? this.overrides.get(`* ${path}`) ?? app?.[path] ?? app?.["*"]
    );
  }

  private async listen(key: string, pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    const uid = pod.metadata!.uid!;
    if (!this.apps.has(uid)) this.apps.set(uid, this.options.app(pod));
    const server = http.createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0]!;
      const hit = `${name} ${path}`;
      this.hitCounts.set(hit, (this.hitCounts.get(hit) ?? 0) + 1);
      const route = this.route(name, uid, path);
      const current = this.pods.get(name) ?? pod;
      const reply: Reply =
        route === undefined
          ? { status: 404 }
          : typeof route === "function"
            ? route({ pod: current, sinceStartMs: sinceStart(current, Date.now()) })
            : route;
      const status = reply.status ?? 200;
      const send = () => {
        res.writeHead(status, { "content-type": "text/plain" });
        res.end(reply.body ?? (status < 300 ? "ok" : (http.STATUS_CODES[status] ?? "error")));
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs).unref();
      else send();
    });
    server.keepAliveTimeout = 1_000;
    const [ip, port] = [key.slice(0, key.lastIndexOf(":")), Number(key.slice(key.lastIndexOf(":") + 1))];
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, ip, () => {
        server.off("error", reject);
        resolve();
      });
    });
    if ((server.address() as AddressInfo).port !== port) throw new Error(`bound the wrong port on ${key}`);
    this.served.set(key, { pod: name, uid, server });
  }

  private async close(key: string): Promise<void> {
    const served = this.served.get(key);
    if (!served) return;
    this.served.delete(key);
    served.server.closeAllConnections();
    await new Promise<void>((resolve) => served.server.close(() => resolve()));
  }
}
