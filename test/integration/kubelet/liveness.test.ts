// Liveness and startup on the real kubelet, end to end with healthgate in Enforce mode:
// - the core claim of the product: when a shared dependency fails, a deep liveness probe
//   restarts every pod, while the same Deployment under healthgate (its liveness made shallow)
//   restarts none;
// - a startup probe that healthgate writes holds a slow boot that liveness alone kills.
import { beforeAll, describe, expect, it } from "vitest";
import { imageTag, type App } from "../../../src/devcluster/podApps.ts";
import { makeDeployment, withProbe, withReplicas } from "../../support/builders.ts";
import { isReady, livePods, onRealNodes, restarts } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import { installCrd, useControllerHarness, withDeepPaths } from "../controller/support.ts";
import { FAST_TIMING, fastEnforcePolicy, probeOf, probePath, withEndpoints } from "./support.ts";

beforeAll(() => installCrd());

/** Milliseconds the "slow-boot" image takes before /healthz and /readyz answer 200. */
const BOOT_MS = 12_000;

const healthy: App = { "/healthz": {}, "/readyz": {}, "/health/deep": {} };
const slowBoot: App = {
  "/healthz": ({ sinceStartMs }) => (sinceStartMs < BOOT_MS ? { status: 503 } : {}),
  "/readyz": ({ sinceStartMs }) => (sinceStartMs < BOOT_MS ? { status: 503 } : {}),
};

describe("liveness and startup on the real kubelet", () => {
  const hg = useControllerHarness({ app: (pod) => (imageTag(pod) === "slow-boot" ? slowBoot : healthy) });

  it("a dependency outage restarts every pod with a deep liveness probe and none of those healthgate made shallow", async () => {
    // Given two Deployments with the same deep liveness probe, "governed" under an Enforce policy
    // that declares /health/deep deep and "ungoverned" under none
    const deepLiveness = { httpGet: { path: "/health/deep", port: "http" }, ...FAST_TIMING.liveness };
    await hg.createPolicy(fastEnforcePolicy("governed", withDeepPaths("/health/deep")));
    await hg.startOperator();
    for (const name of ["governed", "ungoverned"]) {
      await hg.apply(
        makeDeployment(name, withReplicas(3), onRealNodes(), withProbe(name, "liveness", deepLiveness)),
      );
    }
    const settled = async (name: string, livenessPath: string) =>
      waitFor(
        async () => {
          const pods = await livePods(hg.namespace, name);
          expect(pods.length).toBe(3);
          for (const pod of pods) {
            expect(probePath(pod, "liveness"), pod.metadata?.name).toBe(livenessPath);
            expect(isReady(pod), `${pod.metadata?.name} Ready`).toBe(true);
          }
          return pods;
        },
        {
          what: `3 Ready pods of ${name} with liveness on ${livenessPath}`,
          timeoutMs: 90_000,
          intervalMs: 500,
        },
      );
    const governed = await settled("governed", "/healthz");
    const ungoverned = await settled("ungoverned", "/health/deep");

    // When the shared dependency fails: every pod's deep endpoint answers 503
    hg.apps.set("*", "/health/deep", { status: 503 });

    // Then the kubelet restarts every pod whose liveness is deep
    await waitFor(
      async () => {
        const pods = await livePods(hg.namespace, "ungoverned");
        for (const pod of pods) expect(restarts(pod), `${pod.metadata?.name} restarts`).toBeGreaterThan(0);
        return true;
      },
      {
        what: "every ungoverned pod to be restarted by its liveness probe",
        timeoutMs: 45_000,
        intervalMs: 500,
      },
    );
    expect((await livePods(hg.namespace, "ungoverned")).map((p) => p.metadata?.uid).sort()).toEqual(
      ungoverned.map((p) => p.metadata?.uid).sort(),
    );
    // and restarts none of the pods healthgate gave a shallow liveness probe: they stay Ready
    await holdsFor(
      async () => {
        const pods = await livePods(hg.namespace, "governed");
        expect(pods.map((p) => p.metadata?.uid).sort()).toEqual(governed.map((p) => p.metadata?.uid).sort());
        for (const pod of pods) {
          expect(restarts(pod), `${pod.metadata?.name} restarts`).toBe(0);
          expect(isReady(pod), `${pod.metadata?.name} Ready`).toBe(true);
        }
      },
      { forMs: 10_000, intervalMs: 1_000, what: "no governed pod to restart" },
    );
  });

  it("a startup probe holds a slow boot that the same liveness probe alone kills", async () => {
    // Given a slow-booting application (/healthz fails for 12 s after each start) under two
    // Enforce policies with the same fast liveness (restart within ~7 s), one with a startup probe
    await hg.createPolicy(
      fastEnforcePolicy("held", withEndpoints({ startup: { path: "/healthz", maxStartupSeconds: 40 } })),
    );
    await hg.createPolicy(fastEnforcePolicy("unheld"));
    await hg.startOperator();
    for (const name of ["held", "unheld"]) await hg.apply(makeDeployment(name, onRealNodes("slow-boot")));

    // Then the pod with the startup probe boots without a restart and turns Ready after its boot
    const held = await waitFor(
      async () => {
        const pods = (await livePods(hg.namespace, "held")).filter((p) => probeOf(p, "startup"));
        expect(pods.length).toBe(1);
        expect(isReady(pods[0]!), "Ready").toBe(true);
        return pods[0]!;
      },
      { what: "held's pod with a startup probe to turn Ready", timeoutMs: 90_000, intervalMs: 500 },
    );
    expect(probePath(held, "liveness")).toBe("/healthz");
    expect(restarts(held)).toBe(0);
    const started = Date.parse(String(held.status!.containerStatuses![0]!.state!.running!.startedAt));
    const ready = Date.parse(
      String(held.status!.conditions!.find((c) => c.type === "Ready")!.lastTransitionTime),
    );
    expect(ready - started).toBeGreaterThanOrEqual(BOOT_MS - 1_000);

    // and the pod with liveness alone is killed before it finishes booting, again and again
    await waitFor(
      async () => {
        const pods = (await livePods(hg.namespace, "unheld")).filter((p) => probeOf(p, "liveness"));
        expect(pods.length).toBe(1);
        expect(probeOf(pods[0]!, "startup")).toBeUndefined();
        expect(restarts(pods[0]!)).toBeGreaterThanOrEqual(1);
        expect(isReady(pods[0]!)).toBe(false);
        return true;
      },
      { what: "unheld's pod to be restarted by liveness while booting", timeoutMs: 60_000, intervalMs: 500 },
    );
  });
});
