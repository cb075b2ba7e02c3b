// The cost of Enforce at admission: the latency of a Deployment write (a label patch) with
// `--records` governed Deployments in its namespace, each with a HealthTarget record (holding its
// decision as the stable one, as once its rollout completed) and an entry in the namespace's
// HealthRelease (the index admission reads, where the released decision is kept).
// The enforce MutatingAdmissionPolicy's binding names that one HealthRelease, so the API server
// hands each write one parameter however many records the namespace holds; an object selector
// spares Deployments without healthgate's release label. Every entry has its own decision (the
// index's worst case: nothing shared). Measured with the policy unbound (baseline), bound for a
// Deployment never released, and bound for a released one (its decision applied on every
// write). Prints a table; asserts nothing.
//
//   node_modules/.bin/node bench/admission.ts [--records 1000] [--samples 200]
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { admissionList } from "../src/admission/enforce.ts";
import { RELEASED_LABEL } from "../src/policy/enforce.ts";
import {
  RELEASE_SHARD_LABEL,
  releaseIndexName,
  releaseShard,
  type Decision,
} from "../src/api/v1alpha1/index.ts";
import { resources } from "../src/kube/client.ts";
import {
  benchClient,
  benchDecision,
  inParallel,
  installCrd,
  kubectl,
  machineLoad,
  percentile,
  say,
  startBenchPlane,
  table,
} from "./support.ts";
import type { KubeObject } from "../src/kube/client.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "1000" },
    samples: { type: "string", default: "200" },
  },
});
const records = Number(values.records);
const samples = Number(values.samples);

const plane = await startBenchPlane();
try {
  const client = benchClient(plane);
  const apply = (obj: KubeObject, fieldManager = "bench", subresource?: "status") =>
    client.applyObject(obj, { fieldManager, force: true, ...(subresource ? { subresource } : {}) });
  const dir = await mkdtemp(path.join(os.tmpdir(), "healthgate-bench-admission-"));
  const kubectlApply = async (objects: unknown[], ...extra: string[]) => {
    const file = path.join(dir, "objects.json");
    await writeFile(file, JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
    await kubectl(plane, ["apply", "--server-side", "--force-conflicts", ...extra, "-f", file]);
  };
  await installCrd(plane);
  // The plane's admin user stands in for healthgate's ServiceAccount as the record-status writer.
  const writer = (
    await kubectl(plane, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
  ).trim();
  const admission = admissionList("bench", writer).items as KubeObject[];
  const bindings = admission.filter(
    (o) =>
      o.kind === "MutatingAdmissionPolicyBinding" && (o as { spec?: { paramRef?: unknown } }).spec?.paramRef,
  );
  await kubectlApply(admission.filter((o) => !bindings.includes(o)));
  const ns = "bench-admission";
  await kubectl(plane, ["create", "namespace", ns]);

  const decision = benchDecision();
  const record = (name: string) => ({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthTarget",
    metadata: { name, namespace: ns },
    spec: { deployment: name, policy: "bench" },
  });
  /** Index entries as healthgate writes them: into each Deployment's shard's HealthRelease. */
  const indexEntries = async (entries: [name: string, released: Decision][]) => {
    const byIndex = Map.groupBy(entries, ([name]) => releaseIndexName(releaseShard(name)));
    for (const [name, group] of byIndex) {
      const index = {
        apiVersion: "healthgate.io/v1alpha1",
        kind: "HealthRelease",
        metadata: { name, namespace: ns },
      };
      await apply(index as KubeObject);
      await client.mergePatchStatus(
        { ...index, ...index.metadata },
        {
          deployments: Object.fromEntries(group.map(([deployment, d]) => [deployment, d.revision])),
          decisions: Object.fromEntries(group.map(([, d]) => [d.revision, d])),
        },
        { fieldManager: "healthgate-status" },
      );
    }
  };
  const writeRecord = async (name: string, released: Decision) => {
    await apply(record(name) as KubeObject);
    await apply(
      { ...record(name), status: { stable: released } } as KubeObject,
      "healthgate-status",
      "status",
    );
  };
  const others = Array.from({ length: records }, (_, i): [string, Decision] => [
    `other-${i}`,
    { ...decision, revision: `other-${i}` },
  ]);
  say(`creating ${records} records (each with a stable decision) in ${ns}`);
  await inParallel(others, 8, ([name, released]) => writeRecord(name, released));
  say(`indexing them in the HealthReleases of their shards`);
  for (let i = 0; i < others.length; i += 100) await indexEntries(others.slice(i, i + 100));
  await apply({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace: ns, labels: { app: "web" } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "web" } },
      template: {
        metadata: { labels: { app: "web" } },
        spec: {
          containers: [
            { name: "web", image: "registry.invalid/web:1", ports: [{ name: "http", containerPort: 8080 }] },
          ],
        },
      },
    },
  } as KubeObject);

  let n = 0;
  const measure = async () => {
    const times: number[] = [];
    for (let i = 0; i < samples + 10; i++) {
      const started = performance.now();
      await client.jsonPatch(resources.deployments, { namespace: ns, name: "web" }, [
        { op: "add", path: "/metadata/labels/sample", value: String(n++) },
      ]);
      if (i >= 10) times.push(performance.now() - started);
    }
    return times;
  };
  const rows: string[][] = [];
  const row = (what: string, times: number[]) =>
    rows.push([what, ...[50, 90, 99].map((p) => percentile(times, p).toFixed(1))]);

  await delay(3_000);
  row("enforce policy unbound (baseline)", await measure());
  await kubectlApply(bindings);
  await delay(3_000);
  row(`bound, ${records} records; Deployment not released (no label)`, await measure());
  await writeRecord("web", decision);
  await indexEntries([["web", decision]]);
  await client.jsonPatch(resources.deployments, { namespace: ns, name: "web" }, [
    { op: "add", path: `/metadata/labels/${RELEASED_LABEL.replace("/", "~1")}`, value: decision.revision },
    {
      op: "add",
      path: `/metadata/labels/${RELEASE_SHARD_LABEL.replace("/", "~1")}`,
      value: releaseShard("web"),
    },
  ]);
  await delay(3_000);
  row(`bound, ${records} records; released Deployment (its decision applied)`, await measure());

  // healthgate's own cost per release in such a namespace: one entry's merge patch of the index.
  const entryTimes: number[] = [];
  for (let i = 0; i < Math.min(samples, 50); i++) {
    const started = performance.now();
    await indexEntries([[`other-${i}`, { ...decision, revision: `other-${i}-b` }]]);
    entryTimes.push(performance.now() - started);
  }
  row(`HealthRelease entry write (one release), ${records} entries`, entryTimes);

  process.stdout.write(
    `Deployment label patch round-trip, ms (${samples} samples each, ${records} records and HealthRelease entries in the namespace)\n` +
      `${table(["case", "p50", "p90", "p99"], rows)}\n${machineLoad()}\n`,
  );
} finally {
  await plane.stop();
}
