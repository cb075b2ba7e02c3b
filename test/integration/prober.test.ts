// The prober against live pods of the real control plane: the real Deployment controller rolls a
// Deployment to a new image and halts (its new pod never becomes ready), the pod simulator gives
// each pod an IP of the test network, and a real HTTP server on each pod's IP answers as its
// image says (the new image's deep check says 503). Targets are built from the live pods and the
// live HealthPolicy; results for the new and the stable cohort arrive and are assessed.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeAll, expect, it } from "vitest";
import type { Pod } from "../../src/api/k8s.ts";
import { parseHealthPolicy } from "../../src/api/v1alpha1/index.ts";
import {
  assessDeepCheck,
  NO_ASSESSMENT,
  podStanding,
  tallyByCohort,
} from "../../src/policy/rollout/deepCheck.ts";
import { ProberHandle } from "../../src/prober/handle.ts";
import { deepCheckTarget } from "../../src/prober/targets.ts";
import type { Cohort, DeepCheckResult, ProbeTarget } from "../../src/prober/types.ts";
import { makeDeployment, withImage, withReplicas, withRollingUpdate } from "../support/builders.ts";
import { testClients } from "../support/kube.ts";
import { useSimulatedNamespace } from "../support/podSimulator.ts";
import { waitFor } from "../support/waitFor.ts";
import { createPolicy, installCrd, jsonPatch, makePolicy, readPolicy } from "./controller/support.ts";

const STABLE_IMAGE = "registry.invalid/shop/web:1";
const NEW_IMAGE = "registry.invalid/shop/web:2";
const imageOf = (pod: V1Pod) => pod.spec?.containers[0]?.image;

// New pods never pass readiness: the rolling update halts with one new pod beside the stable ones.
const ns = useSimulatedNamespace({
  behaviour: (pod) => ({ readyAfterMs: imageOf(pod) === NEW_IMAGE ? "never" : 0 }),
});

beforeAll(() => installCrd());

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A real server on the pod's own IP and declared port, answering as the pod's image would. */
async function servePod(
  ip: string,
  port: number,
  image: string | undefined,
  requests: string[],
): Promise<void> {
  const server = http.createServer((req, res) => {
    requests.push(`${ip} ${req.method} ${req.url} host=${req.headers.host}`);
    if (image === NEW_IMAGE) {
      res.statusCode = 503;
      res.end("db: unreachable");
    } else res.end("deep ok");
  });
  await new Promise<void>((resolve) => server.listen(port, ip, resolve));
  expect((server.address() as AddressInfo).address).toBe(ip);
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
}

it(
  "Given a rollout halted at its first new pod, the prober checks the live pods at their own IPs: " +
    "results for the new and the stable cohort arrive, the new revision fails and the stable passes",
  { timeout: 120_000 },
  async () => {
    const { apps, core } = testClients();
    const namespace = ns.name;

    // Given: web at 3 stable replicas, then a new image; the controller surges one new pod and waits.
    await apps.createNamespacedDeployment({
      namespace,
      body: makeDeployment(
        "web",
        withReplicas(3),
        withImage("web", STABLE_IMAGE),
        withRollingUpdate({ maxSurge: 1, maxUnavailable: 0 }),
      ),
    });
    await waitFor(() => ns.simulator.pods({ app: "web" }).length === 3, { what: "3 stable pods running" });
    await apps.patchNamespacedDeployment(
      {
        name: "web",
        namespace,
        body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: NEW_IMAGE }],
      },
      jsonPatch,
    );
    await waitFor(() => ns.simulator.pods({ app: "web" }).some((p) => imageOf(p) === NEW_IMAGE), {
      what: "the new revision's first pod to run",
    });

    // And: a HealthPolicy with a deep check, stored by the API server and read back.
    await createPolicy(
      namespace,
      makePolicy("web", (p) => {
        p.spec.rollout = {
          steps: [{ weight: 50, bake: "1m" }, { weight: 100 }],
          deepCheck: {
            path: "/health/deep",
            port: "http",
            intervalSeconds: 2,
            timeoutSeconds: 1,
            expect: { statuses: [200], bodyContains: "deep ok" },
          },
        };
      }),
    );
    const parsed = parseHealthPolicy(await readPolicy(namespace, "web"));
    if (!parsed.ok) throw new Error(parsed.condition.message);

    // When: targets are built from the live pods; the new revision is the newest ReplicaSet's hash.
    const replicaSets = (await apps.listNamespacedReplicaSet({ namespace })).items;
    const newest = replicaSets.reduce((a, b) =>
      Number(a.metadata?.annotations?.["deployment.kubernetes.io/revision"]) >
      Number(b.metadata?.annotations?.["deployment.kubernetes.io/revision"])
        ? a
        : b,
    );
    const newHash = newest.metadata?.labels?.["pod-template-hash"];
    const live = (await core.listNamespacedPod({ namespace, labelSelector: "app=web" })).items;
    const requests: string[] = [];
    const targets: ProbeTarget[] = [];
    for (const pod of live) {
      const cohort: Cohort = pod.metadata?.labels?.["pod-template-hash"] === newHash ? "new" : "stable";
      const verdict = deepCheckTarget(parsed.policy.spec, pod as unknown as Pod, cohort);
      if (!("target" in verdict)) throw new Error(verdict.unchecked.message);
      expect(verdict.target).toMatchObject({ ip: pod.status?.podIP, port: 8080, path: "/health/deep" });
      await servePod(verdict.target.ip, verdict.target.port, imageOf(pod), requests);
      targets.push(verdict.target);
    }
    expect(targets.filter((t) => t.cohort === "new")).toHaveLength(1);
    expect(targets.filter((t) => t.cohort === "stable")).toHaveLength(3);

    const prober = ProberHandle.start();
    cleanups.push(() => prober.stop());
    const results: DeepCheckResult[] = [];
    prober.subscribe((batch) => results.push(...batch));
    prober.sync(targets);

    // Then: each pod is checked at least twice, and the assessment tells the cohorts apart.
    await waitFor(() => targets.every((t) => results.filter((r) => r.key === t.key).length >= 2), {
      what: "two results for each of the 4 pods",
      timeoutMs: 30_000,
    });
    const tally = tallyByCohort(results);
    expect(tally.new).toMatchObject({ pass: 0, error: 0 });
    expect(tally.new.fail).toBeGreaterThanOrEqual(2);
    expect(tally.stable).toMatchObject({ fail: 0, error: 0 });
    expect(tally.stable.pass).toBeGreaterThanOrEqual(6);
    const newPod = targets.find((t) => t.cohort === "new")!;
    const assessment = results
      .filter((r) => r.key === newPod.key)
      .reduce((a, r) => assessDeepCheck(a, r.outcome), NO_ASSESSMENT);
    expect(podStanding(assessment, { successThreshold: 3, failureLimit: 2 })).toBe("Failing");
    expect(results.find((r) => r.key === newPod.key)).toMatchObject({
      pod: newPod.pod,
      revision: newHash,
      statusCode: 503,
      bodyMatched: false,
    });
    // Every request went to a pod's own IP, on its path, with that IP as Host.
    for (const line of requests) expect(line).toMatch(/^(\S+) GET \/health\/deep host=\1:8080$/);

    // And when a stable pod goes away, the prober stops checking it.
    const gone = targets.find((t) => t.cohort === "stable")!;
    await core.deleteNamespacedPod({ name: gone.pod, namespace });
    await waitFor(
      async () => {
        const pods = (await core.listNamespacedPod({ namespace, labelSelector: "app=web" })).items;
        return !pods.some((p) => p.metadata?.uid === gone.key);
      },
      { what: `pod ${gone.pod} to be deleted` },
    );
    prober.remove([gone.key]);
    await delay(200); // results the worker sent before it handled the removal are in by now
    const after = results.length;
    await waitFor(() => results.length >= after + 6, {
      what: "more results from the remaining pods",
      timeoutMs: 20_000,
    });
    expect(results.slice(after).filter((r) => r.key === gone.key)).toEqual([]);
  },
);
