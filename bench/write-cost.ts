// What each kind of write healthgate makes in an Enforce release costs the API server, as
// throughput on one plane: the same 1,000 objects written once per kind, `--in-flight` at a time.
//
//   node_modules/.bin/node bench/write-cost.ts [--objects 1000] [--in-flight 4,32] [--repeat 2]
//
// etcd + kube-apiserver only (no controller manager, no admission policy bound): the cost of the
// write itself. Kinds: a JSON patch of an annotation on a Deployment (policy-edit.ts's bare
// patch); the release label by server-side apply (as healthgate-release writes it) and by JSON
// patch; a HealthTarget record's status (a decision as `stable`, pacing and the Enforced condition)
// by server-side apply (as healthgate-status writes it) and by merge patch. Each round writes a
// new value, so every write changes the object.
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { HANDLER_MERGE_SUFFIX, admissionList } from "../src/admission/enforce.ts";
import {
  RELEASE_SHARD_LABEL,
  releaseIndexName,
  releaseShard,
  type Decision,
} from "../src/api/v1alpha1/index.ts";
import { RELEASED_LABEL } from "../src/policy/enforce.ts";
import { resources, type KubeObject } from "../src/kube/client.ts";
import {
  benchClient,
  benchDecision,
  benchDeployment,
  inParallel,
  installCrd,
  kubectl,
  machineLoad,
  say,
  startBenchPlane,
  table,
} from "./support.ts";

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "1000" },
    "in-flight": { type: "string", default: "4,32" },
    repeat: { type: "string", default: "2" },
  },
});
const N = Number(values.objects);
const inFlight = values["in-flight"].split(",").map(Number);
const repeat = Number(values.repeat);
const NS = "bench-writes";

const plane = await startBenchPlane();
try {
  const client = benchClient(plane);
  await installCrd(plane);
  await kubectl(plane, ["create", "namespace", NS]);
  const names = Array.from({ length: N }, (_, i) => `w-${i}`);
  const decision = benchDecision;
  say(`creating ${N} Deployments and ${N} HealthTarget records`);
  await inParallel(names, 32, (name) => client.create(benchDeployment(name, NS, { tier: "bench" })));
  const record = (name: string) => ({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthTarget",
    metadata: { name, namespace: NS },
  });
  await inParallel(names, 32, (name) =>
    client.applyObject({ ...record(name), spec: { deployment: name, policy: "bench" } } as KubeObject, {
      fieldManager: "healthgate",
      force: true,
    }),
  );
  const status = (round: number) => {
    const released = decision(round);
    return {
      stable: released,
      pacing: { state: "Released" },
      conditions: [
        {
          type: "Enforced",
          status: "True",
          reason: "Enforced",
          message: `the template carries revision ${released.revision}`,
          lastTransitionTime: new Date(Date.UTC(2026, 0, 1, 0, 0, round)).toISOString().replace(".000", ""),
        },
      ],
    };
  };
  const ref = (name: string) => ({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthTarget",
    namespace: NS,
    name,
  });
  let round = 0;
  const kinds: [string, (name: string, round: number) => Promise<unknown>][] = [
    [
      "Deployment: JSON patch of an annotation (the bare patch)",
      (name, r) =>
        client.jsonPatch(resources.deployments, { namespace: NS, name }, [
          { op: "add", path: "/metadata/annotations", value: { "bench.healthgate.io/touched": String(r) } },
        ]),
    ],
    [
      "Deployment: the release label by server-side apply",
      (name, r) =>
        client.applyObject(
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name, namespace: NS, labels: { "healthgate.io/released": `r${r}` } },
          } as KubeObject,
          { fieldManager: "healthgate-release", force: true },
        ),
    ],
    [
      "Deployment: the release label by JSON patch",
      (name, r) =>
        client.jsonPatch(
          resources.deployments,
          { namespace: NS, name },
          [{ op: "add", path: "/metadata/labels/healthgate.io~1released", value: `p${r}` }],
          { fieldManager: "healthgate-release" },
        ),
    ],
    [
      "Deployment: the decision written into the template by JSON patch (no admission)",
      (name, r) => {
        const container = decision(r % 2 === 0 ? 5 : 8).containers[0]!;
        const at = "/spec/template/spec/containers/0";
        return client.jsonPatch(resources.deployments, { namespace: NS, name }, [
          { op: "add", path: `${at}/livenessProbe`, value: container.livenessProbe },
          { op: "add", path: `${at}/readinessProbe`, value: container.readinessProbe },
          { op: "add", path: `${at}/lifecycle`, value: { preStop: container.preStop } },
          {
            op: "add",
            path: "/spec/template/spec/terminationGracePeriodSeconds",
            value: 20 + (r % 2 === 0 ? 5 : 8),
          },
        ]);
      },
    ],
    [
      "HealthTarget: the record's status by server-side apply",
      (name, r) =>
        client.applyObject({ ...record(name), status: status(r) } as KubeObject, {
          fieldManager: "healthgate-status",
          force: true,
          subresource: "status",
        }),
    ],
    [
      "HealthTarget: the record's status by merge patch",
      (name, r) => client.mergePatchStatus(ref(name), status(r), { fieldManager: "healthgate-status" }),
    ],
  ];
  const rows: string[][] = [];
  for (let rep = 1; rep <= repeat; rep++) {
    for (const [kind, write] of kinds) {
      for (const k of inFlight) {
        round++;
        const r = round;
        const start = performance.now();
        await inParallel(names, k, (name) => write(name, r));
        const seconds = (performance.now() - start) / 1000;
        rows.push([kind, String(k), String(rep), `${(N / seconds).toFixed(0)}/s`]);
        say(`${kind}, ${k} in flight: ${(N / seconds).toFixed(0)}/s`);
      }
    }
  }
  // Last, the release write as healthgate makes it under Enforce: the chart's admission policy
  // bound, each Deployment's entry in its shard's HealthRelease, the decision alternating between
  // two drains so that every write changes the template (as a policy edit does).
  const dir = await mkdtemp(path.join(os.tmpdir(), "healthgate-bench-writes-"));
  const file = path.join(dir, "admission.json");
  // The plane's admin user stands in for healthgate's ServiceAccount as the index's writer.
  const writer = (
    await kubectl(plane, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
  ).trim();
  const admission = admissionList("bench", writer).items as KubeObject[];
  const isHandlerMerge = (o: KubeObject) => o.metadata.name.endsWith(HANDLER_MERGE_SUFFIX);
  const applyList = async (items: KubeObject[]) => {
    await writeFile(file, JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    await kubectl(plane, ["apply", "--server-side", "--force-conflicts", "-f", file]);
  };
  const byShard = Map.groupBy(names, (name) => releaseIndexName(releaseShard(name)));
  const indexAll = async (released: Decision) => {
    for (const [index, group] of byShard) {
      const obj = { apiVersion: "healthgate.io/v1alpha1", kind: "HealthRelease", namespace: NS, name: index };
      await client.applyObject(
        {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          metadata: { name: index, namespace: NS },
        } as KubeObject,
        { fieldManager: "healthgate", force: true },
      );
      await client.mergePatchStatus(
        obj,
        {
          deployments: Object.fromEntries(group.map((name) => [name, released.revision])),
          decisions: { [released.revision]: released },
        },
        { fieldManager: "healthgate-status" },
      );
    }
  };
  const phases: [string, KubeObject[]][] = [
    ["the enforce policy alone", admission.filter((o) => !isHandlerMerge(o))],
    ["the enforce and handler-merge policies (the chart's)", admission],
  ];
  for (const [phase, items] of phases) {
    await applyList(items);
    for (let rep = 1; rep <= repeat; rep++) {
      for (const k of inFlight) {
        round++;
        const annotated = performance.now();
        await inParallel(names, k, (name) =>
          client.jsonPatch(resources.deployments, { namespace: NS, name }, [
            {
              op: "add",
              path: "/metadata/annotations",
              value: { "bench.healthgate.io/touched": String(round) },
            },
          ]),
        );
        const annotatedSeconds = (performance.now() - annotated) / 1000;
        const what = `Deployment: JSON patch of an annotation, ${phase} (nothing to change)`;
        rows.push([what, String(k), String(rep), `${(N / annotatedSeconds).toFixed(0)}/s`]);
        say(`${what}, ${k} in flight: ${(N / annotatedSeconds).toFixed(0)}/s`);
      }
      for (const k of inFlight) {
        round++;
        const released = decision(round % 2 === 0 ? 5 : 8);
        await indexAll(released);
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const start = performance.now();
        await inParallel(names, k, (name) =>
          client.applyObject(
            {
              apiVersion: "apps/v1",
              kind: "Deployment",
              metadata: {
                name,
                namespace: NS,
                labels: { [RELEASED_LABEL]: released.revision, [RELEASE_SHARD_LABEL]: releaseShard(name) },
              },
            } as KubeObject,
            { fieldManager: "healthgate-release", force: true },
          ),
        );
        const seconds = (performance.now() - start) / 1000;
        const kind = `Deployment: the release write, ${phase} (the template changes)`;
        rows.push([kind, String(k), String(rep), `${(N / seconds).toFixed(0)}/s`]);
        say(`${kind}, ${k} in flight: ${(N / seconds).toFixed(0)}/s`);
      }
    }
  }
  const sample = (await client.get(resources.deployments, { namespace: NS, name: names[0]! })) as {
    spec?: {
      template?: { spec?: { containers?: { lifecycle?: { preStop?: { sleep?: { seconds?: number } } } }[] } };
    };
  };
  say(
    `(admission applied: ${names[0]}'s preStop sleeps ${sample.spec?.template?.spec?.containers?.[0]?.lifecycle?.preStop?.sleep?.seconds} s)`,
  );
  console.log(table(["write", "in flight", "run", "writes/s"], rows));
  console.log(`load average at the end: ${machineLoad()}`);
} finally {
  await plane.stop();
}
