// A policy's reconcile decides every Deployment it selects again, and each Deployment's reconcile
// asks for it: while its Deployments change one after another (a policy edit over 1,000 of them,
// each bringing its own events), the policy runs once per interval, not once per Deployment.
// The caches are real informers over a stand-in list/watch client; time is a FakeClock.
import { describe, expect, it } from "vitest";
import { ReconcileLoop } from "../../../src/controller/reconcileLoop.ts";
import {
  HealthgateReconciler,
  POLICY_STATUS_INTERVAL_MS,
  deploymentKey,
  policyKey,
  type TermClient,
} from "../../../src/controller/reconciler.ts";
import { createWorld } from "../../../src/controller/world.ts";
import type { RawObject, WatchEvent } from "../../../src/kube/client.ts";
import type { ListWatchClient } from "../../../src/kube/informer.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { headroomConcern } from "../../../src/policy/headroom/concern.ts";
import { probesConcern } from "../../../src/policy/probes/concern.ts";
import { makeDeployment, withLabels } from "../../support/builders.ts";
import { FakeClock, settle } from "./fakeClock.ts";

const NS = "shop";
const DEPLOYMENTS = 50;

const policy = {
  apiVersion: "healthgate.io/v1alpha1",
  kind: "HealthPolicy",
  metadata: { name: "web", namespace: NS, uid: "policy-uid", generation: 1, resourceVersion: "1" },
  spec: {
    selector: { matchLabels: { tier: "web" } },
    mode: "Audit",
    endpoints: { port: "http", liveness: { path: "/healthz" }, readiness: { path: "/readyz" } },
  },
};
const deployments = Array.from({ length: DEPLOYMENTS }, (_, i) => {
  const d = makeDeployment(`web-${i}`, withLabels({ tier: "web" }));
  return { ...d, metadata: { ...d.metadata, namespace: NS, uid: `uid-${i}`, resourceVersion: "1" } };
});

/** Lists what the test holds; watches stay open and quiet until aborted. */
const api: ListWatchClient = {
  list: async (ref) => ({
    apiVersion: "v1",
    kind: "List",
    metadata: { resourceVersion: "1" },
    items: (ref.plural === "healthpolicies"
      ? [policy]
      : ref.plural === "deployments"
        ? deployments
        : []) as unknown as RawObject[],
  }),
  watch: (_ref, _ns, _query, _onEvent: (event: WatchEvent) => void, signal: AbortSignal) =>
    new Promise<void>((_resolve, reject) =>
      signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
    ),
};

/** Every write succeeds and answers with what was sent. */
const writes: TermClient = {
  get: async () => {
    throw new Error("not used");
  },
  create: async (obj) => obj,
  createDiscardingReply: async () => {},
  delete: async () => {},
  applyObject: async (obj) => obj,
  applyDiscardingReply: async () => {},
  jsonPatch: async () => ({ metadata: { name: "x" } }) as never,
  list: async () => {
    throw new Error("not used");
  },
  mergePatchStatus: async () => ({ metadata: { name: "x" } }) as never,
};

describe("a policy's reconcile while its Deployments change one after another", () => {
  it(`runs once per ${POLICY_STATUS_INTERVAL_MS} ms, not once per Deployment`, async () => {
    const clock = new FakeClock(0);
    const metrics = createMetrics();
    const logger = createLogger("silent");
    const world = createWorld({ client: api, metrics, logger, clock, watchdogMs: 3_600_000 });
    world.start();
    await settle();
    expect(world.hasSynced()).toBe(true);

    // `loop` is assigned before any reconcile runs.
    // eslint-disable-next-line prefer-const
    let loop: ReconcileLoop;
    const reconciler = new HealthgateReconciler({
      world,
      client: writes,
      concerns: [probesConcern, headroomConcern],
      clock,
      logger,
      identity: "test",
      enqueue: (key) => loop.enqueue(key),
      enqueuePaced: (key, ms) => loop.enqueuePaced(key, ms),
    });
    const policyRuns: number[] = [];
    loop = new ReconcileLoop(
      {
        reconcile: (key, signal) => {
          if (key === policyKey(NS, "web")) policyRuns.push(clock.now());
          return reconciler.reconcile(key, signal);
        },
      },
      { name: "test", concurrency: 4, metrics, logger, clock },
    );
    const leadership = new AbortController();
    const running = loop.run(leadership.signal, []);

    // One Deployment event every 10 ms for 1 s (each Deployment twice).
    for (let i = 0; i < DEPLOYMENTS * 2; i++) {
      loop.enqueue(deploymentKey(NS, `web-${i % DEPLOYMENTS}`));
      await clock.advance(10);
    }
    await clock.advance(10_000);
    expect(policyRuns.length).toBeGreaterThan(0);
    expect(policyRuns.length).toBeLessThanOrEqual(3);
    // Once the Deployments are quiet, the policy ran after the last of them.
    expect(policyRuns.at(-1)).toBeGreaterThanOrEqual(DEPLOYMENTS * 2 * 10 - 10);

    leadership.abort();
    await running;
    await world.stop();
  });
});
