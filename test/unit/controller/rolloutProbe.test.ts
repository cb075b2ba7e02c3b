// RolloutGating hands the prober every pod the rollout wants deep-checked — including the ones it
// cannot check (hostNetwork, no pod IP), with the reason — so healthgate_deep_check_unchecked_pods
// counts them instead of the pods vanishing silently. A real ProberHandle (its thread starts with
// the first target only, so none runs here); no API call is made on this path.
import { afterEach, describe, expect, it } from "vitest";
import type { Pod } from "../../../src/api/k8s.ts";
import { healthPolicySpec, type HealthPolicy } from "../../../src/api/v1alpha1/index.ts";
import { RolloutGating } from "../../../src/controller/rollout.ts";
import type { KubeClient } from "../../../src/kube/client.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { ProberHandle } from "../../../src/prober/handle.ts";
import { registerDeepCheckMetrics } from "../../../src/prober/metrics.ts";
import type { TargetSnapshot } from "../../../src/policy/seam.ts";
import { sumSamples } from "../../support/promText.ts";

let prober: ProberHandle | undefined;
afterEach(async () => {
  await prober?.stop();
  prober = undefined;
});

const policy = {
  apiVersion: "healthgate.io/v1alpha1",
  kind: "HealthPolicy",
  metadata: { name: "web", namespace: "shop" },
  spec: healthPolicySpec.parse({
    selector: { matchLabels: { app: "web" } },
    endpoints: { port: 8080 },
    rollout: { steps: [{ weight: 100 }], deepCheck: { path: "/health/deep" } },
  }),
} as HealthPolicy;

function pod(name: string, change: (p: Pod) => void = () => {}): Pod {
  const p: Pod = {
    metadata: {
      name,
      namespace: "shop",
      uid: `uid-${name}`,
      labels: { app: "web", "pod-template-hash": "new1" },
    },
    spec: { containers: [{ name: "web", ports: [{ containerPort: 8080 }] }] },
    status: { phase: "Running", podIP: "10.0.0.9" },
  };
  change(p);
  return p;
}

describe("RolloutGating → ProberHandle: unchecked pods are handed over", () => {
  it("counts a hostNetwork new pod as unchecked (HostNetwork), and forgets it with its Deployment", async () => {
    const metrics = createMetrics();
    const handle = ProberHandle.start({ metrics: registerDeepCheckMetrics(metrics) });
    prober = handle;
    const gating = new RolloutGating({
      client: {} as KubeClient,
      logger: createLogger("silent"),
      prober: () => handle,
      enqueue: () => {},
    });
    const host = pod("web-host", (p) => void (p.spec.hostNetwork = true));
    const noIp = pod("web-noip", (p) => void delete p.status!.podIP);
    const snapshot = {
      policy,
      deployment: { metadata: { name: "web", namespace: "shop" }, spec: {} },
      replicaSets: [],
      pods: [host, noIp],
      pdbs: [],
      nodeZones: {},
      now: new Date(),
    } as unknown as TargetSnapshot;
    await gating.act(
      policy,
      snapshot,
      undefined,
      { gates: [], state: undefined, events: [], probe: { new: ["web-host", "web-noip"], stable: [] } },
      AbortSignal.timeout(5_000),
    );
    const unchecked = handle.unchecked("shop");
    expect(unchecked.map((u) => [u.pod, u.reason]).sort()).toEqual([
      ["web-host", "HostNetwork"],
      ["web-noip", "NoPodIP"],
    ]);
    const text = await metrics.registry.metrics();
    expect(sumSamples(text, "healthgate_deep_check_unchecked_pods", { reason: "HostNetwork" })).toBe(1);
    expect(sumSamples(text, "healthgate_deep_check_unchecked_pods", { reason: "NoPodIP" })).toBe(1);
    expect(handle.threadStarted).toBe(false);
    // and the policy status's aggregate counts them, per cohort
    expect(gating.deepCheckCounts("shop", "web")).toEqual({
      canary: { passing: 0, failing: 0, unreachable: 0, pending: 0, unchecked: 2 },
      stable: { passing: 0, failing: 0, unreachable: 0, pending: 0, unchecked: 0 },
    });

    gating.forget("shop", "web");
    expect(handle.unchecked("shop")).toEqual([]);
    const after = await metrics.registry.metrics();
    expect(sumSamples(after, "healthgate_deep_check_unchecked_pods")).toBe(0);
    expect(gating.deepCheckCounts("shop", "web")).toBeUndefined();
  });
});
