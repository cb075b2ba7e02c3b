// Enforce mode against a real API server and the real Deployment controller, through admission:
// healthgate releases its decision into the Deployment's HealthTarget record and makes its
// release write (a label); the MutatingAdmissionPolicy writes the probes, preStop and
// grace into the template, owned by no manager; the rollout it causes completes; a second
// reconcile writes nothing; other managers' writes keep their fields and still carry the
// decision, so a GitOps controller re-applying an old manifest is admitted and nobody fights.
import type { V1Container, V1Deployment } from "@kubernetes/client-node";
import { AppsV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeDeployment, withProbe, withReplicas } from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import type { Deployment } from "../../../src/api/k8s.ts";
import { healthPolicy } from "../../../src/api/v1alpha1/index.ts";
import { probesConcern } from "../../../src/policy/probes/concern.ts";
import { deleteReleaseIndexes, probeOwners, readRecord, readReleased } from "./admission.ts";
import { chartIdentity, type ChartIdentity } from "./chartIdentity.ts";
import { counter, refuseWrites, untilForbidden } from "./refusals.ts";
import {
  apiRequests,
  installCrd,
  kubectl,
  makePolicy,
  patchPolicySpec,
  readDeployment,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
  waitForPolicyCondition,
  waitForRolloutComplete,
  waitUntilIdle,
  withDeepPaths,
  withMode,
  withShutdown,
  applyAs,
  mergePatch,
} from "./support.ts";

beforeAll(() => installCrd());

const container = (d: V1Deployment, name = "web"): V1Container =>
  d.spec!.template.spec!.containers.find((c) => c.name === name)!;

/** The web Enforce policy of these tests: shallow /healthz and /readyz, a 5 s drain, 20 s in flight. */
const enforcePolicy = (...modifiers: Parameters<typeof makePolicy>[1][]) =>
  makePolicy(
    "web",
    withMode("Enforce"),
    withShutdown({ drainSeconds: 5, maxInFlightSeconds: 20 }),
    ...modifiers,
  );

describe("Enforce", () => {
  const hg = useControllerHarness();

  it("gives a Deployment without probes healthgate's probes, rolls them out, and then writes nothing", async () => {
    // Given a Deployment without probes, its pods running, and an Enforce policy selecting it
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await waitForRolloutComplete(hg.namespace, "web");
    const before = await readDeployment(hg.namespace, "web");
    const firstReplicaSets = await replicaSetNames(hg.namespace);
    await hg.createPolicy(enforcePolicy());

    // When healthgate runs
    await hg.startOperator();

    // Then the probes, preStop drain and grace period appear in the template
    const patched = await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(container(d).livenessProbe?.httpGet?.path).toBe("/healthz");
        return d;
      },
      { what: "healthgate to add the liveness probe" },
    );
    const web = container(patched);
    expect(web.livenessProbe?.httpGet).toMatchObject({ path: "/healthz", port: "http", scheme: "HTTP" });
    expect(web.readinessProbe?.httpGet).toMatchObject({ path: "/readyz", port: "http", scheme: "HTTP" });
    expect(web.readinessProbe?.successThreshold).toBeGreaterThanOrEqual(2);
    expect(web.livenessProbe?.failureThreshold).toBeGreaterThanOrEqual(3);
    expect(web.lifecycle?.preStop?.sleep?.seconds).toBe(5);
    expect(patched.spec!.template.spec!.terminationGracePeriodSeconds).toBe(25);
    expect(patched.metadata!.generation).toBe(before.metadata!.generation! + 1);

    // and no manager owns them: healthgate's only entry on the Deployment is its release label
    expect(probeOwners(patched, "web")).toEqual([]);
    const managers = (patched.metadata!.managedFields ?? [])
      .filter((m) => !m.subresource)
      .map((m) => m.manager);
    expect(managers).not.toContain("healthgate");
    expect(managers).toContain("healthgate-release");
    // and the index holds the released decision, the record judges it Enforced from the live template
    await waitFor(
      async () => {
        const record = await readRecord(hg.namespace, "web");
        const released = await readReleased(hg.namespace, "web");
        expect(released?.containers.map((c) => c.name)).toEqual(["web"]);
        expect(patched.metadata!.labels?.["healthgate.io/released"]).toBe(released?.revision);
        expect(record.status?.conditions?.find((c) => c.type === "Enforced")).toMatchObject({
          status: "True",
        });
        return record;
      },
      { what: "the record to say Enforced=True" },
    );

    // and the Deployment controller rolls the new template out (a new ReplicaSet, pods Ready)
    const rolledOut = await waitForRolloutComplete(hg.namespace, "web");
    const replicaSets = await replicaSetNames(hg.namespace);
    expect(replicaSets.length).toBe(firstReplicaSets.length + 1);

    // and the rolled-out template passes its own audit, on the Deployment and on the policy
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", {
      status: "True",
      reason: "Compliant",
    });
    await waitForDeploymentCondition(hg.namespace, "web", "LivenessShallow", { status: "True" });
    await waitForPolicyCondition(hg.namespace, "web", "ProbesCompliant", {
      status: "True",
      reason: "Compliant",
    });
    await waitForPolicyCondition(hg.namespace, "web", "Ready", { status: "True", reason: "Reconciled" });
    expect(container(rolledOut)).toEqual(container(patched));

    // When the world has settled and healthgate reconciles everything again (a fresh operator),
    // Then that second reconcile sends no write and changes nothing
    await hg.expectSecondReconcileWritesNothing();
  });

  describe("leaves the fields it does not own to their managers", () => {
    // Each row: how the user changes the image and an env var after healthgate enforced.
    const cases: { name: string; change: (ns: string, d: V1Deployment) => Promise<unknown> }[] = [
      {
        name: "kubectl apply (client-side, last-applied annotation)",
        change: (ns, d) => kubectl(["apply", "-n", ns, "-f", "-"], { stdin: JSON.stringify(d) }),
      },
      {
        name: "kubectl apply --server-side as field manager alice",
        change: (ns, d) =>
          kubectl(["apply", "-n", ns, "--server-side", "--field-manager=alice", "-f", "-"], {
            stdin: JSON.stringify(d),
          }),
      },
    ];

    it.each(cases)("$name", async ({ change }) => {
      // Given a Deployment the user manages (same tool as below) and healthgate enforced
      const manifest = (image: string, env?: string): V1Deployment => {
        const d = makeDeployment("web", withReplicas(2));
        const c = d.spec!.template.spec!.containers[0]!;
        c.image = image;
        if (env) c.env = [{ name: "FEATURE", value: env }];
        return d;
      };
      await change(hg.namespace, manifest("registry.invalid/web:1"));
      await hg.createPolicy(enforcePolicy());
      await hg.startOperator();
      await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" });
      await waitForRolloutComplete(hg.namespace, "web");
      await waitUntilIdle(hg.operator, 2);
      const releases = await apiRequests(hg.operator, { verb: "apply", resource: "deployments" });

      // When the user changes the image and adds an env var with their own tool
      await change(hg.namespace, manifest("registry.invalid/web:2", "on"));

      // Then their change stays and healthgate's probes stay (admission), without another release write
      const rolled = await waitForRolloutComplete(hg.namespace, "web");
      const web = container(rolled);
      expect(web.image).toBe("registry.invalid/web:2");
      expect(web.env).toEqual([{ name: "FEATURE", value: "on" }]);
      expect(web.livenessProbe?.httpGet?.path).toBe("/healthz");
      expect(web.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(web.lifecycle?.preStop?.sleep?.seconds).toBe(5);
      await waitUntilIdle(hg.operator, 1);
      expect(await apiRequests(hg.operator, { verb: "apply", resource: "deployments" })).toBe(releases);
      await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" });
      await hg.expectSecondReconcileWritesNothing();
    });
  });

  it("releases a policy edit that swaps the liveness handler, and the swap lands", async () => {
    // Given an enforced Deployment with healthgate's httpGet liveness
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.createPolicy(enforcePolicy());
    await hg.startOperator();
    await waitForLiveness(hg.namespace, (probe) => expect(probe?.httpGet?.path).toBe("/healthz"));
    await waitForRolloutComplete(hg.namespace, "web");

    // When the policy asks for a TCP liveness check instead (v0.1: 422, forever)
    await patchPolicySpec(hg.namespace, "web", { endpoints: { liveness: { path: null, tcp: {} } } });

    // Then the template's liveness becomes tcpSocket alone, rolls out, and the record says Enforced
    const swapped = await waitForLiveness(hg.namespace, (probe) => {
      expect(probe?.tcpSocket?.port).toBe("http");
      expect(probe?.httpGet).toBeUndefined();
    });
    expect(probeOwners(swapped, "web")).toEqual([]);
    await waitForRolloutComplete(hg.namespace, "web");
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" });
    const record = await readRecord(hg.namespace, "web");
    expect(record.status?.conditions?.find((c) => c.type === "Enforced")?.status).toBe("True");
    // and once the rollout completed, the released decision is also the stable one
    await waitFor(
      async () => {
        const r = await readRecord(hg.namespace, "web");
        expect(r.status?.stable).toEqual(await readReleased(hg.namespace, "web"));
        return r;
      },
      { what: "the released decision to become the stable one" },
    );
    await hg.expectSecondReconcileWritesNothing();
  });

  it("with pacing off, releases a policy edit into the template and writes no record: the index alone holds the released decision", async () => {
    // Given an enforced Deployment whose rollout completed (its record settled: Enforced, stable),
    // then paused, so that no rollout of the next decision completes and writes the record's
    // stable; pacing off (with pacing on, the release's rollout slot goes into status.pacing)
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.createPolicy(enforcePolicy());
    await hg.startOperator({ pacing: { maxConcurrentRollouts: 0, slotTimeoutMs: 600_000 } });
    await waitForRolloutComplete(hg.namespace, "web");
    await waitFor(
      async () => {
        const r = await readRecord(hg.namespace, "web");
        expect(r.status?.conditions?.find((c) => c.type === "Enforced")?.status).toBe("True");
        expect(r.status?.stable).toEqual(await readReleased(hg.namespace, "web"));
        return r;
      },
      { what: "the record to say Enforced with the released decision stable" },
    );
    await kubectl([
      "patch",
      "deployment",
      "web",
      "-n",
      hg.namespace,
      "--type=merge",
      "-p",
      '{"spec":{"paused":true}}',
    ]);
    await waitUntilIdle(hg.operator, 1);
    const recordBefore = await readRecord(hg.namespace, "web");
    const firstRevision = (await readReleased(hg.namespace, "web"))?.revision;
    const recordWrites = () => apiRequests(hg.operator, { resource: "healthtargets/status" });
    const writesBefore = await recordWrites();

    // When the policy's drain changes (a new decision)
    await patchPolicySpec(hg.namespace, "web", { shutdown: { drainSeconds: 8 } });

    // Then the template carries it, the index and the Deployment's label name its revision
    const released = await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(container(d).lifecycle?.preStop?.sleep?.seconds).toBe(8);
        const decision = await readReleased(hg.namespace, "web");
        expect(decision?.revision).not.toBe(firstRevision);
        expect(d.metadata?.labels?.["healthgate.io/released"]).toBe(decision?.revision);
        return decision;
      },
      { what: "the new drain to reach the template" },
    );
    // and the record is not written: it says Enforced, as before, from the same object
    await holdsFor(
      async () => {
        const r = await readRecord(hg.namespace, "web");
        expect(
          r.metadata?.resourceVersion,
          `before: ${JSON.stringify(recordBefore)}\nnow: ${JSON.stringify(r)}`,
        ).toBe(recordBefore.metadata?.resourceVersion);
        expect(r.status?.conditions?.find((c) => c.type === "Enforced")?.status).toBe("True");
        expect(r.status?.stable?.revision).toBe(firstRevision);
        expect(await recordWrites()).toBe(writesBefore);
      },
      { forMs: 3_000, intervalMs: 250, what: "the record to stay as it was" },
    );
    expect(released?.revision).toBeDefined();
  });

  it("brings back a deleted HealthRelease as it was (the one place a released decision is kept), without rolling the Deployment", async () => {
    // Given an enforced Deployment whose rollout completed (default pacing)
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await hg.createPolicy(enforcePolicy());
    await hg.startOperator();
    await waitForRolloutComplete(hg.namespace, "web");
    await waitForLiveness(hg.namespace, (probe) => expect(probe?.httpGet?.path).toBe("/healthz"));
    await waitUntilIdle(hg.operator, 1);
    const released = await readReleased(hg.namespace, "web");
    expect(released?.revision).toBeDefined();
    const generation = (await readDeployment(hg.namespace, "web")).metadata?.generation;

    // When someone deletes the namespace's HealthReleases while healthgate runs
    await deleteReleaseIndexes(hg.namespace);

    // Then the index names the same decision again
    await waitFor(async () => expect(await readReleased(hg.namespace, "web")).toEqual(released), {
      what: "healthgate to write the released decision into the index again",
    });
    // (admission reads the index from its own cache: a server-side dry run that drops the
    // liveness probe gets it back once that cache has the entry again)
    await waitFor(
      async () => {
        const dryRun = await kubectl([
          ...["patch", "deployment", "web", "-n", hg.namespace, "--dry-run=server", "-o", "json"],
          ...[
            "--type=json",
            "-p",
            '[{"op":"remove","path":"/spec/template/spec/containers/0/livenessProbe"}]',
          ],
        ]);
        expect(container(JSON.parse(dryRun) as V1Deployment).livenessProbe?.httpGet?.path).toBe("/healthz");
        return true;
      },
      { what: "admission to apply the released decision from the restored index" },
    );
    // and the user's own re-apply of their manifest (no probes) still gets it at admission, with
    // no new template: the Deployment is not rolled
    await hg.apply(makeDeployment("web", withReplicas(2)));
    const d = await readDeployment(hg.namespace, "web");
    expect(container(d).livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(container(d).lifecycle?.preStop?.sleep?.seconds).toBe(5);
    expect(d.metadata?.generation).toBe(generation);
  });

  it("admits a GitOps controller re-applying the old deep-liveness manifest, which still carries the decision", async () => {
    // Given a Deployment that a GitOps controller applies from Git, with a deep liveness probe
    const fromGit = makeDeployment(
      "web",
      withReplicas(2),
      withProbe("web", "liveness", { httpGet: { path: "/health/deep", port: "http" }, periodSeconds: 10 }),
    );
    const inNs = { ...fromGit, metadata: { ...fromGit.metadata, namespace: hg.namespace } };
    await applyAs("argocd-controller", inNs, { force: true });
    await hg.createPolicy(enforcePolicy(withDeepPaths("/health/deep")));
    await hg.startOperator();
    await waitForLiveness(hg.namespace, (probe) => expect(probe?.httpGet?.path).toBe("/healthz"));
    // and an Event about the Deployment announces the replacement
    await waitForEvent(hg.namespace, {
      type: "Normal",
      reason: "LivenessDeepReplaced",
      regardingKind: "Deployment",
      regardingName: "web",
      noteContains: "/health/deep",
    });
    await waitForRolloutComplete(hg.namespace, "web");
    await waitUntilIdle(hg.operator, 1);
    const releases = await apiRequests(hg.operator, { verb: "apply", resource: "deployments" });

    // When the GitOps controller syncs the old manifest again, three times, with and without force
    for (const force of [false, true, true]) await applyAs("argocd-controller", inNs, { force });

    // Then every sync is admitted and the template keeps healthgate's shallow liveness, without a
    // single further write by healthgate: there is nothing to fight over
    const d = await readDeployment(hg.namespace, "web");
    expect(container(d).livenessProbe?.httpGet?.path).toBe("/healthz");
    await waitUntilIdle(hg.operator, 1);
    expect(await apiRequests(hg.operator, { verb: "apply", resource: "deployments" })).toBe(releases);
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" });
    // and `kubectl diff --server-side` of the Git manifest shows no drift (Argo CD:
    // ServerSideDiff=true,IncludeMutationWebhook=true shows the same)
    await kubectl(["diff", "--server-side", "--field-manager=argocd-controller", "-f", "-"], {
      stdin: JSON.stringify(inNs),
    });
  });

  it("upgrades a v0.1-enforced Deployment: drops v0.1's managedFields entry, changes no value, and a GitOps rename lands", async () => {
    // Given a Deployment that v0.1 enforced: the user's manifest, and v0.1's forced server-side
    // apply of the probe fields as field manager "healthgate" (reproduced here as v0.1 sent it)
    const manifest = makeDeployment("web", withReplicas(1));
    const live = await hg.apply(manifest);
    const policy = enforcePolicy();
    await hg.createPolicy(policy);
    const parsed = healthPolicy.parse({
      ...policy,
      metadata: { ...policy.metadata, namespace: hg.namespace },
    });
    const owned = probesConcern({
      policy: parsed,
      deployment: JSON.parse(JSON.stringify(live)) as Deployment,
      replicaSets: [],
      pods: [],
      pdbs: [],
      nodeZones: {},
      now: new Date(),
    }).ownedSpec!;
    const v01 = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: hg.namespace },
      spec: {
        template: {
          spec: {
            terminationGracePeriodSeconds: owned.terminationGracePeriodSeconds,
            containers: owned.containers,
          },
        },
      },
    };
    await applyAs("healthgate", v01, { force: true });
    const enforcedByV01 = await readDeployment(hg.namespace, "web");
    expect(probeOwners(enforcedByV01, "web")).toContain("healthgate");
    // (v0.1 co-owns the container item: a GitOps rename is refused, which is the bug)
    const renamed = makeDeployment("web", withReplicas(1));
    renamed.spec!.template.spec!.containers[0]!.name = "app";
    await expect(hg.apply(renamed)).rejects.toMatchObject({ code: 422 });

    // When this version of healthgate starts
    await hg.startOperator();

    // Then v0.1's entry is gone and no value of the template changed
    const upgraded = await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect((d.metadata!.managedFields ?? []).map((m) => m.manager)).not.toContain("healthgate");
        return d;
      },
      { what: "healthgate to remove v0.1's managedFields entry" },
    );
    expect(upgraded.spec!.template).toEqual(enforcedByV01.spec!.template);
    expect(upgraded.metadata!.generation).toBe(enforcedByV01.metadata!.generation);
    await waitForRolloutComplete(hg.namespace, "web");

    // and the GitOps rename lands; the renamed container gets the decision again at admission
    await hg.apply(renamed);
    await waitFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(d.spec!.template.spec!.containers.map((c) => c.name)).toEqual(["app"]);
        expect(container(d, "app").livenessProbe?.httpGet?.path).toBe("/healthz");
        return d;
      },
      { what: "the renamed container to carry the decision" },
    );
  });

  it("on a cluster without MutatingAdmissionPolicies reports EnforceUnavailable and acts as Audit", async () => {
    // Given a Deployment with no probes, an Enforce policy, and an operator told by discovery
    // that the API server serves no MutatingAdmissionPolicies (this plane serves them; a 1.35
    // plane would be a second control plane build, so discovery's answer is injected)
    await hg.apply(makeDeployment("web", withReplicas(1)));
    await hg.createPolicy(enforcePolicy());
    await hg.startOperator({ enforceAvailable: false });

    // Then the policy says EnforceUnavailable, and the Deployment's template is not touched
    await waitForPolicyCondition(hg.namespace, "web", "Ready", {
      status: "False",
      reason: "EnforceUnavailable",
    });
    await waitUntilIdle(hg.operator, 1);
    const d = await readDeployment(hg.namespace, "web");
    expect(container(d).livenessProbe).toBeUndefined();
    expect(d.metadata!.generation).toBe(1);
    expect(await apiRequests(hg.operator, { verb: "apply", resource: "deployments" })).toBe(0);
  });
});

/** Waits until the live liveness probe of container web passes `check`. */
function waitForLiveness(
  namespace: string,
  check: (probe: V1Container["livenessProbe"]) => void,
  timeoutMs = 30_000,
) {
  return waitFor(
    async () => {
      const d = await readDeployment(namespace, "web");
      check(container(d).livenessProbe);
      return d;
    },
    { what: "the liveness probe of container web", timeoutMs },
  );
}

async function replicaSetNames(namespace: string): Promise<string[]> {
  const list = await testClients().apps.listNamespacedReplicaSet({ namespace });
  return list.items.map((rs) => rs.metadata!.name!).sort();
}

describe("Enforce's writes, refused (issue 21 part 3)", () => {
  const hg = useControllerHarness();
  let identity: ChartIdentity | undefined;
  afterEach(async () => {
    await identity?.remove();
    identity = undefined;
  });

  const cases = [
    {
      write: "the HealthTarget record",
      resource: "healthtargets",
      field: "spec.policy",
      names: "HealthTarget",
      /** A write the refusal covers, made as healthgate's ServiceAccount (dry run). */
      probe: (id: ChartIdentity, ns: string) =>
        id.kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
          group: "healthgate.io",
          version: "v1alpha1",
          plural: "healthtargets",
          namespace: ns,
          body: {
            apiVersion: "healthgate.io/v1alpha1",
            kind: "HealthTarget",
            metadata: { name: "probe" },
            spec: { deployment: "probe", policy: "web" },
          },
          dryRun: "All",
        }),
    },
    {
      write: "the Deployment's release label",
      resource: "deployments",
      field: "metadata.labels",
      names: "the label healthgate.io/released of Deployment",
      probe: (id: ChartIdentity, ns: string) =>
        id.kubeConfig
          .makeApiClient(AppsV1Api)
          .patchNamespacedDeployment(
            { namespace: ns, name: "web", body: { metadata: { labels: { probe: "x" } } }, dryRun: "All" },
            mergePatch,
          ),
    },
    {
      write: "the HealthRelease",
      resource: "healthreleases",
      field: "metadata.name",
      names: "HealthRelease",
      probe: (id: ChartIdentity, ns: string) =>
        id.kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
          group: "healthgate.io",
          version: "v1alpha1",
          plural: "healthreleases",
          namespace: ns,
          body: { apiVersion: "healthgate.io/v1alpha1", kind: "HealthRelease", metadata: { name: "probe" } },
          dryRun: "All",
        }),
    },
  ];

  it.each(cases)(
    "a refused write of $write: ProbesCompliant=False ApplyRejected naming it, an Event, backoff; then it lands",
    async ({ resource, field, names, probe }) => {
      // Given an Enforce policy over a Deployment with an exec liveness, and an admission policy
      // that refuses healthgate's ServiceAccount a write the release needs
      await hg.apply(makeDeployment("web", withProbe("web", "liveness", { exec: { command: ["true"] } })));
      await hg.createPolicy(enforcePolicy());
      identity = await chartIdentity(hg.namespace);
      const refusal = await refuseWrites(identity.username, resource, field);
      const id = identity;
      await untilForbidden(() => probe(id, hg.namespace));
      try {
        // When healthgate reconciles
        const operator = await hg.startOperator({ kubeConfig: identity.kubeConfig });

        // Then the Deployment and the policy say the release was refused, in the server's words:
        // not compliant, the live template does not carry the decision
        const want = {
          status: "False",
          reason: "ApplyRejected",
          message: [names, field, refusal.name],
        } as const;
        await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", want);
        await waitForPolicyCondition(hg.namespace, "web", "ProbesCompliant", want);
        await waitForEvent(hg.namespace, {
          type: "Warning",
          reason: "ApplyRejected",
          regardingName: "web",
          noteContains: field,
        });
        // and the key backs off, each retry a counted refusal
        await waitFor(
          async () => {
            expect(await counter(operator, "healthgate_workqueue_retries_total")).toBeGreaterThanOrEqual(2);
            const refused = await counter(operator, "healthgate_writes_refused_total", { write: "release" });
            expect(refused).toBeGreaterThanOrEqual(2);
            return true;
          },
          { what: "healthgate to retry the refused release with backoff" },
        );
        expect(container(await readDeployment(hg.namespace, "web")).livenessProbe?.exec).toBeDefined();

        // When the refusal is lifted, Then the decision lands and the condition recovers
        await refusal.remove();
        await waitForLiveness(hg.namespace, (probe) => expect(probe?.httpGet?.path).toBe("/healthz"), 60_000);
        await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "True" }, 60_000);
      } finally {
        await refusal.remove();
      }
    },
    150_000,
  );
});
