// The PodDisruptionBudget healthgate manages (headroom.managePodDisruptionBudget) leaves with
// what it protects: it is owned by its Deployment (the garbage collector deletes it with the
// Deployment, healthgate running or not), and healthgate deletes it as soon as the Deployment is
// no longer governed by a policy that asks for it — a label change, a selector edit, an older
// policy taking over, the policy deleted — whichever policy created it. Never two healthgate
// budgets over one pod set, so a drain (every pod evicted through the eviction API) succeeds.
//
// The operator runs as the chart's ServiceAccount with the chart's RBAC, on a plane whose
// kube-apiserver enforces owner-reference permissions (OwnerReferencesPermissionEnforcement):
// blockOwnerDeletion on the Deployment needs update on deployments/finalizers.
//
// Also here (issue 21, part 3): a write of healthgate's that the server refuses is never
// reported as done.
import { Writable } from "node:stream";
import { AppsV1Api, CustomObjectsApi, PolicyV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeDeployment, makePdb, withReplicas } from "../../support/builders.ts";
import { ignoreNotFound, isApiError, testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import { chartIdentity, type ChartIdentity } from "./chartIdentity.ts";
import { counter, refuseWrites, untilForbidden } from "./refusals.ts";
import {
  applyAs,
  createPolicy,
  deletePolicy,
  deploymentCondition,
  installCrd,
  makePolicy,
  mergePatch,
  patchPolicySpec,
  readPolicy,
  selectingApp,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
  waitForPolicyCondition,
  withHeadroom,
  type HealthPolicyObject,
} from "./support.ts";

beforeAll(() => installCrd());

const PDB = "web-healthgate";
const managing = (tolerate: number) =>
  withHeadroom({
    source: "Static",
    peakUtilizationPercent: 50,
    tolerate,
    ceilingPercent: 90,
    zones: false,
    managePodDisruptionBudget: true,
  });

describe("The PodDisruptionBudget healthgate manages", () => {
  const hg = useControllerHarness();
  let identity: ChartIdentity | undefined;
  afterEach(async () => {
    await identity?.remove();
    identity = undefined;
  });

  const readPdb = (name = PDB) =>
    ignoreNotFound(testClients().policy.readNamespacedPodDisruptionBudget({ name, namespace: hg.namespace }));
  const budgets = async () =>
    (await testClients().policy.listNamespacedPodDisruptionBudget({ namespace: hg.namespace })).items
      .map((b) => b.metadata!.name!)
      .sort();
  const waitForPdb = (what: string, check: (pdb: Awaited<ReturnType<typeof readPdb>>) => boolean) =>
    waitFor(
      async () => {
        const pdb = await readPdb();
        if (!check(pdb))
          throw new Error(`PodDisruptionBudget ${PDB}: ${JSON.stringify(pdb?.spec ?? "absent")}`);
        return { pdb };
      },
      { what, timeoutMs: 30_000, intervalMs: 200 },
    );
  const gone = (why: string) => waitForPdb(`PodDisruptionBudget ${PDB} to be deleted (${why})`, (p) => !p);

  /** Starts healthgate as the chart's ServiceAccount. */
  async function startAsChart() {
    identity = await chartIdentity(hg.namespace);
    return hg.startOperator({ kubeConfig: identity.kubeConfig });
  }

  /** A Deployment web (2 replicas, pods running) and a policy `name` that manages its PDB. */
  async function givenManaged(policy: HealthPolicyObject = makePolicy("web", managing(1))) {
    await hg.apply(makeDeployment("web", withReplicas(2)));
    const created = await hg.createPolicy(policy);
    await startAsChart();
    const { pdb } = await waitForPdb(`PodDisruptionBudget ${PDB} to be created`, (p) => p !== undefined);
    return { policy: created, pdb: pdb! };
  }

  it("is owned by its Deployment, follows tolerate, and goes with the Deployment even while healthgate is stopped", async () => {
    // Given a Deployment and a policy asking healthgate to manage its budget
    const { pdb } = await givenManaged();
    const web = await testClients().apps.readNamespacedDeployment({ name: "web", namespace: hg.namespace });

    // Then the budget exists, owned by the Deployment (not by the policy)
    expect(pdb.spec).toMatchObject({
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: "AlwaysAllow",
      selector: { matchLabels: { app: "web" } },
    });
    expect(pdb.metadata?.ownerReferences).toEqual([
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        name: "web",
        uid: web.metadata!.uid,
        blockOwnerDeletion: true,
      },
    ]);

    // When tolerate goes to 2, Then the budget follows
    await patchPolicySpec(hg.namespace, "web", { headroom: { tolerate: 2 } });
    await waitForPdb(
      `PodDisruptionBudget ${PDB} to allow 2 disruptions`,
      (p) => p?.spec?.maxUnavailable === 2,
    );
    await hg.expectSecondReconcileWritesNothing();

    // When healthgate is stopped and the Deployment deleted the way GitOps tools do (foreground)
    await hg.stopOperator();
    await testClients().apps.deleteNamespacedDeployment({
      name: "web",
      namespace: hg.namespace,
      propagationPolicy: "Foreground",
    });

    // Then the garbage collector deletes the budget, and the Deployment's deletion finishes
    await gone("its Deployment was deleted");
    await waitFor(
      async () =>
        (await ignoreNotFound(
          testClients().apps.readNamespacedDeployment({ name: "web", namespace: hg.namespace }),
        )) === undefined,
      { what: "Deployment web to be gone", timeoutMs: 30_000, intervalMs: 200 },
    );
  });

  it("made by v0.1 (owned by the policy), is re-owned by the Deployment at the next apply", async () => {
    // Given the budget as v0.1 applied it: field manager healthgate, owned by the policy
    await hg.apply(makeDeployment("web", withReplicas(2)));
    const policy = await hg.createPolicy(makePolicy("web", managing(1)));
    await applyAs(
      "healthgate",
      {
        ...makePdb(PDB, (p) => {
          p.metadata!.namespace = hg.namespace;
          p.metadata!.labels = { "app.kubernetes.io/managed-by": "healthgate" };
          p.metadata!.ownerReferences = [
            {
              apiVersion: "healthgate.io/v1alpha1",
              kind: "HealthPolicy",
              name: "web",
              uid: policy.metadata.uid!,
              controller: true,
              blockOwnerDeletion: true,
            },
          ];
          p.spec = {
            selector: { matchLabels: { app: "web" } },
            maxUnavailable: 1,
            unhealthyPodEvictionPolicy: "AlwaysAllow",
          };
        }),
      },
      { force: true },
    );

    // When healthgate runs, Then the Deployment is its only owner
    await startAsChart();
    const web = await testClients().apps.readNamespacedDeployment({ name: "web", namespace: hg.namespace });
    await waitForPdb(
      `PodDisruptionBudget ${PDB} to be owned by Deployment web only`,
      (p) => p?.metadata?.ownerReferences?.map((r) => r.uid).join() === web.metadata!.uid,
    );
    expect(await budgets()).toEqual([PDB]);
  });

  it("is deleted when a label change ends governance, and a user's own budget then lets a drain evict every pod", async () => {
    await givenManaged();

    // When the Deployment's labels no longer match the policy's selector
    await testClients().apps.patchNamespacedDeployment(
      { name: "web", namespace: hg.namespace, body: { metadata: { labels: { app: "web-legacy" } } } },
      mergePatch,
    );

    // Then healthgate's budget goes
    await gone("the Deployment is no longer selected");

    // When the user adds their own budget over the same pods (as NotManaged would suggest)
    await hg.apply(makePdb("web-user-budget", (p) => (p.spec!.selector = { matchLabels: { app: "web" } })));
    expect(await budgets()).toEqual(["web-user-budget"]);

    // Then a node drain evicts every pod (one budget: evictions go through one at a time)
    await drain(hg.namespace, "web");
  }, 120_000);

  it("is deleted when a selector edit ends governance", async () => {
    await givenManaged();
    await patchPolicySpec(hg.namespace, "web", { selector: { matchLabels: { app: "something-else" } } });
    await gone("the policy's selector no longer matches");
  });

  it("is deleted when the policy that asked for it is deleted", async () => {
    await givenManaged();
    await deletePolicy(hg.namespace, "web");
    await gone("the policy was deleted");
  });

  it("is deleted when an older policy that asks for none takes over; when it asks for one there is exactly one", async () => {
    // Given an older policy that selects something else, and a newer one that manages web's budget
    // (created in the same second, "first" is the older by name: the tie-break of DESIGN.md)
    await createPolicy(
      hg.namespace,
      makePolicy("first", (p) => (p.spec.selector = { matchLabels: { app: "other" } })),
    );
    await givenManaged(makePolicy("second", selectingApp("web"), managing(1)));

    // When the older policy's selector is edited to select web: it governs web now
    await patchPolicySpec(hg.namespace, "first", { selector: { matchLabels: { app: "web" } } });

    // Then the budget the newer policy asked for goes
    await gone("an older policy that manages none governs web now");
    await waitForPolicyCondition(hg.namespace, "second", "Ready", {
      status: "False",
      reason: "OverlappingPolicy",
    });

    // When the older policy asks for a budget too (tolerate 2)
    await patchPolicySpec(hg.namespace, "first", {
      headroom: {
        source: "Static",
        peakUtilizationPercent: 50,
        tolerate: 2,
        ceilingPercent: 90,
        zones: false,
        managePodDisruptionBudget: true,
      },
    });

    // Then there is exactly one healthgate budget over web's pods, the older policy's
    await waitForPdb(
      `PodDisruptionBudget ${PDB} to allow 2 disruptions`,
      (p) => p?.spec?.maxUnavailable === 2,
    );
    expect(await budgets()).toEqual([PDB]);
    await drain(hg.namespace, "web");
  }, 120_000);

  it("leaves a user's budget over the same pods alone and reports it instead of adding a second one", async () => {
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.apply(
      makePdb("web-user-budget", (pdb) => (pdb.spec!.selector = { matchLabels: { app: "web" } })),
    );
    await hg.createPolicy(makePolicy("web", managing(1)));
    await startAsChart();

    const policy = await waitFor(
      async () => {
        const p = await readPolicy(hg.namespace, "web");
        const finding = p.status?.targets?.[0]?.findings?.find(
          (f) => f.rule === "PodDisruptionBudgetNotManaged",
        );
        expect(finding, JSON.stringify(p.status?.targets?.[0]?.findings)).toBeDefined();
        return p;
      },
      { what: "the policy to report PodDisruptionBudgetNotManaged" },
    );
    expect(JSON.stringify(policy.status?.targets?.[0]?.findings)).toContain("web-user-budget");
    expect(await budgets()).toEqual(["web-user-budget"]);
    await hg.expectSecondReconcileWritesNothing();
  });

  it("an apply the API server refuses: HeadroomSufficient=False ApplyRejected naming the field, an Event, backoff", async () => {
    // Given an admission policy that refuses healthgate's budget writes, naming the field
    await hg.apply(makeDeployment("web", withReplicas(4)));
    await hg.createPolicy(makePolicy("web", managing(1)));
    identity = await chartIdentity(hg.namespace);
    const refusal = await refuseWrites(identity.username, "poddisruptionbudgets", "spec.maxUnavailable");
    // The admission plugin learns new policies by watch: wait until it refuses the ServiceAccount.
    const asChart = identity.kubeConfig.makeApiClient(PolicyV1Api);
    await untilForbidden(() =>
      asChart.createNamespacedPodDisruptionBudget({
        namespace: hg.namespace,
        body: makePdb("probe"),
        dryRun: "All",
      }),
    );
    try {
      // When healthgate reconciles
      const operator = await hg.startOperator({ kubeConfig: identity.kubeConfig });

      // Then the Deployment and the policy say the budget was refused, with the server's words
      const want = {
        status: "False",
        reason: "ApplyRejected",
        message: ["PodDisruptionBudget web-healthgate", "spec.maxUnavailable", refusal.name],
      } as const;
      await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", want);
      await waitForPolicyCondition(hg.namespace, "web", "HeadroomSufficient", want);
      await waitForEvent(hg.namespace, {
        type: "Warning",
        reason: "ApplyRejected",
        regardingName: "web",
        noteContains: "spec.maxUnavailable",
      });
      // and the key backs off instead of spinning (retries are counted; each is a refused write)
      await waitFor(
        async () => {
          const retries = await counter(operator, "healthgate_workqueue_retries_total");
          const refused = await counter(operator, "healthgate_writes_refused_total", {
            write: "owned-object",
          });
          expect(retries).toBeGreaterThanOrEqual(2);
          expect(refused).toBeGreaterThanOrEqual(2);
          return true;
        },
        { what: "healthgate to retry the refused apply with backoff" },
      );
      expect(await readPdb()).toBeUndefined();

      // When the refusal is lifted, Then the budget lands and the condition recovers
      await refusal.remove();
      await waitForPdb(`PodDisruptionBudget ${PDB} to be created`, (p) => p !== undefined);
      await waitForDeploymentCondition(hg.namespace, "web", "HeadroomSufficient", { status: "True" }, 60_000);
    } finally {
      await refusal.remove();
    }
  }, 120_000);

  it("a refused status write cannot report itself: it shows as a metric and a log line", async () => {
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.createPolicy(makePolicy("web"));
    identity = await chartIdentity(hg.namespace);
    const refusal = await refuseWrites(identity.username, "deployments/status", "status.conditions");
    const asChart = identity.kubeConfig.makeApiClient(AppsV1Api);
    await untilForbidden(() =>
      asChart.patchNamespacedDeploymentStatus(
        { name: "web", namespace: hg.namespace, body: { status: { conditions: [] } }, dryRun: "All" },
        mergePatch,
      ),
    );
    const lines: string[] = [];
    const logDestination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    try {
      const operator = await hg.startOperator({ kubeConfig: identity.kubeConfig, logDestination });
      await waitFor(
        async () => {
          expect(
            await counter(operator, "healthgate_writes_refused_total", {
              write: "status",
              resource: "Deployment/status",
            }),
          ).toBeGreaterThanOrEqual(1);
          const line = lines
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .find((l) => l["reason"] === "StatusWriteRefused");
          expect(line).toMatchObject({
            level: "warn",
            kind: "Deployment",
            name: "web",
            namespace: hg.namespace,
          });
          expect(String(line?.["err"])).toContain("status.conditions");
          return true;
        },
        { what: "the refused status write to show in the metric and the log" },
      );
    } finally {
      await refusal.remove();
    }
  });

  it("a refused Event write cannot report itself: it shows as a metric and a log line", async () => {
    // Given an admission policy that refuses healthgate's Events, naming the field
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.createPolicy(makePolicy("web"));
    identity = await chartIdentity(hg.namespace);
    const refusal = await refuseWrites(identity.username, "events", "note");
    const asChart = identity.kubeConfig.makeApiClient(CustomObjectsApi);
    await untilForbidden(() =>
      asChart.createNamespacedCustomObject({
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        namespace: hg.namespace,
        body: {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: { name: "probe" },
          // MicroTime: six fractional digits.
          eventTime: new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z"),
          action: "Probe",
          reason: "Probe",
          reportingController: "healthgate.io/healthgate",
          reportingInstance: "probe",
          regarding: { kind: "Deployment", name: "web", namespace: hg.namespace },
          type: "Normal",
        },
        dryRun: "All",
      }),
    );
    const lines: string[] = [];
    const logDestination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    try {
      // When healthgate reconciles (its first conditions on the Deployment flip: Events follow)
      const operator = await hg.startOperator({ kubeConfig: identity.kubeConfig, logDestination });

      // Then the conditions land, and each refused Event shows in the metric and a log line
      await waitFor(
        async () => {
          const d = await testClients().apps.readNamespacedDeployment({
            namespace: hg.namespace,
            name: "web",
          });
          expect(deploymentCondition(d, "ProbesCompliant")).toBeDefined();
          return true;
        },
        { what: "healthgate's conditions on Deployment web" },
      );
      await waitFor(
        async () => {
          expect(
            await counter(operator, "healthgate_writes_refused_total", {
              write: "event",
              resource: "events",
            }),
          ).toBeGreaterThanOrEqual(1);
          const line = lines
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .find((l) => l["msg"] === "could not record event" && l["kind"] === "Deployment");
          expect(line).toMatchObject({
            level: "warn",
            kind: "Deployment",
            name: "web",
            namespace: hg.namespace,
          });
          expect(String(line?.["err"])).toContain("note");
          expect(String(line?.["err"])).toContain(refusal.name);
          return true;
        },
        { what: "the refused Event write to show in the metric and the log" },
      );
      const events = await testClients().custom.listNamespacedCustomObject({
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        namespace: hg.namespace,
      });
      expect(
        (events as { items: { reportingController?: string }[] }).items.filter((e) =>
          e.reportingController?.startsWith("healthgate"),
        ),
      ).toEqual([]);
    } finally {
      await refusal.remove();
    }
  });
});

/** Sum of a counter's values whose labels include `labels`. */
/**
 * What `kubectl drain` does to a Deployment's pods: evict each through the eviction API,
 * retrying while the budget allows no disruption (429), until every pod that was there at the
 * start has been evicted. Two budgets over one pod make the eviction fail outright (500).
 */
async function drain(namespace: string, app: string): Promise<void> {
  const { core } = testClients();
  const running = (await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` })).items.filter(
    (p: V1Pod) => !p.metadata?.deletionTimestamp,
  );
  expect(running.length).toBeGreaterThan(0);
  for (const pod of running) {
    const name = pod.metadata!.name!;
    await waitFor(
      async () => {
        try {
          await core.createNamespacedPodEviction({
            name,
            namespace,
            body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace } },
          });
          return true;
        } catch (err) {
          if (isApiError(err, 404)) return true;
          // 429: the budget allows no disruption right now; the replacement pod is coming.
          if (isApiError(err, 429))
            throw new Error(`eviction of ${name} is waiting for the budget`, { cause: err });
          throw err;
        }
      },
      { what: `pod ${name} to be evicted`, timeoutMs: 60_000, intervalMs: 250 },
    );
  }
}
