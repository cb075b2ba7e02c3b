// /healthz, /readyz and /metrics on one port, and read-only JSON routes the operator adds
// (/rollout/deep-checks: src/controller/deepCheckReport.ts).
//   /healthz is shallow on purpose (healthgate practises what it preaches): it proves only that
//   the event loop answers. A kubelet restarting healthgate because the API server is down
//   would fix nothing.
//   /readyz runs the registered checks (caches synced, …) and fails first on shutdown.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "./logger.ts";
import type { HealthgateMetrics } from "./metrics.ts";

/** True when ready; false or a reason when not. */
export type ReadinessCheck = () => boolean | string;

/** A JSON route: answers GET with a status and a body serialised as JSON. */
export type JsonRoute = (query: URLSearchParams) => { status: number; body: unknown };

export interface HealthServerOptions {
  port: number;
  /** Defaults to every interface: the kubelet and Prometheus dial the pod IP. */
  host?: string;
  metrics: HealthgateMetrics;
  logger: Logger;
}

export class HealthServer {
  private readonly options: HealthServerOptions;
  private readonly checks = new Map<string, ReadinessCheck>();
  private readonly routes = new Map<string, JsonRoute>();
  private readonly server: http.Server;
  private shuttingDown = false;

  constructor(options: HealthServerOptions) {
    this.options = options;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        options.logger.error({ err, path: req.url }, "health server request failed");
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  }

  addReadinessCheck(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  /** Serves `path` with `route` (read-only: GET and HEAD). */
  addJsonRoute(path: string, route: JsonRoute): void {
    this.routes.set(path, route);
  }

  /** /readyz fails from now on, so the endpoint is removed before the process stops. */
  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  /** Resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off("error", reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting connections and waits for requests in flight (Node closes idle keep-alives). */
  close(): Promise<void> {
    return new Promise((resolve, reject) => this.server.close((err) => (err ? reject(err) : resolve())));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    switch (url.pathname) {
      case "/healthz":
        text(res, 200, "ok\n");
        return;
      case "/readyz":
        this.readyz(res, url.searchParams.has("verbose"));
        return;
      case "/metrics": {
        const { registry } = this.options.metrics;
        const body = await registry.metrics();
        res.writeHead(200, { "Content-Type": registry.contentType }).end(body);
        return;
      }
      default: {
        const route = this.routes.get(url.pathname);
        if (!route) {
          text(res, 404, "not found\n");
          return;
        }
        const { status, body } = route(url.searchParams);
        res
          .writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" })
          .end(JSON.stringify(body));
      }
    }
  }

  /** Kubernetes' own /readyz format: one `[+]name ok` / `[-]name failed: why` line per check. */
  private readyz(res: http.ServerResponse, verbose: boolean): void {
    const lines: string[] = [];
    let ready = !this.shuttingDown;
    if (this.shuttingDown) lines.push("[-]shutdown failed: shutting down");
    for (const [name, check] of this.checks) {
      let verdict: boolean | string;
      try {
        verdict = check();
      } catch (err) {
        verdict = err instanceof Error ? err.message : String(err);
      }
      if (verdict === true) {
        lines.push(`[+]${name} ok`);
      } else {
        ready = false;
        lines.push(`[-]${name} failed: ${verdict === false ? "not ready" : verdict}`);
      }
    }
    if (ready && !verbose) text(res, 200, "ok\n");
    else text(res, ready ? 200 : 503, `${lines.join("\n")}\nreadyz check ${ready ? "passed" : "failed"}\n`);
  }
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" }).end(body);
}
