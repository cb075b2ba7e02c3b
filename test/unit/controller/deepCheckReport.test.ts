// GET /rollout/deep-checks on the operator's health server: names checked, only the leader
// answers with results, and what it serves is the report's whitelist (no bodies, addresses or
// error texts). A real HealthServer on loopback.
import { afterEach, describe, expect, it } from "vitest";
import {
  DEEP_CHECKS_PATH,
  deepChecksRoute,
  type DeepCheckReport,
} from "../../../src/controller/deepCheckReport.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { HealthServer } from "../../../src/observability/server.ts";

let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(leader: boolean) {
  server = new HealthServer({
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    logger: createLogger("silent"),
  });
  server.addJsonRoute(
    DEEP_CHECKS_PATH,
    deepChecksRoute({
      identity: "hg-0",
      isLeader: () => leader,
      report: (namespace, deployment) => ({
        pods: [
          {
            pod: `${deployment}-a`,
            cohort: "new",
            standing: "Passing",
            consecutivePasses: 2,
            consecutiveFailures: 0,
            consecutiveErrors: 0,
          },
        ],
        unchecked: [{ pod: `${namespace}-x`, cohort: "stable", reason: "HostNetwork" }],
      }),
    }),
  );
  const port = await server.listen();
  return async (query: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${DEEP_CHECKS_PATH}${query}`);
    return {
      status: res.status,
      type: res.headers.get("content-type"),
      body: (await res.json()) as DeepCheckReport,
    };
  };
}

describe("/rollout/deep-checks", () => {
  it("the leader answers with the Deployment's report", async () => {
    const get = await serve(true);
    const { status, type, body } = await get("?namespace=shop&deployment=web");
    expect(status).toBe(200);
    expect(type).toBe("application/json");
    expect(body).toEqual({
      leader: true,
      identity: "hg-0",
      namespace: "shop",
      deployment: "web",
      pods: [expect.objectContaining({ pod: "web-a", standing: "Passing" })],
      unchecked: [{ pod: "shop-x", cohort: "stable", reason: "HostNetwork" }],
    });
  });
  it("another replica answers 503, saying it is not the leader", async () => {
    const get = await serve(false);
    const { status, body } = await get("?namespace=shop&deployment=web");
    expect(status).toBe(503);
    expect(body).toMatchObject({ leader: false, identity: "hg-0" });
    expect(body.message).toContain("not the leader");
    expect(body.pods).toBeUndefined();
  });
  it.each(["", "?namespace=shop", "?namespace=Shop&deployment=web", "?namespace=shop&deployment=../x"])(
    "refuses %j with 400, naming the parameter",
    async (query) => {
      const get = await serve(true);
      const { status, body } = await get(query);
      expect(status).toBe(400);
      expect(body.message).toMatch(
        /query parameter (namespace|deployment) .* is not a Kubernetes object name/,
      );
      expect(body.pods).toBeUndefined();
    },
  );
});
