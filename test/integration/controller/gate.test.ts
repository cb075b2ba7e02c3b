// The gate webhook on the real control plane (issue 20): healthgate runs as the chart's
// ServiceAccount with the chart's RBAC, serves the webhook over TLS with the certificates it
// manages in the chart's Secret, keeps the chart's MutatingWebhookConfiguration's caBundle
// current, and the real API server calls it at every Pod CREATE. The rollout logic records
// each Deployment's stable revision once its first revision completed; the simulated pods
// answer no deep check, so it admits none of them and the tests open gates with writeGate.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEEP_CHECK_GATE } from "../../../src/api/v1alpha1/index.ts";
import { Operator } from "../../../src/controller/operator.ts";
import type { GateWebhookOptions } from "../../../src/admission/gateWebhook.ts";
import { freePort } from "../../../src/devcluster/net.ts";
import { GATE_FIELD_MANAGER, gateCondition, isGated, writeGate } from "../../../src/kube/podGate.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import type { Pod } from "../../../src/api/k8s.ts";
import { makeDeployment, withReplicas, type Modifier } from "../../support/builders.ts";
import { createTestNamespace, deleteTestNamespace, testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { testKubeconfigPath } from "../../support/kube.ts";
import { deletePolicy, listEvents, repoRoot } from "./support.ts";
import { chartIdentity, type ChartIdentity } from "./chartIdentity.ts";
import {
  installCrd,
  kubectl,
  makePolicy,
  useControllerHarness,
  waitForRolloutComplete,
  type HealthPolicyObject,
} from "./support.ts";

beforeAll(() => installCrd());

const HASH = "pod-template-hash";
/** A policy with spec.rollout: its Deployments' new revisions are gated. */
const withRollout: Modifier<HealthPolicyObject> = (p) => {
  p.spec.rollout = { steps: [{ weight: 100 }], deepCheck: { path: "/health/deep", port: "http" } };
};
const gated = (pod: V1Pod) => isGated(pod as unknown as Pod);
const hashOf = (pod: V1Pod) => pod.metadata?.labels?.[HASH] ?? "";

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string };
  webhooks?: { clientConfig: Record<string, unknown> }[];
}

describe("the gate webhook", () => {
  const hg = useControllerHarness();
  let system: string | undefined;
  let identity: ChartIdentity | undefined;
  let operator: Operator | undefined;
  let configuration: Rendered | undefined;
  let operatorOptions: ConstructorParameters<typeof Operator>[0] | undefined;

  afterEach(async () => {
    await operator?.stop();
    operator = undefined;
    if (configuration) {
      await kubectl([
        "delete",
        "--ignore-not-found",
        "mutatingwebhookconfiguration",
        configuration.metadata.name,
      ]);
    }
    configuration = undefined;
    await identity?.remove();
    identity = undefined;
    if (system) await deleteTestNamespace(system);
    system = undefined;
  });

  /**
   * Installs what the chart renders for the webhook (its RBAC, the empty Secret and the
   * registration, whose clientConfig points at this process instead of the Service) in a
   * namespace of healthgate's own, and starts healthgate as the chart's ServiceAccount.
   */
  async function startHealthgate(cert: GateWebhookOptions["cert"] = {}, leaderElection = false) {
    system = await createTestNamespace("hg-system");
    identity = await chartIdentity(system, { watchNamespace: hg.namespace, leaderElection });
    const rendered = identity.rendered as Rendered[];
    const secret = rendered.find((o) => o.kind === "Secret")!;
    configuration = rendered.find((o) => o.kind === "MutatingWebhookConfiguration")!;
    const port = await freePort("127.0.0.1");
    configuration.webhooks![0]!.clientConfig = { url: `https://127.0.0.1:${port}/gate` };
    await applyAsHelm(secret, configuration);
    operatorOptions = {
      kubeConfig: identity.kubeConfig,
      logger: createLogger("silent"),
      namespaces: [hg.namespace],
      port: 0,
      leaderElection: { enabled: false },
      identity: "healthgate-gate-test",
      gateWebhook: {
        port,
        host: "127.0.0.1",
        namespace: system,
        secretName: secret.metadata.name,
        certificates: "self",
        configurationName: configuration.metadata.name,
        dnsNames: [],
        ipAddresses: ["127.0.0.1"],
        refreshMs: 300,
        cert,
      },
      gateSweepIntervalMs: 500,
    };
    return runHealthgate();
  }

  /** Starts healthgate (again) as installed by startHealthgate. */
  async function runHealthgate() {
    operator = new Operator(operatorOptions!);
    await operator.start();
    await waitFor(() => operator!.gateWebhook!.boundPort, {
      what: "the gate webhook to serve",
      timeoutMs: 30_000,
    });
    return operator;
  }

  const applyAsHelm = (...objects: object[]) =>
    kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=helm", "-f", "-"], {
      stdin: objects.map((o) => JSON.stringify(o)).join("\n"),
    });

  /** What the API server answers to creating (dry run) a pod of `deployment`'s revision `hash`. */
  async function admit(deployment: string, hash: string, modify: (pod: V1Pod) => void = () => {}) {
    const pod: V1Pod = {
      metadata: {
        generateName: `${deployment}-${hash}-`,
        labels: { app: deployment, [HASH]: hash },
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: "ReplicaSet",
            name: `${deployment}-${hash}`,
            uid: "0",
            controller: true,
          },
        ],
      },
      spec: { containers: [{ name: "web", image: "example/web:1" }] },
    };
    modify(pod);
    return testClients().core.createNamespacedPod({ namespace: hg.namespace, body: pod, dryRun: "All" });
  }

  /** Waits until healthgate's rollout logic has recorded `hash` as the stable revision, and its cache has it. */
  async function recordStable(deployment: string, hash: string) {
    const ns = hg.namespace;
    await waitFor(
      () =>
        operator!.world.targets.get(`${ns}/${deployment}`)?.status?.rollout?.stableRevision === hash ||
        undefined,
      { what: `healthgate to record stable revision ${hash} of ${deployment}`, timeoutMs: 60_000 },
    );
  }

  async function podsOf(app: string): Promise<V1Pod[]> {
    return (
      await testClients().core.listNamespacedPod({ namespace: hg.namespace, labelSelector: `app=${app}` })
    ).items;
  }

  /** Waits until the API server calls the webhook with the current caBundle: a dry-run pod of a new revision comes back gated. */
  async function webhookAnswers(deployment: string) {
    await waitFor(async () => gated(await admit(deployment, "probe0000")) || undefined, {
      what: "the API server to call the gate webhook",
      timeoutMs: 30_000,
      intervalMs: 200,
    });
  }

  it("gates a new revision's pods, never the first revision's or the stable revision's, and helm upgrade keeps the caBundle", async () => {
    const { apps } = testClients();
    const ns = hg.namespace;
    await startHealthgate();
    await hg.createPolicy(makePolicy("web", withRollout));
    // Given a new Deployment: its first revision is not gated (nothing to compare it with)
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await waitForRolloutComplete(ns, "web");
    const first = await podsOf("web");
    expect(first.map(gated)).toEqual([false, false]);
    const stable = hashOf(first[0]!);
    await recordStable("web", stable);
    await webhookAnswers("web");

    // When the stable revision scales up, the new pod is not gated
    await apps.patchNamespacedDeploymentScale({
      name: "web",
      namespace: ns,
      body: [{ op: "replace", path: "/spec/replicas", value: 3 }],
    });
    await waitForRolloutComplete(ns, "web");
    const scaled = await podsOf("web");
    expect(scaled.map((p) => [hashOf(p), gated(p)])).toEqual([
      [stable, false],
      [stable, false],
      [stable, false],
    ]);

    // When the image changes, the new revision's pods are gated
    await apps.patchNamespacedDeployment({
      name: "web",
      namespace: ns,
      body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "example/web:2" }],
    });
    const fresh = await waitFor(
      async () => {
        const pods = (await podsOf("web")).filter((p) => hashOf(p) !== stable);
        expect(pods.length).toBeGreaterThan(0);
        return pods;
      },
      { what: "the new revision's first pod", timeoutMs: 30_000 },
    );
    for (const pod of fresh) {
      expect(pod.spec?.readinessGates, pod.metadata?.name).toEqual([{ conditionType: DEEP_CHECK_GATE }]);
    }

    // And writeGate opens a gate: the one condition, under healthgate's gate field manager
    const stored = await writeGate(
      operator!.client,
      fresh[0] as unknown as Pod,
      { status: "True", reason: "Admitted", message: "test: admitted" },
      new Date(),
    );
    expect(gateCondition(stored)).toMatchObject({ status: "True", reason: "Admitted" });
    expect(stored.metadata.managedFields?.find((m) => m.manager === GATE_FIELD_MANAGER)?.subresource).toBe(
      "status",
    );
    // The conditions others own stay.
    expect(stored.status?.conditions?.map((c) => c.type)).toEqual(
      expect.arrayContaining([...(fresh[0]!.status?.conditions ?? []).map((c) => c.type), DEEP_CHECK_GATE]),
    );

    // helm upgrade (server-side apply of the same rendering, which has no caBundle) keeps it
    const caBundle = async () =>
      (
        await testClients().admissionregistration.readMutatingWebhookConfiguration({
          name: configuration!.metadata.name,
        })
      ).webhooks?.[0]?.clientConfig.caBundle;
    const before = await caBundle();
    expect(before).toBeTruthy();
    await applyAsHelm(configuration!);
    expect(await caBundle()).toBe(before);
  });

  it("leaves hostNetwork pods, other owners and pods of ungoverned or Recreate Deployments alone", async () => {
    const ns = hg.namespace;
    await startHealthgate();
    await hg.createPolicy(makePolicy("web", withRollout));
    await hg.apply(makeDeployment("web", withReplicas(1)));
    await hg.apply(makeDeployment("batch", withReplicas(1)));
    await waitForRolloutComplete(ns, "web");
    await recordStable("web", hashOf((await podsOf("web"))[0]!));
    await webhookAnswers("web");
    expect(gated(await admit("web", "new00000"))).toBe(true);
    expect(gated(await admit("web", "new00000", (p) => void (p.spec!.hostNetwork = true)))).toBe(false);
    expect(
      gated(
        await admit("web", "new00000", (p) => void (p.metadata!.ownerReferences![0]!.kind = "StatefulSet")),
      ),
    ).toBe(false);
    expect(gated(await admit("batch", "new00000"))).toBe(false);
    // A pod that already carries the gate keeps exactly one.
    const twice = await admit("web", "new00000", (p) => {
      p.spec!.readinessGates = [{ conditionType: "example.com/lb" }, { conditionType: DEEP_CHECK_GATE }];
    });
    expect(twice.spec?.readinessGates).toEqual([
      { conditionType: "example.com/lb" },
      { conditionType: DEEP_CHECK_GATE },
    ]);
    const beside = await admit(
      "web",
      "new00000",
      (p) => void (p.spec!.readinessGates = [{ conditionType: "example.com/lb" }]),
    );
    expect(beside.spec?.readinessGates).toEqual([
      { conditionType: "example.com/lb" },
      { conditionType: DEEP_CHECK_GATE },
    ]);
    await testClients().apps.patchNamespacedDeployment({
      name: "web",
      namespace: ns,
      body: [{ op: "add", path: "/spec/strategy", value: { type: "Recreate" } }],
    });
    await waitFor(
      () => operator!.world.deployments.get(`${ns}/web`)?.spec.strategy?.type === "Recreate" || undefined,
      { what: "healthgate's cache to see the Recreate strategy", timeoutMs: 30_000 },
    );
    expect(gated(await admit("web", "new00000"))).toBe(false);
  });

  it("fails open while healthgate is stopped: pods are created ungated, and reported when it returns", async () => {
    const { apps } = testClients();
    const ns = hg.namespace;
    await startHealthgate();
    // A bake keeps the ungated revision from completing (the ungated pods fill its step's budget)
    // while the test looks: a completed revision is stable, and its pods are no longer reported.
    await hg.createPolicy(
      makePolicy("web", (p) => {
        withRollout(p);
        p.spec.rollout!.steps = [{ weight: 100, bake: "5m" }];
      }),
    );
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await waitForRolloutComplete(ns, "web");
    const stable = hashOf((await podsOf("web"))[0]!);
    await recordStable("web", stable);
    await webhookAnswers("web");
    await operator!.stop();
    operator = undefined;
    await apps.patchNamespacedDeployment({
      name: "web",
      namespace: ns,
      body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "example/web:2" }],
    });
    // Nothing holds the new pods: the rollout completes ungated.
    await waitForRolloutComplete(ns, "web");
    const ungated = (await podsOf("web")).filter(
      (p) => hashOf(p) !== stable && !p.metadata?.deletionTimestamp,
    );
    expect(ungated.map(gated)).toEqual([false, false]);
    const names = ungated.map((p) => p.metadata!.name!).sort();

    // When healthgate returns, the record and an Event say the rollout ran ungated, naming the pods
    await runHealthgate();
    const gating = await waitFor(
      async () => {
        const record = (await testClients().custom.getNamespacedCustomObject({
          group: "healthgate.io",
          version: "v1alpha1",
          plural: "healthtargets",
          namespace: ns,
          name: "web",
        })) as { status?: { gating?: { ungatedPods?: string[]; ungatedCount?: number; revision?: string } } };
        expect(record.status?.gating?.ungatedPods).toEqual(names);
        return record.status!.gating!;
      },
      { what: "the record's status.gating to list the ungated pods", timeoutMs: 30_000, intervalMs: 300 },
    );
    expect(gating).toMatchObject({ ungatedCount: 2, revision: hashOf(ungated[0]!) });
    const event = (await listEvents(ns)).find((e) => e.reason === "UngatedPods");
    expect(event).toMatchObject({ type: "Warning", regardingKind: "Deployment", regardingName: "web" });
    for (const name of names) expect(event!.note).toContain(name);

    // ... and so does the Deployment's condition, judged from its live pods
    const rolloutGated = async () =>
      (await apps.readNamespacedDeployment({ name: "web", namespace: ns })).status?.conditions?.find(
        (c) => c.type === "healthgate.io/RolloutGated",
      );
    const condition = await waitFor(
      async () => {
        const c = await rolloutGated();
        expect(c).toMatchObject({ status: "False", reason: "FailedOpen" });
        for (const name of names) expect(c!.message).toContain(name);
        return c!;
      },
      {
        what: "the Deployment's RolloutGated condition to name the ungated pods",
        timeoutMs: 30_000,
        intervalMs: 300,
      },
    );
    expect(condition.message).toMatch(
      new RegExp(`^2 pod\\(s\\) of revision ${hashOf(ungated[0]!)} run without`),
    );
    // The policy carries the worst of its Deployments' RolloutGated conditions
    await waitFor(
      async () => {
        const policy = (await testClients().custom.getNamespacedCustomObject({
          group: "healthgate.io",
          version: "v1alpha1",
          plural: "healthpolicies",
          namespace: ns,
          name: "web",
        })) as { status?: { conditions?: { type: string; status: string; reason: string }[] } };
        expect(policy.status?.conditions?.find((c) => c.type === "RolloutGated")).toMatchObject({
          status: "False",
          reason: "FailedOpen",
        });
        return true;
      },
      { what: "the policy's RolloutGated condition", timeoutMs: 30_000, intervalMs: 300 },
    );

    // Replacing the ungated pods while healthgate answers: their successors are gated, the condition goes
    await testClients().core.deleteCollectionNamespacedPod({
      namespace: ns,
      labelSelector: `app=web,${HASH}=${hashOf(ungated[0]!)}`,
      gracePeriodSeconds: 0,
    });
    await waitFor(
      async () => {
        const fresh = (await podsOf("web")).filter(
          (p) => hashOf(p) === hashOf(ungated[0]!) && !names.includes(p.metadata!.name!),
        );
        expect(fresh.length).toBeGreaterThanOrEqual(2);
        expect(fresh.map(gated)).toEqual(fresh.map(() => true));
        expect(await rolloutGated()).toBeUndefined();
        const record = (await testClients().custom.getNamespacedCustomObject({
          group: "healthgate.io",
          version: "v1alpha1",
          plural: "healthtargets",
          namespace: ns,
          name: "web",
        })) as { status?: { gating?: unknown } };
        expect(record.status?.gating).toBeUndefined();
        return true;
      },
      {
        what: "the replacements to be gated, and RolloutGated and the record's status.gating to clear",
        timeoutMs: 60_000,
        intervalMs: 300,
      },
    );
  });

  it("rotates its CA and serving certificate while pods are admitted, without a failed or ungated admission", async () => {
    const ns = hg.namespace;
    // Lifetimes of seconds: within the loop the CA rotates at least once and the serving
    // certificate several times.
    await startHealthgate({ caValidityMs: 24_000, servingValidityMs: 9_000, overlapMs: 3_000 });
    await hg.createPolicy(makePolicy("web", withRollout));
    await hg.apply(makeDeployment("web", withReplicas(1)));
    await waitForRolloutComplete(ns, "web");
    await recordStable("web", hashOf((await podsOf("web"))[0]!));
    await webhookAnswers("web");

    const secretName = identity!.rendered.find((o) => o.kind === "Secret")!.metadata.name;
    const cas = new Set<string>();
    const servingCerts = new Set<string>();
    let admitted = 0;
    let ungated = 0;
    let failed = 0;
    const until = Date.now() + 45_000;
    while (Date.now() < until) {
      try {
        if (gated(await admit("web", "new00000"))) admitted++;
        else ungated++;
      } catch {
        failed++;
      }
      const secret = await testClients().core.readNamespacedSecret({ name: secretName, namespace: system! });
      cas.add(secret.data?.["ca.crt"] ?? "");
      servingCerts.add(secret.data?.["tls.crt"] ?? "");
    }
    console.info(
      `gate webhook rotation: ${admitted} admissions gated across ${cas.size} CAs and ${servingCerts.size} ` +
        `serving certificates; ${failed} failed, ${ungated} ungated`,
    );
    expect({ failed, ungated }).toEqual({ failed: 0, ungated: 0 });
    expect(admitted).toBeGreaterThan(20);
    expect(cas.size, "CAs seen").toBeGreaterThanOrEqual(2);
    expect(servingCerts.size, "serving certificates seen").toBeGreaterThanOrEqual(3);
  });

  it("refuses any pods/status change by its ServiceAccount but the deep-check condition (ValidatingAdmissionPolicy)", async () => {
    const ns = hg.namespace;
    await startHealthgate();
    const guard = (identity!.rendered as Rendered[]).filter((o) => o.metadata.name.endsWith("-gate-guard"));
    expect(guard.map((o) => o.kind).sort()).toEqual([
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]);
    await applyAsHelm(...guard);
    try {
      await hg.apply(makeDeployment("web", withReplicas(1)));
      await waitForRolloutComplete(ns, "web");
      const pod = (await podsOf("web"))[0]!.metadata!.name!;
      // As healthgate's ServiceAccount (its own token, the chart's RBAC), and as the test's admin.
      const patchStatus = (condition: Record<string, string>, kubeConfig = identity!.kubeConfig) =>
        kubeConfig.makeApiClient(CoreV1Api).patchNamespacedPodStatus(
          {
            name: pod,
            namespace: ns,
            body: {
              status: {
                conditions: [
                  { ...condition, lastTransitionTime: new Date().toISOString().replace(/\.\d{3}Z$/, "Z") },
                ],
              },
            },
          },
          setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
        );
      // The policy takes effect once the API server has loaded it: wait for the first refusal.
      const refusal = await waitFor(
        () =>
          patchStatus({ type: "example.com/other", status: "True" }).then(
            () => undefined,
            (err: { body?: unknown }) => String(err.body),
          ),
        {
          what: "the gate guard to refuse healthgate's change of another condition",
          timeoutMs: 30_000,
          intervalMs: 500,
        },
      );
      expect(refusal).toContain("may change only the healthgate.io/deep-check condition of a pod");
      const readyRefused = await patchStatus({ type: "Ready", status: "False" }).then(
        () => "accepted",
        (err: { body?: unknown }) => String(err.body),
      );
      expect(readyRefused).toContain("may change only the healthgate.io/deep-check condition of a pod");
      // Its own condition passes, and so does anyone else's change of another condition.
      await patchStatus({ type: DEEP_CHECK_GATE, status: "True", reason: "Admitted" });
      await patchStatus({ type: "example.com/other", status: "True" }, testClients().kc);
      const stored = await testClients().core.readNamespacedPod({ name: pod, namespace: ns });
      expect(stored.status?.conditions?.find((c) => c.type === DEEP_CHECK_GATE)?.status).toBe("True");
    } finally {
      for (const o of guard)
        await kubectl(["delete", "--ignore-not-found", o.kind.toLowerCase(), o.metadata.name]);
    }
  });

  /** Changes the image of `name` and waits until its new revision's pods are there, gated, and held. */
  async function rollGated(name: string, image: string, stable: string) {
    await testClients().apps.patchNamespacedDeployment({
      name,
      namespace: hg.namespace,
      body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: image }],
    });
    return waitFor(
      async () => {
        const fresh = (await podsOf(name)).filter((p) => hashOf(p) !== stable);
        expect(fresh.length).toBeGreaterThan(0);
        for (const pod of fresh) {
          expect(gated(pod)).toBe(true);
          expect(pod.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("False");
        }
        return fresh;
      },
      { what: `the new revision of ${name} to be gated and held`, timeoutMs: 30_000, intervalMs: 300 },
    );
  }

  /** A Deployment with a recorded stable revision, ready for gated rollouts. */
  async function givenGatedDeployment(name: string) {
    await hg.createPolicy(makePolicy(name, withRollout));
    await hg.apply(makeDeployment(name, withReplicas(2)));
    await waitForRolloutComplete(hg.namespace, name);
    const stable = hashOf((await podsOf(name))[0]!);
    await recordStable(name, stable);
    return stable;
  }

  it("opens the gates that gating no longer holds when the policy is deleted; later pods carry no gate", async () => {
    const ns = hg.namespace;
    await startHealthgate();
    const stable = await givenGatedDeployment("web");
    await webhookAnswers("web");
    await rollGated("web", "example/web:2", stable);
    // When the policy goes
    await deletePolicy(ns, "web");
    // Then the held pods' gates open and the rollout completes
    await waitForRolloutComplete(ns, "web");
    const pods = (await podsOf("web")).filter((p) => !p.metadata?.deletionTimestamp);
    // The pods gated before are released; those the Deployment created afterwards carry no gate.
    const wereGated = pods.filter(gated);
    expect(wereGated.length).toBeGreaterThan(0);
    for (const pod of wereGated) expect(gateCondition(pod as unknown as Pod)?.status).toBe("True");
    // Each gate the sweep released is named by a GatesReleased Event.
    const released = wereGated.filter((p) => gateCondition(p as unknown as Pod)?.reason === "GatingStopped");
    const note = (await listEvents(ns)).find(
      (e) => e.reason === "GatesReleased" && e.regardingName === "web",
    )?.note;
    for (const pod of released) expect(note).toContain(pod.metadata!.name!);
    // and pods created from now on carry no gate
    expect(gated(await admit("web", "new00000"))).toBe(false);
  });

  it("`healthgate release-gates` opens every held gate, and an aborted revision's only with --allow-aborted", async () => {
    const ns = hg.namespace;
    await startHealthgate();
    const webStable = await givenGatedDeployment("web");
    const badStable = await givenGatedDeployment("bad");
    await webhookAnswers("web");
    await rollGated("web", "example/web:2", webStable);
    const bad = await rollGated("bad", "example/web:2", badStable);
    // healthgate is being uninstalled: it stops, and the rollout logic had aborted bad's new revision
    await operator!.stop();
    operator = undefined;
    await kubectl(
      [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=healthgate-rollout",
        "--subresource=status",
        "-f",
        "-",
      ],
      {
        stdin: JSON.stringify({
          apiVersion: "healthgate.io/v1alpha1",
          kind: "HealthTarget",
          metadata: { name: "bad", namespace: ns },
          status: { rollout: { phase: "Aborted", revision: hashOf(bad[0]!), stableRevision: badStable } },
        }),
      },
    );
    const releaseGates = (...args: string[]) =>
      promisify(execFile)(
        process.execPath,
        [
          "src/cli/main.ts",
          "release-gates",
          "--kubeconfig",
          testKubeconfigPath(),
          "--namespace",
          ns,
          ...args,
        ],
        { cwd: repoRoot },
      ).then(
        (r) => ({ code: 0, ...r }),
        (err: { code: number; stdout: string; stderr: string }) => err,
      );
    const first = await releaseGates("--delete-webhook-configuration", configuration!.metadata.name);
    expect(first.stderr).toContain(`kept the gates of aborted revisions of Deployment(s) ${ns}/bad`);
    expect(first.code).toBe(1);
    await waitForRolloutComplete(ns, "web");
    for (const pod of bad) {
      const live = await testClients().core.readNamespacedPod({ name: pod.metadata!.name!, namespace: ns });
      expect(gateCondition(live as unknown as Pod)?.status, pod.metadata?.name).not.toBe("True");
    }
    // The registration is gone: no pod is gated any more.
    await expect(
      testClients().admissionregistration.readMutatingWebhookConfiguration({
        name: configuration!.metadata.name,
      }),
    ).rejects.toThrow();
    configuration = undefined;
    expect(gated(await admit("web", "new00000"))).toBe(false);

    const second = await releaseGates("--allow-aborted");
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`released the gate of pod ${ns}/${bad[0]!.metadata!.name}`);
    await waitForRolloutComplete(ns, "bad");
    const events = (await listEvents(ns)).filter((e) => e.reason === "GatesReleased");
    expect(events.map((e) => e.regardingName).sort()).toEqual(["bad", "web"]);
  });

  it("when its serving thread dies, /readyz fails until a new thread serves, and new pods are gated again", async () => {
    const ns = hg.namespace;
    await startHealthgate();
    await hg.createPolicy(makePolicy("web", withRollout));
    await hg.apply(makeDeployment("web", withReplicas(1)));
    await waitForRolloutComplete(ns, "web");
    await recordStable("web", hashOf((await podsOf("web"))[0]!));
    await webhookAnswers("web");
    const readyz = async () => (await fetch(`http://127.0.0.1:${operator!.boundPort}/readyz?verbose`)).text();
    expect(await readyz()).toContain("[+]gate-webhook ok");

    // When the thread ends as a crash would
    await operator!.gateWebhook!.crashThreadForTest();

    // Then the replica says it cannot serve admissions (the Service stops sending it any)…
    expect(operator!.gateWebhook!.boundPort).toBeUndefined();
    expect(await readyz()).toContain("[-]gate-webhook failed");
    // …until a new thread serves: ready again, and a new revision's pod is gated again
    await waitFor(async () => (await readyz()).includes("[+]gate-webhook ok") || undefined, {
      what: "/readyz to pass again once a new thread serves",
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    await webhookAnswers("web");
    const restarts = await (await fetch(`http://127.0.0.1:${operator!.boundPort}/metrics`)).text();
    expect(restarts).toMatch(/^healthgate_gate_webhook_thread_restarts_total 1$/m);
  });

  it("is answered by a replica that does not lead, before and after the leader goes", async () => {
    // Two replicas with leader election, as the chart runs them; the registration calls the second.
    const replicas: Operator[] = [];
    try {
      const leaderElection = {
        enabled: true as const,
        name: "healthgate",
        leaseDurationMs: 4_000,
        renewDeadlineMs: 3_000,
        retryPeriodMs: 500,
      };
      await startHealthgate({}, true);
      const first = operator!;
      await first.stop();
      operator = undefined;
      const options = operatorOptions!;
      const standbyPort = await freePort("127.0.0.1");
      const leader = new Operator({
        ...options,
        identity: "replica-a",
        leaderElection: { ...leaderElection, namespace: system! },
      });
      replicas.push(leader);
      await leader.start();
      await waitFor(() => leader.isLeader() || undefined, { what: "replica-a to lead", timeoutMs: 30_000 });
      const standby = new Operator({
        ...options,
        identity: "replica-b",
        leaderElection: { ...leaderElection, namespace: system! },
        gateWebhook: { ...options.gateWebhook!, port: standbyPort },
      });
      replicas.push(standby);
      await standby.start();
      await waitFor(() => standby.gateWebhook!.boundPort, { what: "replica-b to serve", timeoutMs: 30_000 });
      configuration!.webhooks![0]!.clientConfig = { url: `https://127.0.0.1:${standbyPort}/gate` };
      await applyAsHelm(configuration!);
      await hg.createPolicy(makePolicy("web", withRollout));
      await hg.apply(makeDeployment("web", withReplicas(1)));
      await waitForRolloutComplete(hg.namespace, "web");
      operator = leader; // recordStable reads this replica's cache
      await recordStable("web", hashOf((await podsOf("web"))[0]!));
      operator = standby;
      await recordStable("web", hashOf((await podsOf("web"))[0]!));
      operator = undefined;
      // Then the standby answers
      expect(standby.isLeader()).toBe(false);
      await webhookAnswers("web");
      // and keeps answering once the leader is gone (and it leads)
      replicas.shift();
      await leader.stop();
      expect(gated(await admit("web", "new00000"))).toBe(true);
      await waitFor(() => standby.isLeader() || undefined, { what: "replica-b to lead", timeoutMs: 30_000 });
      expect(gated(await admit("web", "new00000"))).toBe(true);
    } finally {
      for (const replica of replicas) await replica.stop();
    }
  });
});
