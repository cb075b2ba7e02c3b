// Release pacing (issue 19, item 5) on the real control plane, kube-controller-manager rolling the
// Deployments: one Enforce policy edit over 50 Deployments never has more than
// maxConcurrentRollouts of them rolling (sampled continuously from the API server), every one
// converges, and a label edit of a Deployment whose decision still waits does not roll it; a
// decision rides along at once when the user's own write rolls the Deployment anyway.
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { makeDeployment, withImage } from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import { releaseShard } from "../../../src/api/v1alpha1/index.ts";
import { indexedDeployments, readRecord, readReleased, type HealthTargetObject } from "./admission.ts";
import {
  apiRequests,
  installCrd,
  kubectl,
  makePolicy,
  mergePatch,
  patchPolicySpec,
  readDeployment,
  readPolicy,
  requestLog,
  selectingApp,
  useControllerHarness,
  waitForRolloutComplete,
  withMode,
  withShutdown,
} from "./support.ts";

beforeAll(() => installCrd());

const FLEET = 50;
const LIMIT = 3;
const names = Array.from({ length: FLEET }, (_, i) => `fleet-${String(i).padStart(2, "0")}`);

/** The sampler's own judgement, from the API server's object: is this Deployment rolling out? */
function rolling(d: V1Deployment): boolean {
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  return !(
    s.observedGeneration === d.metadata?.generation &&
    s.replicas === want &&
    s.updatedReplicas === want &&
    s.availableReplicas === want
  );
}

const liveness = (d: V1Deployment) => d.spec?.template.spec?.containers[0]?.livenessProbe?.httpGet?.path;

async function listRecords(namespace: string): Promise<HealthTargetObject[]> {
  const list = (await testClients().custom.listNamespacedCustomObject({
    group: "healthgate.io",
    version: "v1alpha1",
    plural: "healthtargets",
    namespace,
  })) as { items: HealthTargetObject[] };
  return list.items;
}

describe("release pacing", () => {
  const hg = useControllerHarness();

  it(`an Enforce edit over ${FLEET} Deployments never rolls more than ${LIMIT} at once; all converge; a queued one is not rolled by a label edit`, async () => {
    const { apps } = testClients();
    // Given 50 Deployments without probes, rolled out, under an Audit policy
    for (const name of names)
      await hg.apply(makeDeployment(name, (d) => void (d.metadata!.labels!.fleet = "yes")));
    await hg.createPolicy(
      makePolicy(
        "fleet",
        selectingApp("unused"),
        (p) => void (p.spec.selector = { matchLabels: { fleet: "yes" } }),
        withShutdown({ drainSeconds: 5, maxInFlightSeconds: 20 }),
      ),
    );
    await waitFor(
      async () => {
        const items = (await apps.listNamespacedDeployment({ namespace: hg.namespace })).items;
        expect(items.filter((d) => !rolling(d)).length).toBe(FLEET);
        return true;
      },
      { what: `all ${FLEET} Deployments to be rolled out`, timeoutMs: 180_000, intervalMs: 500 },
    );
    const operator = await hg.startOperator({
      pacing: { maxConcurrentRollouts: LIMIT, slotTimeoutMs: 600_000 },
    });
    const generations = new Map(
      (await apps.listNamespacedDeployment({ namespace: hg.namespace })).items.map((d) => [
        d.metadata!.name!,
        d.metadata!.generation!,
      ]),
    );

    // Sampled continuously from the API server: the most Deployments rolling at once.
    let sampling = true;
    let most = 0;
    let samples = 0;
    let over: string[] = [];
    const sampler = (async () => {
      while (sampling) {
        const items = (await apps.listNamespacedDeployment({ namespace: hg.namespace })).items;
        const now = items.filter(rolling).map((d) => d.metadata!.name!);
        samples++;
        if (now.length > most) most = now.length;
        if (now.length > LIMIT && over.length === 0) {
          // What the API server showed of each, for the failure message.
          over = items.filter(rolling).map((d) => {
            const { observedGeneration, replicas, updatedReplicas, availableReplicas } = d.status ?? {};
            const figures = { observedGeneration, replicas, updatedReplicas, availableReplicas };
            return `${d.metadata!.name} generation ${d.metadata!.generation} ${JSON.stringify(figures)}`;
          });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    try {
      // When the policy is edited to Enforce
      await patchPolicySpec(hg.namespace, "fleet", { mode: "Enforce" });

      // Then releases queue: the records, the policy's status and the metric say so
      const queued = await waitFor(
        async () => {
          const records = await listRecords(hg.namespace);
          const waiting = records
            .filter((r) => r.status?.pacing?.state === "Queued")
            .sort((a, b) => (a.status!.pacing!.since! < b.status!.pacing!.since! ? -1 : 1));
          expect(waiting.length).toBeGreaterThan(FLEET / 2);
          return waiting;
        },
        { what: "more than half the records to say pacing.state Queued", timeoutMs: 60_000 },
      );
      await waitFor(
        async () => {
          const policy = await readPolicy(hg.namespace, "fleet");
          expect(policy.status?.releasesQueued ?? 0).toBeGreaterThan(0);
          const t = policy.status?.targets?.find((x) => x.pacing?.state === "Queued");
          expect(t?.pacing?.pendingRevision).toBeDefined();
          const metrics = await operator.metrics.registry.getSingleMetricAsString(
            "healthgate_releases_queued",
          );
          expect(Number(/healthgate_releases_queued (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
          return true;
        },
        { what: "the policy's status and healthgate_releases_queued to count the queue", timeoutMs: 60_000 },
      );

      // and `kubectl get htgt` shows it (the PACING column)
      const table = await kubectl(["get", "htgt", "-n", hg.namespace]);
      expect(table.split("\n")[0]).toContain("PACING");
      expect(table).toContain("Queued");

      // and a label edit of the last in line (its decision not released) does not roll it
      const last = queued.at(-1)!;
      const name = last.metadata!.name!;
      const edited = await apps.patchNamespacedDeployment(
        { namespace: hg.namespace, name, body: { metadata: { labels: { team: "payments" } } } },
        mergePatch,
      );
      expect(edited.metadata?.labels?.team).toBe("payments");
      expect(edited.metadata?.generation, "the label edit changed the template").toBe(generations.get(name));
      expect(liveness(edited)).toBeUndefined();
      // (it was still queued after the edit, so it was queued during it)
      const after = await readRecord(hg.namespace, name);
      expect(after.status?.pacing, "the record after the label edit").toMatchObject({
        state: "Queued",
        pendingRevision: last.status!.pacing!.pendingRevision,
      });

      // and every Deployment converges: probes in the template, rolled out, record Released
      await waitFor(
        async () => {
          const items = (await apps.listNamespacedDeployment({ namespace: hg.namespace })).items;
          const missing = items
            .filter((d) => liveness(d) !== "/healthz" || rolling(d))
            .map((d) => d.metadata!.name);
          expect(missing, "Deployments without the probes or still rolling").toEqual([]);
          const records = await listRecords(hg.namespace);
          expect(
            records.filter((r) => r.status?.pacing?.state !== "Released").map((r) => r.metadata?.name),
          ).toEqual([]);
          return true;
        },
        {
          what: `all ${FLEET} Deployments to carry the decision and finish rolling out`,
          timeoutMs: 300_000,
          intervalMs: 1_000,
        },
      );
    } finally {
      sampling = false;
      await sampler;
    }

    // and never more than the limit rolled at once
    expect(over, `more than ${LIMIT} Deployments rolling at once (of ${samples} samples)`).toEqual([]);
    expect(most).toBeLessThanOrEqual(LIMIT);
    expect(most, "no rollout was ever sampled").toBeGreaterThan(0);
    // each rolled exactly once: the release's template change, nothing more
    for (const d of (await apps.listNamespacedDeployment({ namespace: hg.namespace })).items) {
      expect(d.metadata?.generation, d.metadata?.name).toBe(generations.get(d.metadata!.name!)! + 1);
    }
    const policy = await readPolicy(hg.namespace, "fleet");
    expect(policy.status?.releasesQueued).toBeUndefined();
  }, 600_000);

  it("pacing off: a policy edit writes each shard's HealthRelease once for its Deployments, not once per Deployment; each rolls once", async () => {
    const { apps } = testClients();
    // Given 16 Deployments in two shards of the release index, enforced by one policy, pacing off
    const shards = new Map<string, string[]>();
    for (let i = 0; [...shards.values()].filter((n) => n.length >= 8).length < 2; i++) {
      const name = `batch-${i}`;
      const shard = releaseShard(name);
      if (!shards.has(shard) && shards.size >= 2) continue;
      shards.set(shard, [...(shards.get(shard) ?? []), name]);
    }
    const fleet = [...shards.values()].flatMap((n) => n.slice(0, 8));
    for (const name of fleet)
      await hg.apply(makeDeployment(name, (d) => void (d.metadata!.labels!.batch = "yes")));
    await hg.createPolicy(
      makePolicy(
        "batch",
        (p) => void (p.spec.selector = { matchLabels: { batch: "yes" } }),
        withMode("Enforce"),
        withShutdown({ drainSeconds: 5, maxInFlightSeconds: 20 }),
      ),
    );
    const operator = await hg.startOperator({ pacing: { maxConcurrentRollouts: 0, slotTimeoutMs: 600_000 } });
    const drains = async () =>
      new Map(
        (await apps.listNamespacedDeployment({ namespace: hg.namespace })).items.map((d) => [
          d.metadata!.name!,
          {
            drain: d.spec?.template.spec?.containers[0]?.lifecycle?.preStop?.sleep?.seconds,
            generation: d.metadata!.generation!,
          },
        ]),
      );
    const first = await waitFor(
      async () => {
        const now = await drains();
        expect([...now.values()].filter((d) => d.drain === 5).length).toBe(fleet.length);
        return now;
      },
      { what: `all ${fleet.length} Deployments to carry the 5 s drain`, timeoutMs: 120_000, intervalMs: 500 },
    );
    const patches = () => apiRequests(operator, { verb: "patch", resource: "healthreleases/status" });
    const before = await patches();

    // When the policy's drain changes
    await patchPolicySpec(hg.namespace, "batch", { shutdown: { drainSeconds: 8, maxInFlightSeconds: 20 } });

    // Then every Deployment carries the new drain, each rolled once more
    await waitFor(
      async () => {
        const now = await drains();
        expect([...now.entries()].filter(([, d]) => d.drain !== 8).map(([n]) => n)).toEqual([]);
        for (const [name, d] of now) expect(d.generation, name).toBe(first.get(name)!.generation + 1);
        return true;
      },
      { what: `all ${fleet.length} Deployments to carry the 8 s drain`, timeoutMs: 120_000, intervalMs: 500 },
    );
    const records = await listRecords(hg.namespace);
    const indexed = await indexedDeployments(hg.namespace);
    for (const record of records) {
      const name = record.metadata!.name!;
      const label = (await readDeployment(hg.namespace, name)).metadata?.labels?.["healthgate.io/released"];
      expect(indexed[name], name).toBe(label);
    }
    // with the index written once per shard (more only when reconciles of one shard ran at once)
    const written = (await patches()) - before;
    expect(written, (await requestLog(operator)).join("\n")).toBeGreaterThan(0);
    expect(written, (await requestLog(operator)).join("\n")).toBeLessThan(fleet.length / 2);
  }, 300_000);

  /**
   * One slot (maxConcurrentRollouts 1), held by `hog`, whose new pods (with healthgate's probes)
   * never turn Ready; `web`'s decision queued behind it. Returns hog's and web's records.
   */
  async function holdTheOnlySlot(slotTimeoutMs: number) {
    hg.simulator.setBehaviour((pod: V1Pod) =>
      pod.metadata?.labels?.app === "hog" && pod.spec?.containers[0]?.livenessProbe
        ? { readyAfterMs: "never" }
        : { readyAfterMs: 0 },
    );
    await hg.apply(makeDeployment("hog"));
    await hg.apply(makeDeployment("web"));
    await waitForRolloutComplete(hg.namespace, "hog");
    await waitForRolloutComplete(hg.namespace, "web");
    await hg.createPolicy(
      makePolicy("hog", withMode("Enforce"), withShutdown({ drainSeconds: 5, maxInFlightSeconds: 20 })),
    );
    await hg.startOperator({ pacing: { maxConcurrentRollouts: 1, slotTimeoutMs } });
    const hog = await waitFor(
      async () => {
        const record = await readRecord(hg.namespace, "hog");
        expect(record.status?.pacing?.state).toBe("Released");
        expect(record.status?.pacing?.since, "hog took the slot").toBeDefined();
        const d = await readDeployment(hg.namespace, "hog");
        expect(liveness(d)).toBe("/healthz");
        expect(rolling(d)).toBe(true);
        return record;
      },
      { what: "hog to hold the one slot, rolling", timeoutMs: 60_000 },
    );
    await hg.createPolicy(
      makePolicy("web", withMode("Enforce"), withShutdown({ drainSeconds: 5, maxInFlightSeconds: 20 })),
    );
    const web = await waitFor(
      async () => {
        const record = await readRecord(hg.namespace, "web");
        expect(record.status?.pacing?.state).toBe("Queued");
        return record;
      },
      { what: "web's decision to queue", timeoutMs: 60_000 },
    );
    expect(liveness(await readDeployment(hg.namespace, "web"))).toBeUndefined();
    return { hog, web };
  }

  it("releases at once, without a slot, when the user's own write rolls the Deployment anyway", async () => {
    // Given the only slot held by hog, and web's decision queued behind it
    const { web: queued } = await holdTheOnlySlot(600_000);

    // When the user changes web's template (a rollout of their own)
    await hg.apply(makeDeployment("web", withImage("web", "web:2")));

    // Then the decision rides along at once, without waiting for hog's slot
    const web = await waitFor(
      async () => {
        const record = await readRecord(hg.namespace, "web");
        expect(record.status?.pacing).toEqual({ state: "Released" });
        expect((await readReleased(hg.namespace, "web"))?.revision).toBe(
          queued.status?.pacing?.pendingRevision,
        );
        const d = await readDeployment(hg.namespace, "web");
        expect(liveness(d)).toBe("/healthz");
        return d;
      },
      { what: "web's decision to ride along with the user's rollout", timeoutMs: 60_000 },
    );
    expect(web.metadata?.labels?.["healthgate.io/released"]).toBe(queued.status?.pacing?.pendingRevision);
    await waitForRolloutComplete(hg.namespace, "web");
    // while hog still holds its slot
    const hog = await readDeployment(hg.namespace, "hog");
    expect(rolling(hog), "hog is still rolling").toBe(true);
  }, 300_000);

  it("frees a held rollout's slot after the timeout: the next in line is released", async () => {
    // Given the only slot held by hog (never available), with a 30 s slot timeout, and web queued
    const { hog, web: queued } = await holdTheOnlySlot(30_000);

    // Then web gets the slot once hog's timed out, while hog still rolls
    const web = await waitFor(
      async () => {
        const record = await readRecord(hg.namespace, "web");
        expect(record.status?.pacing?.state).toBe("Released");
        expect((await readReleased(hg.namespace, "web"))?.revision).toBe(
          queued.status?.pacing?.pendingRevision,
        );
        expect(liveness(await readDeployment(hg.namespace, "web"))).toBe("/healthz");
        return record;
      },
      { what: "web's decision to be released once hog's slot timed out", timeoutMs: 90_000 },
    );
    const granted = Date.parse(web.status!.pacing!.since!);
    expect(granted - Date.parse(hog.status!.pacing!.since!)).toBeGreaterThanOrEqual(30_000);
    expect(rolling(await readDeployment(hg.namespace, "hog")), "hog is still rolling").toBe(true);
    await waitForRolloutComplete(hg.namespace, "web");
  }, 300_000);
});
