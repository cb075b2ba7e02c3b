// What the controller's integration tests share: the CRD installed once per
// file, a HealthPolicy builder with modifiers (like test/support/builders.ts),
// a per-test harness (namespace, pod simulator, the operator in-process and
// scoped to that namespace), and readers for what healthgate writes
// (conditions, status, Events, its own request counters).
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
  type V1DeploymentCondition,
  type V1ObjectMeta,
  type V1Pod,
} from "@kubernetes/client-node";
import { afterEach, beforeEach, expect, inject } from "vitest";
import type { DestinationStream } from "pino";
import { parseAllDocuments } from "yaml";
import {
  API_VERSION,
  CRD_NAME,
  DEPLOYMENT_CONDITION_PREFIX,
  GROUP,
  KIND,
  PLURAL,
  RELEASE_INDEX_CRD_NAME,
  TARGET_CRD_NAME,
  VERSION,
  type Condition,
  type HealthPolicySpecInput,
  type HealthPolicyStatus,
} from "../../../src/api/v1alpha1/index.ts";
import {
  ADMISSION_V1_DISCOVERY,
  admissionList,
  enforceManifests,
  handlerMergeManifests,
  servesMutatingPolicies,
} from "../../../src/admission/enforce.ts";
import { Operator } from "../../../src/controller/operator.ts";
import type { App, PodApps } from "../../../src/devcluster/podApps.ts";
import { createLogger, logLevels, type LogLevel } from "../../../src/observability/logger.ts";
import type { PacingSettings } from "../../../src/policy/pacing.ts";
import type { Modifier } from "../../support/builders.ts";
import {
  createTestNamespace,
  deleteTestNamespace,
  ignoreNotFound,
  testClients,
  operatorKubeConfig,
  testKubeconfigPath,
} from "../../support/kube.ts";
import { PodSimulator } from "../../support/podSimulator.ts";
import { servePods } from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";

const execFileAsync = promisify(execFile);
/** Header option for a JSON merge patch through client-node's typed clients. */
export const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const CRD_FILE = path.join(repoRoot, "crds", `${CRD_NAME}.yaml`);
export const TARGET_CRD_FILE = path.join(repoRoot, "crds", `${TARGET_CRD_NAME}.yaml`);
export const RELEASE_INDEX_CRD_FILE = path.join(repoRoot, "crds", `${RELEASE_INDEX_CRD_NAME}.yaml`);
const kubectlCache = mkdtempSync(path.join(tmpdir(), "healthgate-controller-test-kubectl-"));

// ---- kubectl (the one built at the server's version) ----------------------------------------

/** Runs the plane's kubectl against `kubeconfig` (default: the run's plane); resolves to stdout. */
export async function kubectl(
  args: readonly string[],
  options: { stdin?: string; kubeconfig?: string } = {},
) {
  const bin = path.join(inject("k8sBinDir"), "kubectl");
  const argv = [
    "--kubeconfig",
    options.kubeconfig ?? testKubeconfigPath(),
    "--cache-dir",
    kubectlCache,
    ...args,
  ];
  const child = execFileAsync(bin, argv, { cwd: repoRoot, maxBuffer: 16 << 20 });
  if (options.stdin !== undefined) child.child.stdin!.end(options.stdin);
  try {
    return (await child).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(" ")} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

// ---- the CRD ------------------------------------------------------------------------------

/**
 * Installs the generated CRDs (server-side apply: idempotent, and other suites may apply them at
 * the same time) and waits until they are Established and discovery serves them; then Enforce's
 * admission policies, generated for this plane's admin user (the in-process operator's identity)
 * as the one allowed to write HealthTarget status.
 */
export async function installCrd(kubeconfig?: string): Promise<void> {
  const opts = kubeconfig ? { kubeconfig } : {};
  const apply = ["apply", "--server-side", "--force-conflicts", "--field-manager=healthgate-controller-test"];
  await kubectl([...apply, "-f", CRD_FILE, "-f", TARGET_CRD_FILE, "-f", RELEASE_INDEX_CRD_FILE], opts);
  for (const crd of [CRD_NAME, TARGET_CRD_NAME, RELEASE_INDEX_CRD_NAME]) {
    await kubectl(["wait", "--for=condition=Established", "--timeout=60s", `crd/${crd}`], opts);
  }
  await waitFor(() => kubectl(["get", "hpol,htgt,hrel", "--all-namespaces"], opts).then(() => true), {
    what: "discovery to serve healthpolicies, healthtargets and healthreleases (kubectl get hpol,htgt,hrel)",
    timeoutMs: 30_000,
    intervalMs: 250,
  });
  const writer = (
    await kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], opts)
  ).trim();
  // Before 1.36 the plane serves no MutatingAdmissionPolicies: the record-status policy only.
  const mutating = servesMutatingPolicies(await kubectl(["get", "--raw", ADMISSION_V1_DISCOVERY], opts));
  await kubectl([...apply, "-f", "-"], {
    ...opts,
    // Operators run as the admin, or as a chart ServiceAccount named per test (chartIdentity.ts).
    stdin: JSON.stringify(exceptPrivateNamespaces(admissionList("healthgate-test", writer, true, mutating))),
  });
}

/**
 * A namespace created with this label (useTestNamespace({ labels })) gets none of the run's shared
 * mutating policies: a test installs its own copies there (privateAdmission), so the API server's
 * evaluation counts for them are that namespace's writes alone, not every test file's.
 */
export const PRIVATE_ADMISSION_LABEL = "healthgate.io/test-private-admission";

type Manifest = { kind: string; metadata: { name: string }; spec: Record<string, unknown> };

const withNamespaceSelector = (items: readonly Manifest[], namespaceSelector: unknown) =>
  items.map((item) =>
    item.kind === "MutatingAdmissionPolicyBinding"
      ? {
          ...item,
          spec: {
            ...item.spec,
            matchResources: { ...(item.spec.matchResources as object | undefined), namespaceSelector },
          },
        }
      : item,
  );

function exceptPrivateNamespaces<T extends { items: readonly unknown[] }>(list: T): T {
  return {
    ...list,
    items: withNamespaceSelector(list.items as Manifest[], {
      matchExpressions: [{ key: PRIVATE_ADMISSION_LABEL, operator: "DoesNotExist" }],
    }),
  };
}

/**
 * Enforce's two mutating policies, as the chart has them, bound to one namespace (created with
 * PRIVATE_ADMISSION_LABEL): their names, to read kube-apiserver's counts by, and how to remove them.
 */
export async function privateAdmission(namespace: string) {
  const names = { enforce: `${namespace}-enforce`, handlerMerge: `${namespace}-handler-merge` };
  const manifests = withNamespaceSelector(
    [...enforceManifests(names.enforce), ...handlerMergeManifests(names.handlerMerge)] as Manifest[],
    { matchLabels: { "kubernetes.io/metadata.name": namespace } },
  );
  const list = JSON.stringify({ apiVersion: "v1", kind: "List", items: manifests });
  await kubectl(["apply", "--server-side", "--field-manager=healthgate-controller-test", "-f", "-"], {
    stdin: list,
  });
  return {
    ...names,
    remove: () => kubectl(["delete", "--ignore-not-found", "--wait=false", "-f", "-"], { stdin: list }),
  };
}

/** The CRD as generated, parsed (for tests that install a variant of it). */
export function generatedCrd(): Record<string, unknown> {
  const docs = parseAllDocuments(readFileSync(CRD_FILE, "utf8")).map(
    (d) => d.toJS() as Record<string, unknown>,
  );
  const crd = docs.find((d) => d?.kind === "CustomResourceDefinition");
  if (!crd) throw new Error(`${CRD_FILE} holds no CustomResourceDefinition`);
  return crd;
}

// ---- HealthPolicy builder -----------------------------------------------------------------

export interface HealthPolicyObject extends KubernetesObject {
  metadata: V1ObjectMeta;
  spec: HealthPolicySpecInput;
  status?: HealthPolicyStatus;
}

/**
 * A HealthPolicy selecting `app: <name>` in Audit mode with shallow liveness /healthz and
 * readiness /readyz on the port named http (the builders' default container port).
 */
export function makePolicy(name: string, ...modifiers: Modifier<HealthPolicyObject>[]): HealthPolicyObject {
  const policy: HealthPolicyObject = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      mode: "Audit",
      endpoints: { port: "http", liveness: { path: "/healthz" }, readiness: { path: "/readyz" } },
    },
  };
  for (const modify of modifiers) modify(policy);
  return policy;
}

export const withMode =
  (mode: "Audit" | "Enforce"): Modifier<HealthPolicyObject> =>
  (policy) => {
    policy.spec.mode = mode;
  };

export const selectingApp =
  (app: string): Modifier<HealthPolicyObject> =>
  (policy) => {
    policy.spec.selector = { matchLabels: { app } };
  };

export const withDeepPaths =
  (...paths: string[]): Modifier<HealthPolicyObject> =>
  (policy) => {
    policy.spec.endpoints = { ...policy.spec.endpoints, deep: { paths } };
  };

export const withShutdown =
  (shutdown: NonNullable<HealthPolicySpecInput["shutdown"]>): Modifier<HealthPolicyObject> =>
  (policy) => {
    policy.spec.shutdown = shutdown;
  };

export const withHeadroom =
  (headroom: NonNullable<HealthPolicySpecInput["headroom"]>): Modifier<HealthPolicyObject> =>
  (policy) => {
    policy.spec.headroom = headroom;
  };

// ---- reading what healthgate wrote --------------------------------------------------------

const policyResource = { group: GROUP, version: VERSION, plural: PLURAL };

export async function readPolicy(namespace: string, name: string): Promise<HealthPolicyObject> {
  return (await testClients().custom.getNamespacedCustomObject({
    ...policyResource,
    namespace,
    name,
  })) as HealthPolicyObject;
}

export async function readDeployment(namespace: string, name: string): Promise<V1Deployment> {
  return testClients().apps.readNamespacedDeployment({ namespace, name });
}

export function policyCondition(policy: HealthPolicyObject, type: string): Condition | undefined {
  return policy.status?.conditions?.find((c) => c.type === type);
}

/** A `healthgate.io/<type>` condition on the Deployment's status. */
export function deploymentCondition(
  deployment: V1Deployment,
  type: string,
): V1DeploymentCondition | undefined {
  return deployment.status?.conditions?.find((c) => c.type === DEPLOYMENT_CONDITION_PREFIX + type);
}

export interface ConditionExpectation {
  status: "True" | "False" | "Unknown";
  reason?: string;
  /** Substrings the message must contain. */
  message?: string | readonly string[];
}

function expectCondition(
  found: { status?: string; reason?: string; message?: string } | undefined,
  where: string,
  want: ConditionExpectation,
): void {
  expect(found, `${where} is missing`).toBeDefined();
  expect(found!.status, `${where}: ${found!.reason}: ${found!.message}`).toBe(want.status);
  if (want.reason !== undefined) expect(found!.reason, `${where}: ${found!.message}`).toBe(want.reason);
  const parts = typeof want.message === "string" ? [want.message] : (want.message ?? []);
  for (const part of parts) expect(found!.message, where).toContain(part);
}

/** Waits until the policy's condition (with observedGeneration current) is as expected; returns the policy. */
export function waitForPolicyCondition(
  namespace: string,
  name: string,
  type: string,
  want: ConditionExpectation,
  timeoutMs = 30_000,
) {
  return waitFor(
    async () => {
      const policy = await readPolicy(namespace, name);
      expect(policy.status?.observedGeneration, "status.observedGeneration").toBe(policy.metadata.generation);
      expectCondition(policyCondition(policy, type), `HealthPolicy ${name} condition ${type}`, want);
      return policy;
    },
    {
      what: `HealthPolicy ${namespace}/${name} to report ${type}=${want.status}${want.reason ? ` (${want.reason})` : ""}`,
      timeoutMs,
    },
  );
}

/** Waits until the Deployment's `healthgate.io/<type>` condition is as expected; returns the Deployment. */
export function waitForDeploymentCondition(
  namespace: string,
  name: string,
  type: string,
  want: ConditionExpectation,
  timeoutMs = 30_000,
) {
  return waitFor(
    async () => {
      const deployment = await readDeployment(namespace, name);
      expectCondition(
        deploymentCondition(deployment, type),
        `Deployment ${name} condition ${DEPLOYMENT_CONDITION_PREFIX}${type}`,
        want,
      );
      return deployment;
    },
    {
      what: `Deployment ${namespace}/${name} to carry ${DEPLOYMENT_CONDITION_PREFIX}${type}=${want.status}`,
      timeoutMs,
    },
  );
}

/** Waits until the Deployment's rollout is complete: every replica updated and available, no old ones left. */
export function waitForRolloutComplete(namespace: string, name: string, timeoutMs = 60_000) {
  return waitFor(
    async () => {
      const d = await readDeployment(namespace, name);
      const want = d.spec?.replicas ?? 1;
      const s = d.status ?? {};
      expect(s.observedGeneration, "status.observedGeneration").toBe(d.metadata?.generation);
      expect({ replicas: s.replicas, updated: s.updatedReplicas, available: s.availableReplicas }).toEqual({
        replicas: want,
        updated: want,
        available: want,
      });
      return d;
    },
    { what: `Deployment ${namespace}/${name} to finish rolling out`, timeoutMs, intervalMs: 200 },
  );
}

export interface RecordedEvent {
  type: string;
  reason: string;
  note: string;
  regardingKind: string;
  regardingName: string;
  reportingController: string;
}

/** events.k8s.io/v1 Events in the namespace. */
export async function listEvents(namespace: string): Promise<RecordedEvent[]> {
  const list = (await testClients().custom.listNamespacedCustomObject({
    group: "events.k8s.io",
    version: "v1",
    plural: "events",
    namespace,
  })) as {
    items: {
      type?: string;
      reason?: string;
      note?: string;
      reportingController?: string;
      regarding?: { kind?: string; name?: string };
    }[];
  };
  return list.items.map((e) => ({
    type: e.type ?? "",
    reason: e.reason ?? "",
    note: e.note ?? "",
    regardingKind: e.regarding?.kind ?? "",
    regardingName: e.regarding?.name ?? "",
    reportingController: e.reportingController ?? "",
  }));
}

/** Waits for an Event matching `want` and returns it. */
export function waitForEvent(
  namespace: string,
  want: Partial<RecordedEvent> & { noteContains?: string },
  timeoutMs = 30_000,
) {
  const { noteContains, ...fields } = want;
  return waitFor(
    async () => {
      const events = await listEvents(namespace);
      const match = events.find(
        (e) =>
          Object.entries(fields).every(([k, v]) => e[k as keyof RecordedEvent] === v) &&
          (noteContains === undefined || e.note.includes(noteContains)),
      );
      if (!match) {
        throw new Error(
          `no such event among: ${events.map((e) => `${e.type}/${e.reason} ${e.regardingKind}/${e.regardingName}`).join("; ") || "(none)"}`,
        );
      }
      return match;
    },
    { what: `an Event ${JSON.stringify(want)} in ${namespace}`, timeoutMs },
  );
}

// ---- writing as someone else --------------------------------------------------------------

/** Server-side apply of `object` under `fieldManager` (force takes fields other managers own). */
export async function applyAs<T extends KubernetesObject>(
  fieldManager: string,
  object: T,
  options: { force?: boolean } = {},
): Promise<T> {
  return testClients().objects.patch(
    object,
    undefined,
    undefined,
    fieldManager,
    options.force ?? false,
    PatchStrategy.ServerSideApply,
  );
}

export async function createPolicy(
  namespace: string,
  policy: HealthPolicyObject,
): Promise<HealthPolicyObject> {
  return (await testClients().custom.createNamespacedCustomObject({
    ...policyResource,
    namespace,
    body: { ...policy, metadata: { ...policy.metadata, namespace } },
  })) as HealthPolicyObject;
}

/** JSON merge patch of a policy's spec, as a user's edit (`kubectl edit`) would make. */
export async function patchPolicySpec(namespace: string, name: string, spec: Record<string, unknown>) {
  const { custom } = testClients();
  return custom.patchNamespacedCustomObject(
    { ...policyResource, namespace, name, body: { spec } },
    mergePatch,
  );
}

export async function deletePolicy(namespace: string, name: string) {
  await ignoreNotFound(
    testClients().custom.deleteNamespacedCustomObject({ ...policyResource, namespace, name }),
  );
}

// ---- the operator's own account of what it did --------------------------------------------

/** Write verbs as healthgate's client labels them. */
export const WRITE_VERBS = ["apply", "create", "update", "patch", "delete"] as const;

/** Sum of `healthgate_api_requests_total` over the given labels (an omitted label matches all). */
export async function apiRequests(
  operator: Operator,
  labels: { verb?: string | readonly string[]; resource?: string } = {},
): Promise<number> {
  const metric = await operator.metrics.registry.getSingleMetric("healthgate_api_requests_total")?.get();
  const verbs =
    labels.verb === undefined ? undefined : typeof labels.verb === "string" ? [labels.verb] : labels.verb;
  return (metric?.values ?? [])
    .filter((v) => (verbs ? verbs.includes(String(v.labels.verb)) : true))
    .filter((v) => (labels.resource ? v.labels.resource === labels.resource : true))
    .reduce((sum, v) => sum + v.value, 0);
}

/** Requests healthgate sent, as "verb resource" lines (for failure messages). */
export async function requestLog(operator: Operator): Promise<string[]> {
  const metric = await operator.metrics.registry.getSingleMetric("healthgate_api_requests_total")?.get();
  return (metric?.values ?? []).map(
    (v) => `${v.labels.verb} ${v.labels.resource} ${v.labels.code}: ${v.value}`,
  );
}

export async function reconciles(operator: Operator): Promise<number> {
  const metric = await operator.metrics.registry.getSingleMetric("healthgate_reconcile_total")?.get();
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

async function queueDepth(operator: Operator): Promise<number> {
  const metric = await operator.metrics.registry.getSingleMetric("healthgate_workqueue_depth")?.get();
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

/**
 * Waits until the operator has run at least `atLeast` reconciles and then stays idle (no new
 * reconcile, empty queue) for `quietMs`. The quiet period bounds how long we wait for stray
 * work; nothing is asserted about how fast it happens.
 */
export async function waitUntilIdle(operator: Operator, atLeast: number, quietMs = 1_500): Promise<void> {
  let last = -1;
  let since = Date.now();
  await waitFor(
    async () => {
      const count = await reconciles(operator);
      const depth = await queueDepth(operator);
      if (count !== last || depth > 0) {
        last = count;
        since = Date.now();
      }
      if (count < atLeast) throw new Error(`${count} reconciles so far, waiting for ${atLeast}`);
      if (Date.now() - since < quietMs) throw new Error(`${count} reconciles; not quiet yet`);
      return true;
    },
    { what: `the operator to finish ${atLeast}+ reconciles and go idle`, timeoutMs: 30_000, intervalMs: 100 },
  );
}

// ---- the per-test harness -----------------------------------------------------------------

/** How many of the operator's last log lines a failed test shows. */
const KEPT_LOG_LINES = 300;

/**
 * The operator's pino lines go to stdout only when HEALTHGATE_TEST_LOG_LEVEL (e.g. debug) asks
 * for them; otherwise its info lines are kept and shown when a test fails.
 */
function operatorLogLevel(): LogLevel {
  const wanted = process.env.HEALTHGATE_TEST_LOG_LEVEL;
  return logLevels.find((level) => level === wanted) ?? "silent";
}

export interface ControllerHarness {
  /** The test's namespace. */
  readonly namespace: string;
  /** Plays the kubelet, unless the harness runs on the real nodes. */
  readonly simulator: PodSimulator;
  /** Serves the pods' endpoints when the harness runs on the real nodes (useControllerHarness({ app })). */
  readonly apps: PodApps;
  /** The running operator (after startOperator). */
  readonly operator: Operator;
  /**
   * Starts healthgate in-process, scoped to the namespace, and waits for its caches. By default
   * as the test's admin; `kubeConfig` runs it as someone else (e.g. the chart's ServiceAccount),
   * `logDestination` receives its pino lines (at info and above), `enforceAvailable` overrides
   * what discovery says about MutatingAdmissionPolicies.
   */
  startOperator(options?: {
    kubeConfig?: KubeConfig;
    logDestination?: DestinationStream;
    enforceAvailable?: boolean;
    /** Release pacing (maxConcurrentRollouts, slot timeout); omitted: the operator's default. */
    pacing?: PacingSettings;
  }): Promise<Operator>;
  /** Stops the running operator (a later startOperator starts a fresh one: new memory, new metrics). */
  stopOperator(): Promise<void>;
  /**
   * Reconcile twice to prove idempotence: once the namespace has settled (rollouts done, the
   * operator idle), restarts the operator — no memory of its writes, every key reconciled
   * again — and asserts that it sent no write and no Deployment or HealthPolicy changed.
   */
  expectSecondReconcileWritesNothing(): Promise<void>;
  /** Server-side apply as the test's "user" (field manager `test-user`), in the namespace. */
  apply<T extends KubernetesObject>(object: T, fieldManager?: string): Promise<T>;
  createPolicy(policy: HealthPolicyObject): Promise<HealthPolicyObject>;
}

/**
 * Per test: a namespace named after the test, a pod simulator playing the kubelet in it (or,
 * with `app`, pods on the real nodes served by `app`: see test/support/realNodes.ts), and (on
 * demand) the operator. Everything is stopped and deleted after the test, operator first; the
 * test fails if the simulator or the pods' servers met errors, or a real node is not Ready.
 */
export function useControllerHarness(options: { app?: (pod: V1Pod) => App } = {}): ControllerHarness {
  let namespace: string | undefined;
  let simulator: PodSimulator | undefined;
  let served: Awaited<ReturnType<typeof servePods>> | undefined;
  let operator: Operator | undefined;
  /** The operators' pino lines (info and above) of the running test, shown only if it fails. */
  let logLines: string[] = [];
  const keptLog: DestinationStream = {
    write: (line: string) => {
      logLines.push(line);
      if (logLines.length > 2 * KEPT_LOG_LINES) logLines = logLines.slice(-KEPT_LOG_LINES);
    },
  };

  beforeEach(async (context) => {
    logLines = [];
    context.onTestFailed(() => {
      const shown = logLines.slice(-KEPT_LOG_LINES);
      if (shown.length > 0)
        console.error(`healthgate's log (info and above) in "${context.task.name}":\n${shown.join("")}`);
    });
    namespace = await createTestNamespace(context.task.name);
    if (options.app) served = await servePods(namespace, options.app);
    else simulator = await PodSimulator.start({ namespace });
  });
  afterEach(async () => {
    await operator?.stop();
    operator = undefined;
    const [sim, pods] = [simulator, served];
    simulator = undefined;
    served = undefined;
    await sim?.stop();
    if (namespace) await deleteTestNamespace(namespace);
    namespace = undefined;
    await pods?.stop();
    if (sim && sim.errors.length > 0) {
      throw new Error(`the pod simulator met errors: ${sim.errors.map((e) => e.message).join("; ")}`);
    }
  });

  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined)
      throw new Error(`${what} is only available inside a test (after startOperator for the operator)`);
    return value;
  };

  return {
    get namespace() {
      return need(namespace, "the namespace");
    },
    get simulator() {
      return need(simulator, "the pod simulator");
    },
    get apps() {
      return need(served?.apps, "the pods' servers (useControllerHarness({ app }))");
    },
    get operator() {
      return need(operator, "the operator");
    },
    async startOperator(options = {}) {
      if (operator) throw new Error("the operator is already running; stopOperator() first");
      const started = new Operator({
        kubeConfig: options.kubeConfig ?? operatorKubeConfig(),
        logger: options.logDestination
          ? createLogger("info", options.logDestination)
          : process.env.HEALTHGATE_TEST_LOG_LEVEL
            ? createLogger(operatorLogLevel())
            : createLogger("info", keptLog),
        namespaces: [need(namespace, "the namespace")],
        port: 0,
        leaderElection: { enabled: false },
        identity: "healthgate-controller-test",
        ...(options.enforceAvailable !== undefined ? { enforceAvailable: options.enforceAvailable } : {}),
        ...(options.pacing ? { pacing: options.pacing } : {}),
      });
      await started.start();
      operator = started;
      return started;
    },
    async stopOperator() {
      await operator?.stop();
      operator = undefined;
    },
    async expectSecondReconcileWritesNothing() {
      const ns = need(namespace, "the namespace");
      const first = need(operator, "the operator");
      const { apps, custom } = testClients();
      for (const d of (await apps.listNamespacedDeployment({ namespace: ns })).items) {
        await waitForRolloutComplete(ns, d.metadata!.name!);
      }
      await waitUntilIdle(first, 1);
      const versions = async () => {
        const deployments = (await apps.listNamespacedDeployment({ namespace: ns })).items;
        const policies = (await custom.listNamespacedCustomObject({ ...policyResource, namespace: ns })) as {
          items: HealthPolicyObject[];
        };
        return Object.fromEntries([
          ...deployments.map((d) => [`Deployment ${d.metadata!.name}`, d.metadata!.resourceVersion]),
          ...policies.items.map((p) => [`HealthPolicy ${p.metadata.name}`, p.metadata.resourceVersion]),
        ]) as Record<string, string>;
      };
      const settled = await versions();
      await first.stop();
      operator = undefined;
      const second = await this.startOperator();
      const policyCount = Object.keys(settled).filter((k) => k.startsWith("HealthPolicy ")).length;
      await waitUntilIdle(second, Math.max(1, policyCount));
      expect(await apiRequests(second, { verb: WRITE_VERBS }), (await requestLog(second)).join("\n")).toBe(0);
      expect(await versions()).toEqual(settled);
    },
    apply(object, fieldManager = "test-user") {
      const ns = need(namespace, "the namespace");
      return applyAs(fieldManager, { ...object, metadata: { ...object.metadata, namespace: ns } });
    },
    createPolicy(policy) {
      return createPolicy(need(namespace, "the namespace"), policy);
    },
  };
}
