// The probes concern's Enforce contract against a real kube-apiserver, through admission: the
// owned spec it computes, released as a decision into the Deployment's HealthTarget record, is
// written into the template by the MutatingAdmissionPolicy on healthgate's release write (a
// label alone), reads back as desired once the API server's defaults are filled in (so a
// second reconcile decides the same and sends nothing), and swaps a handler of another kind —
// which v0.1's forced server-side apply could not (422). Then every pair of handler kinds
// (exec, httpGet, tcpSocket, grpc): active, a user's re-apply of the original manifest lands
// and the template keeps the decision; once the record is gone, the same re-apply lands and
// brings the user's handler back (the handler-merge policy).
import type { V1Deployment } from "@kubernetes/client-node";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Deployment } from "../../src/api/k8s.ts";
import { healthPolicy } from "../../src/api/v1alpha1/index.ts";
import { carriesDecision, decisionOf } from "../../src/policy/enforce.ts";
import { ownedFieldsDiffer, probesConcern } from "../../src/policy/probes/concern.ts";
import type { TargetSnapshot } from "../../src/policy/seam.ts";
import { inNamespace, makeDeployment, withProbe } from "../support/builders.ts";
import { testClients, useTestNamespace } from "../support/kube.ts";
import { waitFor } from "../support/waitFor.ts";
import {
  HANDLERS,
  containerNamed,
  deleteRecord,
  handlerKinds,
  probeOwners,
  releaseWrite,
  writeRecord,
  type HandlerKind,
} from "./controller/admission.ts";
import {
  PRIVATE_ADMISSION_LABEL,
  applyAs,
  installCrd,
  kubectl,
  privateAdmission,
} from "./controller/support.ts";

const { apps } = testClients();
const ns = useTestNamespace();

beforeAll(() => installCrd());

const policy = (namespace: string) =>
  healthPolicy.parse({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "web", namespace },
    spec: {
      selector: { matchLabels: { app: "web" } },
      mode: "Enforce",
      endpoints: {
        port: "http",
        liveness: { path: "/healthz" },
        readiness: { path: "/readyz" },
        startup: { path: "/healthz", maxStartupSeconds: 60 },
        deep: { paths: ["/health/deep"] },
      },
      timing: { liveness: { terminationGracePeriodSeconds: 15 }, objectives: { maxEjectSeconds: 20 } },
    },
  });

/** Wire JSON → the JSON types pure code uses (typed client results carry Dates; none matter here). */
const asDeployment = (d: V1Deployment) => JSON.parse(JSON.stringify(d)) as Deployment;

function snapshot(deployment: Deployment, namespace: string): TargetSnapshot {
  return {
    policy: policy(namespace),
    deployment,
    replicaSets: [],
    pods: [],
    pdbs: [],
    nodeZones: {},
    now: new Date(),
  };
}

const read = (name: string, namespace = ns.name) => apps.readNamespacedDeployment({ name, namespace });

/** Waits until the live template carries the decision (admission reads the record from its own cache). */
async function releaseUntilCarried(
  name: string,
  decision: ReturnType<typeof decisionOf>,
  namespace = ns.name,
) {
  return waitFor(
    async () => {
      await releaseWrite(namespace, name, decision.revision);
      const stored = asDeployment(await read(name, namespace));
      expect(carriesDecision(stored.spec.template, decision)).toBe(true);
      return stored;
    },
    { what: `the release of ${decision.revision} to land in Deployment ${name}` },
  );
}

describe("Enforce: the released decision, written at admission", () => {
  it("lands through the release write, reads back as desired, and needs no second write", async () => {
    // Given a Deployment whose liveness probe is an exec (v0.1 answered 422 here, forever)
    const created = await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: makeDeployment(
        "web",
        inNamespace(ns.name),
        withProbe("web", "liveness", { exec: { command: ["cat", "/tmp/ok"] } }),
      ),
    });
    const owned = probesConcern(snapshot(asDeployment(created), ns.name)).ownedSpec!;
    expect(ownedFieldsDiffer(asDeployment(created).spec.template, owned)).toBe(true);
    const decision = decisionOf(owned);

    // When healthgate releases its decision and makes its release write
    await writeRecord(ns.name, "web", decision);
    const stored = await releaseUntilCarried("web", decision);

    // Then the handler is swapped, the template satisfies the decision, a second reconcile
    // decides the same, and no manager owns the probe fields
    const web = stored.spec.template.spec.containers[0]!;
    expect(web.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(web.livenessProbe?.exec).toBeUndefined();
    expect(web.startupProbe?.failureThreshold).toBe(12);
    expect(web.lifecycle?.preStop?.sleep?.seconds).toBe(5);
    expect(stored.spec.template.spec.terminationGracePeriodSeconds).toBe(25);
    const second = probesConcern(snapshot(stored, ns.name));
    expect(decisionOf(second.ownedSpec!)).toEqual(decision);
    expect(second.conditions.find((c) => c.type === "ProbesCompliant")).toMatchObject({ status: "True" });
    expect(probeOwners(await read("web"), "web")).toEqual([]);
  });
});

describe("every pair of handler kinds", () => {
  const kinds = Object.keys(HANDLERS) as HandlerKind[];
  const pairs = kinds.flatMap((from) => kinds.map((to) => ({ from, to })));

  it.each(pairs)(
    "$from → $to: re-applies land while active and after the record is gone",
    async ({ from, to }) => {
      const name = `pair-${from}-${to}`.toLowerCase();
      const manifest = makeDeployment(
        name,
        inNamespace(ns.name),
        withProbe(name, "liveness", HANDLERS[from]),
      );
      await applyAs("test-user", manifest);
      const decision = {
        revision: `${from}-${to}`.toLowerCase(),
        containers: [{ name, livenessProbe: { ...HANDLERS[to], periodSeconds: 10 } }],
      };
      await writeRecord(ns.name, name, decision);
      await releaseUntilCarried(name, decision);

      // Active: another manager's re-apply of the original, without and with force, and client-side
      await applyAs("flux", manifest);
      expect(handlerKinds(containerNamed(await read(name), name)?.livenessProbe)).toEqual([to]);
      await applyAs("argocd", manifest, { force: true });
      await kubectl(["apply", "-n", ns.name, "-f", "-"], { stdin: JSON.stringify(manifest) });
      expect(handlerKinds(containerNamed(await read(name), name)?.livenessProbe)).toEqual([to]);
      // and `kubectl diff --server-side` of the original shows no drift
      await kubectl(["diff", "--server-side", "--field-manager=test-user", "-n", ns.name, "-f", "-"], {
        stdin: JSON.stringify(manifest),
      });

      // Stopped (the record is gone): the user's re-apply lands and brings their handler back
      await deleteRecord(ns.name, name);
      await waitFor(
        async () => {
          await applyAs("test-user", manifest);
          expect(handlerKinds(containerNamed(await read(name), name)?.livenessProbe)).toEqual([from]);
          return true;
        },
        { what: `the user's ${from} handler to come back in ${name}` },
      );
      await applyAs("flux", manifest);
      await applyAs("argocd", manifest, { force: true });
      expect(handlerKinds(containerNamed(await read(name), name)?.livenessProbe)).toEqual([from]);
    },
  );
});

describe("admission cost", () => {
  // Its own namespace, where only its own copies of Enforce's two mutating policies act: the API
  // server counts evaluations per policy across the cluster, and other test files write
  // Deployments at the same time (the shared copies leave this namespace out).
  const costNs = useTestNamespace({ labels: { [PRIVATE_ADMISSION_LABEL]: "true" } });
  let policies: Awaited<ReturnType<typeof privateAdmission>>;
  beforeEach(async () => {
    policies = await privateAdmission(costNs.name);
  });
  afterEach(() => policies.remove());
  const readHere = (name: string) => read(name, costNs.name);

  /** The sum of a kube-apiserver metric's samples whose labels include `label`. */
  async function apiserverCount(metric: string, label: string): Promise<number> {
    const text = await kubectl(["get", "--raw", "/metrics"]);
    return text
      .split("\n")
      .filter((l) => l.startsWith(`${metric}{`) && l.includes(label))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
  }
  /** Evaluations of one policy's mutations (every error type). */
  const policyChecks = (policy: string) =>
    apiserverCount("apiserver_mutating_admission_policy_check_total", `policy="${policy}"`);
  /** Evaluations of one policy's match conditions: writes it was consulted on. */
  const matchConditionChecks = (policy: string) =>
    apiserverCount("apiserver_admission_match_condition_evaluation_seconds_count", `name="${policy}"`);

  it("the handler-merge policy is not evaluated for a Deployment update without a two-handler probe or hook", async () => {
    // Given a Deployment whose probes and hooks carry one handler each, where handler-merge is
    // consulted (its match condition is evaluated) on every update
    await applyAs("test-user", makeDeployment("plain", inNamespace(costNs.name)));
    let write = 0;
    const label = () =>
      kubectl(["label", "--overwrite", "-n", costNs.name, "deployment/plain", `write=${write++}`]);
    await waitFor(
      async () => {
        const before = await matchConditionChecks(policies.handlerMerge);
        await label();
        expect(await matchConditionChecks(policies.handlerMerge)).toBeGreaterThan(before);
        return true;
      },
      { what: "the API server to consult handler-merge on an update in its namespace" },
    );
    const consulted = await matchConditionChecks(policies.handlerMerge);
    const evaluated = await policyChecks(policies.handlerMerge);

    // When it is updated three times
    for (let i = 0; i < 3; i++) await label();

    // Then the API server consulted handler-merge's match condition for each, and evaluated none
    // of its mutations (each patches the whole object, bench/write-cost.ts)
    expect(await matchConditionChecks(policies.handlerMerge)).toBe(consulted + 3);
    expect(await policyChecks(policies.handlerMerge)).toBe(evaluated);
    expect((await readHere("plain")).metadata?.labels?.write).toBe(String(write - 1));
  });

  it("evaluations of the enforce policy per write do not grow with the Deployments the namespace releases to", async () => {
    // Given a released Deployment in a namespace where healthgate released decisions to others
    const decision = {
      revision: "cost",
      containers: [{ name: "cost", livenessProbe: { ...HANDLERS.httpGet, periodSeconds: 10 } }],
    };
    const releaseOthers = async (from: number, to: number) => {
      for (let i = from; i < to; i++)
        await writeRecord(costNs.name, `cost-other-${i}`, { ...decision, revision: `cost-${i}` });
    };
    await releaseOthers(0, 2);
    await applyAs("test-user", makeDeployment("cost", inNamespace(costNs.name)));
    await writeRecord(costNs.name, "cost", decision);
    await releaseUntilCarried("cost", decision, costNs.name);
    let label = 0;
    const checksPerThreeWrites = async () => {
      const before = await policyChecks(policies.enforce);
      for (let i = 0; i < 3; i++)
        await kubectl(["label", "--overwrite", "-n", costNs.name, "deployment/cost", `write=${label++}`]);
      return (await policyChecks(policies.enforce)) - before;
    };
    const few = await checksPerThreeWrites();

    // When healthgate releases to 12 more Deployments there
    await releaseOthers(2, 14);
    const many = await checksPerThreeWrites();

    // Then three writes cost the API server as many evaluations as before (v0.2 with the records
    // as parameters: one per record per write), at most two per write (one reinvocation)
    expect(many).toBe(few);
    expect(few).toBeGreaterThanOrEqual(3);
    expect(few).toBeLessThanOrEqual(6);
    expect(carriesDecision(asDeployment(await readHere("cost")).spec.template, decision)).toBe(true);
  });
});
