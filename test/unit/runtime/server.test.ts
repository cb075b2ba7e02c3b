import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { HealthServer } from "../../../src/observability/server.ts";

let server: HealthServer | undefined;

async function start() {
  const metrics = createMetrics();
  server = new HealthServer({ port: 0, host: "127.0.0.1", metrics, logger: createLogger("silent") });
  const port = await server.listen();
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
  };
  return { server, metrics, get };
}

afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("HealthServer", () => {
  it("answers /healthz whatever the readiness checks say", async () => {
    const { server, get } = await start();
    server.addReadinessCheck("informers", () => false);
    expect(await get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
  });

  it("is ready only when every check passes, and says which failed", async () => {
    const { server, get } = await start();
    let synced = false;
    server.addReadinessCheck("informers", () => synced || "pods not synced");
    server.addReadinessCheck("webhook", () => true);
    expect(await get("/readyz")).toEqual({
      status: 503,
      type: "text/plain; charset=utf-8",
      body: "[-]informers failed: pods not synced\n[+]webhook ok\nreadyz check failed\n",
    });
    synced = true;
    expect(await get("/readyz")).toMatchObject({ status: 200, body: "ok\n" });
    expect((await get("/readyz?verbose")).body).toBe("[+]informers ok\n[+]webhook ok\nreadyz check passed\n");
  });

  it("fails readiness first when shutting down", async () => {
    const { server, get } = await start();
    server.markShuttingDown();
    expect(await get("/readyz")).toMatchObject({ status: 503, body: expect.stringContaining("[-]shutdown") });
    expect((await get("/healthz")).status).toBe(200);
  });

  it("serves the registry in Prometheus text format", async () => {
    const { metrics, get } = await start();
    metrics.reconcileTotal.inc({ kind: "Deployment", result: "success" });
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0.0.4/);
    expect(res.body).toContain('healthgate_reconcile_total{kind="Deployment",result="success"} 1');
  });

  it("answers 404 elsewhere", async () => {
    const { get } = await start();
    expect((await get("/")).status).toBe(404);
  });
});
