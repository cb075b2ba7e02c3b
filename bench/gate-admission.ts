// The gate webhook under a relist (issue 20): admission answers must not wait behind a relist.
// A real `healthgate run` replica serves the gate webhook (the chart's registration, pointed at
// it) while its pod informer holds `--pods` pods (100 per Deployment, governed) and relists them
// every `--resync-seconds` (the informer's periodic relist-and-diff, the same code path as a
// relist after a 410). Meanwhile Pod CREATEs of a gated revision go through the real API server
// at a steady rate (open loop: one every 1000/rate ms, whatever the previous ones do). Prints:
//
//   - fail-opens: created pods of the gated revision that came back without the
//     healthgate.io/deep-check gate (the API server let them in because the webhook did not answer
//     within timeoutSeconds), and the API server's own apiserver_admission_webhook_fail_open_count;
//   - the CREATE round trip (client side) p50/p99/max, split into CREATEs that overlapped a pod
//     relist and those that did not; the relist windows come from healthgate's debug log;
//   - the API server's histogram of the webhook call's duration (apiserver_admission_webhook_
//     admission_duration_seconds: the share answered within 25 ms and 100 ms).
//
// Asserts nothing. The certificates are the bench's own (an IP address 127.0.0.1 serving
// certificate), served with --webhook-certificates=external as with cert-manager: the serving
// path is the same as with self-managed ones.
//
//   node_modules/.bin/node bench/gate-admission.ts [--pods 10000] [--seconds 200] [--rate 20] [--resync-seconds 60]
import { execFile } from "node:child_process";
import path from "node:path";
import { randomUUID } from "node:crypto";
import https from "node:https";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { certStateData, DEFAULT_CERT_SETTINGS, planCertificates } from "../src/admission/certs.ts";
import { freePort } from "../src/devcluster/net.ts";
import { CoreV1Api } from "@kubernetes/client-node";
import { loadKubeConfig, type KubeObject } from "../src/kube/client.ts";
import {
  benchClient,
  buildHealthgate,
  imageEnv,
  imageNodeFlags,
  inParallel,
  installCrd,
  kubectlApplyObjects,
  machineLoad,
  percentile,
  say,
  spawnOperator,
  startBenchPlane,
  table,
  waitReady,
} from "./support.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "10000" },
    seconds: { type: "string", default: "200" },
    rate: { type: "string", default: "20" },
    "resync-seconds": { type: "string", default: "60" },
  },
});
const execFileAsync = promisify(execFile);
const PODS = Number(values.pods);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const RESYNC = Number(values["resync-seconds"]);
const PER_DEPLOYMENT = 100;
const DEPLOYMENTS = Math.ceil(PODS / PER_DEPLOYMENT);
const SYSTEM = "healthgate-system";
const LOAD = "load";
const BENCH = "bench";
/** The same CREATEs where the webhook is not called (its namespaceSelector leaves it out): the plane's own latency. */
const PLAIN = "bench-plain";
const GATE = "healthgate.io/deep-check";
const STABLE = "5d8c7b9f4a";
const NEW = "7f6e5d4c3b";
const TIMEOUT_SECONDS = 2;

const hex = (n: number, width: number) => (n >>> 0).toString(16).padStart(width, "0").slice(-width);

/** A pod of ~3 KB as served (two containers, env, probes, resources), of Deployment `app`. */
function loadPod(app: string, index: number): KubeObject {
  const hash = hex(app.length * 7919 + Number(app.slice(4)), 10);
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${app}-${hash}-${hex(index * 2654435761, 5)}`,
      namespace: LOAD,
      labels: { app, "pod-template-hash": hash, "app.kubernetes.io/name": app, tier: "backend" },
      annotations: { "prometheus.io/scrape": "true", "prometheus.io/port": "9090" },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: `${app}-${hash}`,
          uid: `uid-${app}`,
          controller: true,
        },
      ],
    },
    spec: {
      containers: [
        {
          name: "app",
          image: `registry.example.com/shop/${app}:1.42.3`,
          ports: [
            { name: "http", containerPort: 8080 },
            { name: "metrics", containerPort: 9090 },
          ],
          env: Array.from({ length: 8 }, (_, i) => ({ name: `SETTING_${i}`, value: `value-${i}-${app}` })),
          resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
          livenessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 10 },
          readinessProbe: { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 5 },
        },
        {
          name: "proxy",
          image: "registry.example.com/mesh/proxy:1.31.0",
          args: ["proxy", "sidecar", "--concurrency=2"],
          resources: { requests: { cpu: "50m", memory: "64Mi" } },
        },
      ],
    },
  } as KubeObject;
}

const deployment = (name: string, namespace: string): KubeObject =>
  ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace, labels: { "bench.healthgate.io/governed": "yes" } },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: "app", image: `registry.example.com/shop/${name}:1` }] },
      },
    },
  }) as KubeObject;

const policy = (namespace: string, rollout: boolean) => ({
  apiVersion: "healthgate.io/v1alpha1",
  kind: "HealthPolicy",
  metadata: { name: "all", namespace },
  spec: {
    mode: "Audit",
    selector: { matchLabels: { "bench.healthgate.io/governed": "yes" } },
    ...(rollout
      ? { rollout: { steps: [{ weight: 100 }], deepCheck: { path: "/health/deep", port: "http" } } }
      : {}),
  },
});

const plane = await startBenchPlane();
const build = await buildHealthgate();
let operator: Awaited<ReturnType<typeof spawnOperator>> | undefined;
try {
  const client = benchClient(plane);
  await installCrd(plane);
  const core = loadKubeConfig(plane.kubeconfigPath).makeApiClient(CoreV1Api);
  for (const name of [SYSTEM, LOAD, BENCH, PLAIN])
    await core.createNamespace({ body: { metadata: { name } } });

  // ---- the objects the replica caches --------------------------------------------------------
  const began = performance.now();
  await kubectlApplyObjects(plane, [policy(LOAD, false), policy(BENCH, true)]);
  await inParallel(
    Array.from({ length: DEPLOYMENTS }, (_, i) => `app-${i}`),
    16,
    (name) => client.create(deployment(name, LOAD)),
  );
  await client.create(deployment("web", BENCH));
  say(`creating ${PODS} pods in ${DEPLOYMENTS} Deployments (32 requests in flight)`);
  let done = 0;
  await inParallel(
    Array.from({ length: PODS }, (_, i) => i),
    32,
    async (i) => {
      await client.create(loadPod(`app-${Math.floor(i / PER_DEPLOYMENT)}`, i));
      if (++done % 2000 === 0) say(`  ${done} pods`);
    },
  );
  say(`created in ${((performance.now() - began) / 1000).toFixed(0)} s`);
  // The record says which revision of bench/web is stable (no controller manager runs here, so
  // no rollout completes): pods of any other revision get the gate.
  await client.create({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthTarget",
    metadata: { name: "web", namespace: BENCH },
    spec: { deployment: "web", policy: "all" },
  } as KubeObject);
  await client.applyObject(
    {
      apiVersion: "healthgate.io/v1alpha1",
      kind: "HealthTarget",
      metadata: { name: "web", namespace: BENCH },
      status: { rollout: { phase: "Completed", revision: STABLE, stableRevision: STABLE } },
    } as KubeObject,
    { fieldManager: "healthgate-rollout", subresource: "status", force: true },
  );

  // ---- the webhook: certificates, Secret, registration -------------------------------------
  const port = await freePort("127.0.0.1");
  const certs = planCertificates(
    undefined,
    { ...DEFAULT_CERT_SETTINGS, dnsNames: [], ipAddresses: ["127.0.0.1"], commonName: "127.0.0.1" },
    Date.now(),
  )!.state;
  await client.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "healthgate-webhook-tls", namespace: SYSTEM },
    data: certStateData(certs),
  } as KubeObject);

  operator = await spawnOperator({
    main: build.main,
    kubeconfig: plane.kubeconfigPath,
    nodeFlags: await imageNodeFlags(),
    env: await imageEnv(),
    logLevel: "debug",
    extraArgs: [
      `--webhook-port=${port}`,
      `--webhook-namespace=${SYSTEM}`,
      "--webhook-secret=healthgate-webhook-tls",
      "--webhook-certificates=external",
      `--resync-seconds=${RESYNC}`,
    ],
  });
  // Pod relist windows, from the debug log ("relisting" … "relisted").
  const relists: { start: number; end?: number }[] = [];
  const lines = createInterface({ input: operator.child.stdout! });
  lines.on("line", (line) => {
    if (!line.includes('"resource":"pods"')) return;
    let entry: { msg?: string; time?: string; objects?: number };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    const at = entry.time ? Date.parse(entry.time) : Date.now();
    if (entry.msg === "relisting") relists.push({ start: at });
    else if (entry.msg === "relisted" || entry.msg === "relist found changes the watch never delivered") {
      const open = relists.findLast((r) => r.end === undefined);
      if (open) open.end = at;
    }
  });
  const readyMs = await waitReady(operator);
  say(`healthgate ready in ${(readyMs / 1000).toFixed(1)} s (its caches hold the ${PODS} pods)`);

  await kubectlApplyObjects(plane, [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name: "healthgate-gate" },
      webhooks: [
        {
          name: "gate.healthgate.io",
          admissionReviewVersions: ["v1"],
          sideEffects: "None",
          failurePolicy: "Ignore",
          timeoutSeconds: TIMEOUT_SECONDS,
          reinvocationPolicy: "Never",
          clientConfig: {
            url: `https://127.0.0.1:${port}/gate`,
            caBundle: Buffer.from(certs.bundle).toString("base64"),
          },
          rules: [
            {
              apiGroups: [""],
              apiVersions: ["v1"],
              operations: ["CREATE"],
              resources: ["pods"],
              scope: "Namespaced",
            },
          ],
          namespaceSelector: {
            matchExpressions: [
              {
                key: "kubernetes.io/metadata.name",
                operator: "NotIn",
                values: ["kube-system", SYSTEM, PLAIN],
              },
            ],
          },
          matchConditions: [
            {
              name: "owned-by-a-replicaset",
              expression:
                "has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(r, r.kind == 'ReplicaSet' && has(r.controller) && r.controller)",
            },
            {
              name: "not-host-network",
              expression: "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
            },
          ],
        },
      ],
    },
  ]);

  let seq = 0;
  type Created = { spec?: { readinessGates?: { conditionType: string }[] } };
  const podBody = (namespace: string) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `web-${NEW}-${hex(seq++, 6)}`,
      namespace,
      labels: { app: "web", "pod-template-hash": NEW },
      ownerReferences: [
        { apiVersion: "apps/v1", kind: "ReplicaSet", name: `web-${NEW}`, uid: "uid-web", controller: true },
      ],
    },
    spec: { containers: [{ name: "app", image: "registry.example.com/shop/web:2" }] },
  });
  const createPod = async (namespace: string, dryRun = false): Promise<Created> => {
    const body = podBody(namespace);
    if (dryRun) return (await core.createNamespacedPod({ namespace, body, dryRun: "All" })) as Created;
    return (await client.create(body as KubeObject)) as Created;
  };
  const gated = (pod: Created) => pod.spec?.readinessGates?.some((g) => g.conditionType === GATE) ?? false;
  // The API server calls the webhook with the bench's CA, and the replica's caches say web's new revision is gated.
  for (let i = 0; !gated(await createPod(BENCH, true)); i++) {
    if (i > 600) throw new Error(`the webhook never gated a pod:\n${operator.output()}`);
    await delay(100);
  }
  // The replica's own answer, without the API server: an AdmissionReview posted straight to it.
  const agent = new https.Agent({ keepAlive: true, ca: certs.bundle });
  const review = (): Promise<boolean> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        request: { uid: randomUUID(), operation: "CREATE", namespace: BENCH, object: podBody(BENCH) },
      });
      const req = https.request(
        {
          host: "127.0.0.1",
          port,
          path: "/gate",
          method: "POST",
          agent,
          headers: { "content-type": "application/json" },
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => {
            try {
              resolve(Boolean((JSON.parse(text) as { response?: { patch?: string } }).response?.patch));
            } catch (err) {
              reject(err as Error);
            }
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });

  const webhookMetrics = async () => {
    const { stdout: text } = await execFileAsync(
      path.join(plane.binDir, "kubectl"),
      ["--kubeconfig", plane.kubeconfigPath, "get", "--raw", "/metrics"],
      { maxBuffer: 256 << 20 },
    );
    const pick = (prefix: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith(prefix) && l.includes('name="gate.healthgate.io"'))
        .reduce((m, l) => {
          const le = /le="([^"]+)"/.exec(l)?.[1] ?? "";
          m.set(le, (m.get(le) ?? 0) + Number(l.split(" ").at(-1)));
          return m;
        }, new Map<string, number>());
    return {
      buckets: pick("apiserver_admission_webhook_admission_duration_seconds_bucket"),
      failOpen: [...pick("apiserver_admission_webhook_fail_open_count").values()].reduce((a, b) => a + b, 0),
    };
  };
  const before = await webhookMetrics();

  // ---- the measurement ---------------------------------------------------------------------
  say(
    `each ${(1000 / RATE).toFixed(0)} ms for ${SECONDS} s: a pod of the gated revision through the API server, the same ` +
      `in a namespace the webhook leaves out, and an AdmissionReview straight to the replica (pod relist every ${RESYNC} s)`,
  );
  type Kind = "webhook" | "plain" | "direct";
  const samples: { kind: Kind; start: number; end: number; ms: number; gated: boolean; error?: string }[] =
    [];
  const inFlight = new Set<Promise<void>>();
  const measure = (kind: Kind, work: () => Promise<boolean>) => {
    const start = Date.now();
    const startHr = performance.now();
    const p = work()
      .then(
        (g) => void samples.push({ kind, start, end: Date.now(), ms: performance.now() - startHr, gated: g }),
      )
      .catch((err: unknown) => {
        const ms = performance.now() - startHr;
        samples.push({ kind, start, end: Date.now(), ms, gated: false, error: String(err) });
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const t0 = performance.now();
  const wallT0 = Date.now();
  for (let i = 0; i < SECONDS * RATE; i++) {
    const wait = t0 + (i * 1000) / RATE - performance.now();
    if (wait > 0) await delay(wait);
    measure("webhook", async () => gated(await createPod(BENCH)));
    measure("plain", async () => gated(await createPod(PLAIN)));
    measure("direct", review);
  }
  await Promise.all(inFlight);
  agent.destroy();
  const after = await webhookMetrics();

  // ---- figures -----------------------------------------------------------------------------
  const windows = relists.filter((r) => r.start >= wallT0 - 1000);
  const during = (s: (typeof samples)[number]) =>
    windows.some((w) => s.start <= (w.end ?? Number.POSITIVE_INFINITY) && s.end >= w.start);
  const row = (what: string, set: typeof samples) => {
    const ms = set.map((s) => s.ms);
    return [
      what,
      String(set.length),
      String(set.filter((s) => !s.gated && !s.error).length),
      String(set.filter((s) => s.error).length),
      percentile(ms, 50).toFixed(1),
      percentile(ms, 99).toFixed(1),
      Math.max(...ms).toFixed(1),
    ];
  };
  const delta = (le: string) => (after.buckets.get(le) ?? 0) - (before.buckets.get(le) ?? 0);
  const calls = delta("+Inf");
  const share = (le: string) => (calls > 0 ? `${((100 * delta(le)) / calls).toFixed(1)} %` : "n/a");
  process.stdout.write(
    `\nGate webhook under pod relists: ${PODS} pods cached, relisted every ${RESYNC} s; ` +
      `${RATE} Pod CREATEs of a gated revision per second through the API server for ${SECONDS} s ` +
      `(webhook timeoutSeconds ${TIMEOUT_SECONDS}, failurePolicy Ignore)\n\n` +
      table(
        ["requests", "count", "fail-open (no gate)", "errors", "p50 ms", "p99 ms", "max ms"],
        (
          [
            ["Pod CREATE, webhook called", "webhook"],
            ["AdmissionReview straight to the replica", "direct"],
            ["Pod CREATE, no webhook (the plane alone)", "plain"],
          ] as const
        ).flatMap(([what, kind]) => {
          const set = samples.filter((s) => s.kind === kind);
          const rows = [
            row(`${what}: all`, set),
            row("  overlapping a pod relist", set.filter(during)),
            row(
              "  outside relists",
              set.filter((s) => !during(s)),
            ),
          ];
          // Without the webhook no gate is expected: the column does not apply.
          if (kind === "plain") for (const r of rows) r[2] = "-";
          return rows;
        }),
      ) +
      `\n\npod relists during the run: ${windows.length} (${windows
        .map((w) => (w.end ? `${((w.end - w.start) / 1000).toFixed(1)} s` : "unfinished"))
        .join(", ")})` +
      `\nAPI server: webhook calls ${calls}, answered within 25 ms ${share("0.025")}, within 100 ms ${share("0.1")}, ` +
      `within 500 ms ${share("0.5")}; apiserver_admission_webhook_fail_open_count +${after.failOpen - before.failOpen}` +
      `\n${machineLoad()}\n`,
  );
  for (const s of samples.filter((x) => x.error).slice(0, 3)) say(`error: ${s.error}`);
} finally {
  await operator?.stop();
  await build.remove();
  await plane.stop();
}
