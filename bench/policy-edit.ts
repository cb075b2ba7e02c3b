// How long one policy edit takes to reach every Deployment it governs.
//
//   node_modules/.bin/node bench/policy-edit.ts [--deployments 1000] [--concurrency N] [--cpu-prof DIR]
//
// Starts etcd, kube-apiserver and kube-controller-manager (the real Deployment and ReplicaSet
// controllers, so each new template brings a new ReplicaSet and its events, as on a cluster; no
// scheduler or kubelet: pods stay Pending) with Enforce's MutatingAdmissionPolicies installed as
// the chart installs them, creates `--deployments` Deployments and one Enforce
// HealthPolicy selecting them all, runs `healthgate run` (compiled, the image's Node flags) and
// waits until every Deployment carries the policy's preStop drain. Then it edits the policy once
// (shutdown.drainSeconds 5 → 8) and measures the time until every Deployment's template carries
// the new drain and healthgate's queue is empty, with healthgate's writes per second, beside
// the bare throughput of patching the same Deployments (32 in flight) measured in the same run.
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import type { Deployment } from "../src/api/k8s.ts";
import { defaultBinDir, startControlPlane } from "../src/devcluster/controlPlane.ts";
import { loadKubeConfig, resources, type KubeObject } from "../src/kube/client.ts";
import { KubeClient } from "../src/kube/client.ts";
import { createMetrics } from "../src/observability/metrics.ts";
import {
  buildHealthgate,
  imageNodeFlags,
  inParallel,
  installAdmission,
  installCrd,
  machineLoad,
  say,
  scrape,
  spawnOperator,
  waitReady,
} from "./support.ts";

const { values: args } = parseArgs({
  options: {
    deployments: { type: "string", default: "1000" },
    /** healthgate's `--concurrency`; omitted: its default. */
    concurrency: { type: "string" },
    /** Write a CPU profile of healthgate (node --cpu-prof) into this directory. */
    "cpu-prof": { type: "string" },
  },
  strict: true,
});
const N = Number(args.deployments);
const NS = "bench";

const plane = await startControlPlane({ binDir: defaultBinDir(), log: say });
const client = new KubeClient(loadKubeConfig(plane.kubeconfigPath), { metrics: createMetrics() });
const build = await buildHealthgate();
const cleanups: (() => Promise<unknown>)[] = [() => plane.stop(), () => build.remove()];
try {
  await installCrd(plane);
  // Enforce acts at admission: without the chart's MutatingAdmissionPolicies no template changes.
  await installAdmission(plane, "healthgate");
  await loadKubeConfig(plane.kubeconfigPath)
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: NS } } });
  const names = Array.from({ length: N }, (_, i) => `web-${String(i).padStart(4, "0")}`);
  say(`creating ${N} Deployments`);
  await inParallel(names, 32, (name) =>
    client.create({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: NS, labels: { tier: "bench" } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            containers: [
              {
                name: "web",
                image: "registry.example/web:1",
                ports: [{ name: "http", containerPort: 8080 }],
              },
            ],
          },
        },
      },
    } as KubeObject),
  );

  // The bare write throughput of this plane: one merge patch per Deployment, 32 in flight.
  const patchStart = performance.now();
  await inParallel(names, 32, (name) =>
    client.jsonPatch(resources.deployments, { namespace: NS, name }, [
      { op: "add", path: "/metadata/annotations", value: { "bench.healthgate.io/touched": "1" } },
    ]),
  );
  const patchesPerSecond = N / ((performance.now() - patchStart) / 1000);

  const policy = (drainSeconds: number) => ({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "bench", namespace: NS },
    spec: {
      selector: { matchLabels: { tier: "bench" } },
      mode: "Enforce",
      endpoints: { port: "http", liveness: { path: "/healthz" }, readiness: { path: "/readyz" } },
      shutdown: { drainSeconds, maxInFlightSeconds: 10 },
    },
  });
  await client.applyObject(policy(5) as KubeObject, { fieldManager: "bench" });
  const operator = await spawnOperator({
    main: build.main,
    kubeconfig: plane.kubeconfigPath,
    nodeFlags: [
      ...(await imageNodeFlags()),
      ...(args["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`] : []),
    ],
    namespaces: [NS],
    ...(args.concurrency ? { extraArgs: [`--concurrency=${args.concurrency}`] } : {}),
  });
  cleanups.unshift(() => operator.stop());
  await waitReady(operator);

  const drained = (d: Deployment, seconds: number) =>
    d.spec.template.spec.containers[0]?.lifecycle?.preStop?.sleep?.seconds === seconds;
  const untilAll = async (seconds: number) => {
    const deadline = performance.now() + 900_000;
    for (;;) {
      let done = 0;
      let continueToken: string | undefined;
      do {
        const page = await client.list(resources.deployments, NS, { limit: 500, continue: continueToken });
        done += page.items.filter((d) => drained(d as unknown as Deployment, seconds)).length;
        continueToken = page.metadata.continue || undefined;
      } while (continueToken);
      if (done === N && (await scrape(operator.port, "healthgate_workqueue_depth")) === 0) return;
      if (performance.now() > deadline)
        throw new Error(`after 900 s only ${done} of ${N} Deployments carry drainSeconds ${seconds}`);
      await delay(200);
    }
  };
  say("waiting for healthgate to enforce the policy on every Deployment");
  const firstStart = performance.now();
  await untilAll(5);
  const firstSeconds = (performance.now() - firstStart) / 1000;

  const applies = () => scrape(operator.port, "healthgate_api_requests_total", { verb: "apply" });
  const appliesBefore = await applies();
  say("editing the policy: shutdown.drainSeconds 5 -> 8");
  const editStart = performance.now();
  await client.applyObject(policy(8) as KubeObject, { fieldManager: "bench" });
  await untilAll(8);
  const editSeconds = (performance.now() - editStart) / 1000;
  const writes = (await applies()) - appliesBefore;

  console.log(
    `\nhealthgate policy edit — ${N} Deployments governed by one Enforce policy, kube-controller-manager running`,
  );
  console.log(`Finished at ${machineLoad()}.`);
  console.log(`first enforcement of all ${N}: ${firstSeconds.toFixed(1)} s`);
  console.log(
    `policy edit → all ${N} carry the new template, queue empty: ${editSeconds.toFixed(1)} s; ` +
      `healthgate's applies ${writes} (${(writes / editSeconds).toFixed(0)}/s)`,
  );
  console.log(`bare patch throughput of the same plane (32 in flight): ${patchesPerSecond.toFixed(0)}/s`);
} finally {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
}
