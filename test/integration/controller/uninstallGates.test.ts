// The chart's pre-delete hook inside a real `helm uninstall` (issue 20, "a gate is never
// stranded"). The chart is installed by helm; healthgate runs in-process as the release's
// ServiceAccount and serves the gate webhook for the chart's own registration (its clientConfig
// pointed at this process, the certificates in the chart's Secret). When `helm uninstall` creates
// the hook Job, the test runs exactly the command the Job's container would run — its args, read
// from the Job — as the hook's own ServiceAccount (a token of it), then plays the Job's pod as
// having exited 0, as a kubelet would, so helm proceeds. No container runs on the test plane;
// everything else (helm's hook ordering, the hook's RBAC, the command) is real.
//
// Proved: helm waits for the hook; the registration is gone before any gate opens (the API
// server's audit log orders the hook account's requests); a pod that
// got its gate just before the registration went (its CREATE still in flight during the first
// sweep, played by creating it with the gate right after that sweep) is released by the second
// sweep, after the webhook timeout; the held pods turn Ready; pods created afterwards carry no gate.
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { BatchV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ADMISSION_V1_DISCOVERY, servesMutatingPolicies } from "../../../src/admission/enforce.ts";
import { Operator } from "../../../src/controller/operator.ts";
import { freePort } from "../../../src/devcluster/net.ts";
import { gateCondition, isGated } from "../../../src/kube/podGate.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import type { Pod } from "../../../src/api/k8s.ts";
import { makeDeployment, withReplicas, type Modifier } from "../../support/builders.ts";
import {
  createTestNamespace,
  deleteTestNamespace,
  testClients,
  testKubeconfigPath,
} from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  installCrd,
  jsonPatch,
  kubectl,
  listEvents,
  makePolicy,
  mergePatch,
  repoRoot,
  useControllerHarness,
  waitForRolloutComplete,
  type HealthPolicyObject,
} from "./support.ts";

const run = promisify(execFile);
const HASH = "pod-template-hash";
/** webhook.timeoutSeconds for this release: the Job sweeps again after it (the chart's default is 2). */
const TIMEOUT_SECONDS = 8;

beforeAll(() => installCrd());

const withRollout: Modifier<HealthPolicyObject> = (p) => {
  p.spec.rollout = { steps: [{ weight: 100 }], deepCheck: { path: "/health/deep", port: "http" } };
};
const gated = (pod: V1Pod) => isGated(pod as unknown as Pod);
const gateOf = (pod: V1Pod) => gateCondition(pod as unknown as Pod)?.status;
const hashOf = (pod: V1Pod) => pod.metadata?.labels?.[HASH] ?? "";
const ready = (pod: V1Pod) => pod.status?.conditions?.find((c) => c.type === "Ready")?.status;

async function helmBinary(): Promise<string> {
  if (process.env.HELM) return process.env.HELM;
  const { stdout } = await run("bash", ["hack/ensure-helm.sh"], { cwd: repoRoot, maxBuffer: 16 << 20 });
  return stdout.trim().split("\n").pop()!;
}

/** A kubeconfig that authenticates as ServiceAccount `name` of `namespace` (a token of it). */
async function serviceAccountKubeConfig(namespace: string, name: string): Promise<KubeConfig> {
  const { core, kc } = testClients();
  const token = (
    await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    })
  ).status!.token!;
  const cluster = kc.getCurrentCluster()!;
  const caData =
    cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString("base64") : undefined);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "plane", server: cluster.server, caData, skipTLSVerify: false }],
    users: [{ name, token }],
    contexts: [{ name, cluster: "plane", user: name }],
    currentContext: name,
  });
  return kubeConfig;
}

interface AuditEvent {
  stage: string;
  verb: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; name?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

describe("helm uninstall with the gate webhook", () => {
  const hg = useControllerHarness();
  let system: string | undefined;
  let operator: Operator | undefined;
  let scratch: string | undefined;
  let cleanup: (() => Promise<unknown>) | undefined;

  afterEach(async () => {
    await operator?.stop();
    operator = undefined;
    await cleanup?.().catch(() => undefined);
    cleanup = undefined;
    if (scratch) await rm(scratch, { recursive: true, force: true });
    scratch = undefined;
    if (system) await deleteTestNamespace(system);
    system = undefined;
  });

  async function podsOf(app: string): Promise<V1Pod[]> {
    return (
      await testClients().core.listNamespacedPod({ namespace: hg.namespace, labelSelector: `app=${app}` })
    ).items.filter((p) => !p.metadata?.deletionTimestamp);
  }

  it("runs the pre-delete hook: the registration goes first, every held gate opens, a late one after the webhook timeout, later pods carry no gate", async () => {
    const { core, apps, admissionregistration } = testClients();
    const ns = hg.namespace;
    const helm = await helmBinary();
    system = await createTestNamespace("hg-uninstall");
    const release = `hgg-${system.slice(-6)}`.replace(/[^a-z0-9-]/g, "");
    const fullname = `${release}-healthgate`;
    const configurationName = `${fullname}-gate`;
    const common = ["--kubeconfig", testKubeconfigPath(), "--namespace", system];
    // Given healthgate installed by helm (without the CRDs: the run's plane has them outside any release;
    // on a plane older than 1.36, without the enforce objects, as docs/enforce.md asks users there)
    const withoutEnforce = servesMutatingPolicies(await kubectl(["get", "--raw", ADMISSION_V1_DISCOVERY]))
      ? []
      : ["--set", "enforce.enabled=false", "--set", "handlerMerge.enabled=false"];
    await run(
      helm,
      [
        "install",
        release,
        "charts/healthgate",
        ...common,
        "--set",
        `watchNamespaces={${ns}}`,
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicas=1",
        "--set",
        "crds.enabled=false",
        "--set",
        "denyPolicy.enabled=false",
        "--set",
        `webhook.timeoutSeconds=${TIMEOUT_SECONDS}`,
        ...withoutEnforce,
      ],
      { cwd: repoRoot, maxBuffer: 16 << 20 },
    );
    cleanup = () =>
      run(helm, ["uninstall", release, ...common, "--no-hooks", "--ignore-not-found"], { cwd: repoRoot });
    // serving the chart's registration from this process, as the release's ServiceAccount
    const port = await freePort("127.0.0.1");
    await admissionregistration.patchMutatingWebhookConfiguration(
      {
        name: configurationName,
        body: [
          { op: "test", path: "/webhooks/0/name", value: "gate.healthgate.io" },
          {
            op: "replace",
            path: "/webhooks/0/clientConfig",
            value: { url: `https://127.0.0.1:${port}/gate` },
          },
        ],
      },
      jsonPatch,
    );
    const kubeConfig = await waitFor(() => serviceAccountKubeConfig(system!, fullname), {
      what: `ServiceAccount ${fullname}`,
    });
    operator = new Operator({
      kubeConfig,
      logger: createLogger("silent"),
      namespaces: [ns],
      port: 0,
      leaderElection: { enabled: false },
      identity: "healthgate-uninstall-test",
      gateWebhook: {
        port,
        host: "127.0.0.1",
        namespace: system,
        secretName: `${fullname}-webhook-tls`,
        certificates: "self",
        configurationName,
        dnsNames: [],
        ipAddresses: ["127.0.0.1"],
        refreshMs: 300,
      },
      gateSweepIntervalMs: 500,
    });
    await operator.start();

    // and a Deployment whose new revision is gated and held
    await hg.createPolicy(makePolicy("web", withRollout));
    await hg.apply(makeDeployment("web", withReplicas(2)));
    await waitForRolloutComplete(ns, "web");
    const stable = hashOf((await podsOf("web"))[0]!);
    await waitFor(
      () => operator!.world.targets.get(`${ns}/web`)?.status?.rollout?.stableRevision === stable || undefined,
      { what: "healthgate to record the stable revision", timeoutMs: 60_000 },
    );
    // The API server calls the webhook (the caBundle is in the registration, the thread serves,
    // the stable revision is in its cache) before the new revision's pods are created: a pod
    // created before then is admitted ungated (fail-open) and stays so.
    await waitFor(
      async () => {
        const probe = await core.createNamespacedPod({
          namespace: ns,
          dryRun: "All",
          body: {
            metadata: {
              generateName: "web-probe0000-",
              labels: { app: "web", [HASH]: "probe0000" },
              ownerReferences: [
                {
                  apiVersion: "apps/v1",
                  kind: "ReplicaSet",
                  name: "web-probe0000",
                  uid: "0",
                  controller: true,
                },
              ],
            },
            spec: { containers: [{ name: "web", image: "example/web:2" }] },
          },
        });
        return gated(probe) || undefined;
      },
      { what: "the API server to call the gate webhook", timeoutMs: 60_000, intervalMs: 200 },
    );
    await apps.patchNamespacedDeployment({
      name: "web",
      namespace: ns,
      body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "example/web:2" }],
    });
    const held = await waitFor(
      async () => {
        const fresh = (await podsOf("web")).filter((p) => hashOf(p) !== stable);
        expect(fresh.length).toBeGreaterThan(0);
        for (const pod of fresh) {
          expect(gated(pod)).toBe(true);
          expect(ready(pod)).toBe("False");
        }
        return fresh;
      },
      { what: "the new revision's pods to be gated and held", timeoutMs: 60_000, intervalMs: 300 },
    );
    const revision = hashOf(held[0]!);

    // When the release is uninstalled with its hooks
    const uninstall = run(helm, ["uninstall", release, ...common, "--timeout", "3m"], {
      cwd: repoRoot,
      maxBuffer: 16 << 20,
    });
    uninstall.catch(() => undefined);
    const hookName = `${fullname}-release-gates`;
    const batch = testClients().kc.makeApiClient(BatchV1Api);
    const job = await waitFor(() => batch.readNamespacedJob({ name: hookName, namespace: system! }), {
      what: "helm to create the pre-delete hook Job",
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    // helm waits for it: nothing of the release is deleted yet, the registration included
    expect(
      (await admissionregistration.readMutatingWebhookConfiguration({ name: configurationName })).metadata
        ?.name,
    ).toBe(configurationName);
    const container = job.spec!.template.spec!.containers[0]!;
    expect(container.args?.[0]).toBe("release-gates");
    expect(container.args).toContain(`--sweep-again-after-seconds=${TIMEOUT_SECONDS}`);
    const hookPod = await waitFor(
      async () =>
        (await core.listNamespacedPod({ namespace: system!, labelSelector: `job-name=${hookName}` }))
          .items[0],
      { what: "the hook Job's pod", timeoutMs: 60_000, intervalMs: 200 },
    );

    // The Job's command, as the hook's ServiceAccount
    scratch = await mkdtemp(path.join(os.tmpdir(), "hg-hook-"));
    const hookKubeconfig = path.join(scratch, "kubeconfig");
    await writeFile(
      hookKubeconfig,
      (await serviceAccountKubeConfig(system, job.spec!.template.spec!.serviceAccountName!)).exportConfig(),
    );
    let stdout = "";
    let stderr = "";
    const started = Date.now();
    const command = spawn(
      process.execPath,
      ["src/cli/main.ts", ...container.args!, "--kubeconfig", hookKubeconfig],
      {
        cwd: repoRoot,
        env: { ...process.env, POD_NAME: hookPod.metadata!.name! },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    command.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    command.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => command.once("exit", resolve));

    // Watching while it runs: no gate opens while the registration still exists (pods read
    // first, then the registration: a gate seen open before the registration is seen gone would
    // be a gate opened while new pods could still be gated).
    let registrationGoneAt: number | undefined;
    let firstSweepDoneAt: number | undefined;
    for (;;) {
      const pods = await podsOf("web");
      const opened = pods.filter((p) => hashOf(p) === revision && gateOf(p) === "True");
      const registered = await admissionregistration
        .readMutatingWebhookConfiguration({ name: configurationName })
        .then(
          () => true,
          () => false,
        );
      if (!registered) registrationGoneAt ??= Date.now();
      if (opened.length > 0)
        expect(registered, "a gate opened while the registration still existed").toBe(false);
      if (held.every((h) => opened.some((p) => p.metadata!.uid === h.metadata!.uid))) {
        firstSweepDoneAt = Date.now();
        break;
      }
      expect(Date.now() - started, `the first sweep took too long:\n${stdout}${stderr}`).toBeLessThan(60_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(registrationGoneAt).toBeDefined();

    // A pod whose CREATE the webhook answered just before the registration went, landing after the
    // first sweep (played: created with the gate the webhook gave it)
    const late = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: `web-late-${revision}`, labels: { app: "web-late", [HASH]: revision } },
        spec: {
          readinessGates: [{ conditionType: "healthgate.io/deep-check" }],
          containers: [{ name: "web", image: "example/web:2" }],
        },
      },
    });
    expect(gated(late)).toBe(true);
    // (created before the command's second sweep, which comes TIMEOUT_SECONDS after the first)
    expect(Date.now() - firstSweepDoneAt).toBeLessThan(TIMEOUT_SECONDS * 1000);

    const code = await exited;
    expect(code, `${stdout}${stderr}`).toBe(0);
    expect(stdout).toContain(
      `deleted MutatingWebhookConfiguration ${configurationName}: no new pod is gated`,
    );
    for (const pod of held) expect(stdout).toContain(`released the gate of pod ${ns}/${pod.metadata!.name}`);
    // the second sweep, after the webhook timeout, released the late pod's gate
    expect(stdout).toContain(`released the gate of pod ${ns}/web-late-${revision}`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_SECONDS * 1000);
    expect(gateOf(await core.readNamespacedPod({ name: `web-late-${revision}`, namespace: ns }))).toBe(
      "True",
    );

    // The API server's audit log orders the hook account's requests: the registration's delete
    // completed before its first pods/status patch was received, and the late pod's gate was
    // written at least the webhook timeout after that delete (the second sweep).
    const account = `system:serviceaccount:${system}:${job.spec!.template.spec!.serviceAccountName!}`;
    const audited = await waitFor(
      async () => {
        const events = (await readFile(process.env.HEALTHGATE_TEST_AUDIT_LOG!, "utf8"))
          .split("\n")
          .filter((l) => l.includes(account))
          .map((l) => JSON.parse(l) as AuditEvent)
          .filter((e) => e.user?.username === account && e.stage === "ResponseComplete");
        const deleted = events.find(
          (e) => e.verb === "delete" && e.objectRef?.resource === "mutatingwebhookconfigurations",
        );
        const patches = events.filter((e) => e.verb === "patch" && e.objectRef?.subresource === "status");
        expect(deleted?.responseStatus?.code).toBe(200);
        expect(patches.map((e) => e.objectRef?.name)).toContain(`web-late-${revision}`);
        return { deleted: deleted!, patches };
      },
      { what: "the hook's requests in the audit log", timeoutMs: 30_000 },
    );
    const deletedAt = Date.parse(audited.deleted.stageTimestamp);
    for (const patch of audited.patches) {
      expect(patch.responseStatus?.code).toBe(200);
      expect(Date.parse(patch.requestReceivedTimestamp)).toBeGreaterThan(deletedAt);
    }
    const latePatch = audited.patches.find((e) => e.objectRef?.name === `web-late-${revision}`)!;
    expect(Date.parse(latePatch.requestReceivedTimestamp) - deletedAt).toBeGreaterThanOrEqual(
      TIMEOUT_SECONDS * 1000,
    );

    // The Job's pod exited 0 (played, as a kubelet would report it): helm proceeds and the release goes
    await core.patchNamespacedPodStatus(
      {
        name: hookPod.metadata!.name!,
        namespace: system,
        body: {
          status: {
            phase: "Succeeded",
            containerStatuses: [
              {
                name: container.name,
                image: container.image ?? "",
                imageID: "",
                ready: false,
                restartCount: 0,
                state: { terminated: { exitCode: 0, reason: "Completed" } },
              },
            ],
          },
        },
      },
      mergePatch,
    );
    await uninstall;
    await operator.stop();
    operator = undefined;
    cleanup = undefined;

    // Then the held pods turn Ready, with the gate the hook released
    await waitFor(
      async () => {
        for (const pod of held) {
          const live = await core.readNamespacedPod({ name: pod.metadata!.name!, namespace: ns });
          expect(gateOf(live)).toBe("True");
          expect(gateCondition(live as unknown as Pod)?.reason).toBe("GatingStopped");
          expect(ready(live)).toBe("True");
        }
        return true;
      },
      { what: "the held pods to turn Ready", timeoutMs: 60_000, intervalMs: 300 },
    );
    await waitForRolloutComplete(ns, "web");
    const events = (await listEvents(ns)).filter((e) => e.reason === "GatesReleased");
    expect(events.map((e) => e.regardingName)).toContain("web");
    // and pods created from now on carry no gate
    await apps.patchNamespacedDeployment({
      name: "web",
      namespace: ns,
      body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "example/web:3" }],
    });
    const after = await waitFor(
      async () => {
        const fresh = (await podsOf("web")).filter((p) => hashOf(p) !== stable && hashOf(p) !== revision);
        expect(fresh.length).toBeGreaterThan(0);
        return fresh;
      },
      { what: "the next revision's pods", timeoutMs: 60_000, intervalMs: 300 },
    );
    for (const pod of after) expect(gated(pod), pod.metadata?.name).toBe(false);
    await waitForRolloutComplete(ns, "web");
    // The release is gone, the hook's Job included (hook-succeeded)
    await waitFor(
      async () => (await kubectl(["get", "jobs", "-n", system!, "-o", "name"])).trim() === "" || undefined,
      {
        what: "the hook Job to be deleted",
      },
    );
  });
});
