// The test nodes themselves: the real kubelet dials each pod's probes at the pod's own IP, in
// its own zone, and the fake runtime's gaps are closed where tests need them (an exec that
// fails, a container that exits with a chosen code, an image that cannot be pulled).
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { ZONE_LABEL } from "../../../src/devcluster/nodes.ts";
import { imageTag } from "../../../src/devcluster/podApps.ts";
import { makeDeployment, makePod, withImage, withProbe, withReplicas } from "../../support/builders.ts";
import { testClients, testKubeconfigPath } from "../../support/kube.ts";
import {
  EXEC_EXIT_CODE_ANNOTATION,
  EXIT_CODE_ANNOTATION,
  isReady,
  livePods,
  onRealNodes,
  useRealNodeNamespace,
  waitForReadyPods,
} from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";

const mergePatchHeader = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const fast = { periodSeconds: 1, failureThreshold: 1, successThreshold: 1, timeoutSeconds: 1 };

describe("real kubelet test nodes", () => {
  // Image tag "broken" answers 500 on /readyz; every other tag 200.
  const ns = useRealNodeNamespace((pod) => ({
    "/readyz": { status: imageTag(pod) === "broken" ? 500 : 200 },
  }));

  it("dials each pod's HTTP readiness probe at the pod's own IP, one zone per node", async () => {
    const { apps: appsApi, core } = testClients();
    // Given three replicas with an HTTP readiness probe
    await appsApi.createNamespacedDeployment({
      namespace: ns.name,
      body: makeDeployment(
        "web",
        withReplicas(3),
        onRealNodes(),
        withProbe("web", "readiness", { httpGet: { path: "/readyz", port: "http" }, ...fast }),
      ),
    });
    // Then each turns Ready with its own IP, its probe dialled by the kubelet
    const pods = await waitForReadyPods(ns.name, "web", 3);
    const ips = pods.map((p) => p.status!.podIP);
    expect(new Set(ips).size).toBe(3);
    for (const pod of pods) expect(ns.apps.hits(pod.metadata!.name!, "/readyz")).toBeGreaterThan(0);
    const nodes = (await core.listNode()).items;
    for (const pod of pods) {
      const node = nodes.find((n) => n.metadata?.name === pod.spec?.nodeName);
      expect(node?.metadata?.labels?.[ZONE_LABEL], `zone of ${pod.spec?.nodeName}`).toMatch(/^zone-/);
    }

    // When one pod's endpoint starts failing, that pod alone turns NotReady
    const victim = pods[0]!.metadata!.name!;
    ns.apps.set(victim, "/readyz", { status: 500 });
    await waitFor(
      async () => {
        const now = await livePods(ns.name, "web");
        expect(
          now
            .filter(isReady)
            .map((p) => p.metadata!.name)
            .sort(),
        ).toEqual(
          pods
            .map((p) => p.metadata!.name)
            .filter((n) => n !== victim)
            .sort(),
        );
        return true;
      },
      { what: `only ${victim} to turn NotReady`, timeoutMs: 20_000, intervalMs: 250 },
    );
    // And Ready again once it answers 200
    ns.apps.set(victim, "/readyz", undefined);
    await waitForReadyPods(ns.name, "web", 3, 20_000);
  });

  it("a failing exec probe makes the pod NotReady (annotation-driven), and passing again readmits it", async () => {
    const { core } = testClients();
    await core.createNamespacedPod({
      namespace: ns.name,
      body: makePod(
        "exec",
        onRealNodes(),
        withProbe("exec", "readiness", { exec: { command: ["cat", "/tmp/ready"] }, ...fast }),
      ),
    });
    await waitForReadyPods(ns.name, "exec", 1);
    const annotate = (value: string | null) =>
      core.patchNamespacedPod(
        {
          name: "exec",
          namespace: ns.name,
          body: { metadata: { annotations: { [EXEC_EXIT_CODE_ANNOTATION]: value } } },
        },
        mergePatchHeader,
      );
    await annotate("1");
    await waitFor(async () => !isReady(await core.readNamespacedPod({ name: "exec", namespace: ns.name })), {
      what: "pod exec to turn NotReady when its exec probe exits 1",
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    await annotate(null);
    await waitForReadyPods(ns.name, "exec", 1, 20_000);
  });

  it("a container that exits with a chosen code is restarted into CrashLoopBackOff with that exit code", async () => {
    const { core } = testClients();
    await core.createNamespacedPod({ namespace: ns.name, body: makePod("crash", onRealNodes()) });
    await waitForReadyPods(ns.name, "crash", 1);
    await core.patchNamespacedPod(
      {
        name: "crash",
        namespace: ns.name,
        body: { metadata: { annotations: { [EXIT_CODE_ANNOTATION]: "3" } } },
      },
      mergePatchHeader,
    );
    const status = await waitFor(
      async () => {
        const c = (await core.readNamespacedPod({ name: "crash", namespace: ns.name })).status
          ?.containerStatuses?.[0];
        expect(c?.lastState?.terminated?.exitCode).toBe(3);
        expect(c?.restartCount).toBeGreaterThanOrEqual(2);
        expect(c?.state?.waiting?.reason).toBe("CrashLoopBackOff");
        return c;
      },
      { what: "pod crash to crash-loop with exit code 3", timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(status.ready).toBe(false);
  });

  it("a node's credentials are its own: NodeRestriction refuses node-a a change to node-b", async () => {
    const kubeconfig = path.join(path.dirname(testKubeconfigPath()), "nodes", "node-a", "kubeconfig");
    const kubectl = path.join(inject("k8sBinDir"), "kubectl");
    const label = (node: string) =>
      promisify(execFile)(kubectl, [
        "--kubeconfig",
        kubeconfig,
        "label",
        "--overwrite",
        "node",
        node,
        "test.healthgate.io/touched=yes",
      ]);
    await expect(label("node-b")).rejects.toThrow(/forbidden|Forbidden/);
    await label("node-a");
    await promisify(execFile)(kubectl, [
      "--kubeconfig",
      kubeconfig,
      "label",
      "node",
      "node-a",
      "test.healthgate.io/touched-",
    ]);
  });

  it("an image on an unresolvable registry ends in ErrImagePull / ImagePullBackOff", async () => {
    const { core } = testClients();
    await core.createNamespacedPod({
      namespace: ns.name,
      body: makePod("pull", onRealNodes(), withImage("pull", "registry.invalid/healthgate/test-app:1")),
    });
    const reason = await waitFor(
      async () => {
        const c = (await core.readNamespacedPod({ name: "pull", namespace: ns.name })).status
          ?.containerStatuses?.[0];
        expect(["ErrImagePull", "ImagePullBackOff"]).toContain(c?.state?.waiting?.reason);
        return c!.state!.waiting!.reason!;
      },
      { what: "pod pull to fail pulling its image", timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(reason).toMatch(/ImagePull/);
  });
});
