// deny.deepLiveness on a real kube-apiserver: the ValidatingAdmissionPolicy
// (src/policy/probes/deny.ts, rendered into the chart) with the HealthPolicy
// as its parameter refuses a Deployment only when a HealthPolicy that selects it
// (deny.deepLiveness: true) sees the request add or change a deep liveness probe
// on a container it governs — and leaves everything else alone: label and
// annotation edits, replica changes, deletions (foreground included), and
// healthgate's own writes (docs/admission.md).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1Deployment,
  type V1Probe,
  type V1ValidatingAdmissionPolicy,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { API_VERSION, CRD_NAME, GROUP, KIND, PLURAL, VERSION } from "../../src/api/v1alpha1/index.ts";
import { denyDeepLivenessManifests } from "../../src/policy/probes/deny.ts";
import {
  inNamespace,
  makeContainer,
  makeDeployment,
  withContainer,
  withLabels,
  withProbe,
  withReplicas,
} from "../support/builders.ts";
import {
  createTestNamespace,
  deleteTestNamespace,
  ignoreNotFound,
  isApiError,
  testClients,
  testKubeconfigPath,
} from "../support/kube.ts";
import { waitFor } from "../support/waitFor.ts";
import {
  makePolicy,
  requestLog,
  useControllerHarness,
  waitForDeploymentCondition,
  waitUntilIdle,
  withDeepPaths,
  withMode,
} from "./controller/support.ts";

const { objects, apps, custom, core, admissionregistration, apiextensions } = testClients();
const FIELD_MANAGER = "healthgate-deny-test";
const run = randomBytes(3).toString("hex");
const name = `healthgate-deny-deep-liveness-${run}`;
/**
 * The binding as generated, plus a namespaceSelector so this run's policy only
 * judges this file's namespaces: other suites share the plane.
 */
const SCOPE_LABEL = "test.healthgate.io/deny";

const apply = (body: KubernetesObject) =>
  objects.patch(body, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);

const repo = fileURLToPath(new URL("../../", import.meta.url));
const execFileAsync = promisify(execFile);

/** The CRD goes in with kubectl: client-node's model would drop its x-kubernetes-* schema extensions. */
async function installCrd(): Promise<void> {
  await execFileAsync(
    join(inject("k8sBinDir"), "kubectl"),
    [
      "--kubeconfig",
      testKubeconfigPath(),
      "apply",
      "--server-side",
      "--force-conflicts",
      `--field-manager=${FIELD_MANAGER}`,
      "-f",
      join(repo, "crds/healthpolicies.healthgate.io.yaml"),
    ],
    { cwd: repo },
  );
}

function healthPolicy(
  namespace: string,
  policyName: string,
  spec: Record<string, unknown>,
): KubernetesObject {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: policyName, namespace },
    spec,
  } as KubernetesObject;
}

const denyingSpec = {
  selector: { matchLabels: { app: "web" } },
  deny: { deepLiveness: true },
  endpoints: { liveness: { path: "/healthz" }, deep: { paths: ["/health/deep", "/health/db"] } },
};

function deployment(namespace: string, livenessPath: string, deploymentName = "web"): V1Deployment {
  return withLiveness(makeDeployment(deploymentName, inNamespace(namespace)), {
    httpGet: { path: livenessPath, port: "http" },
  });
}

/** The Deployment with its (first) container's liveness probe replaced. */
function withLiveness(body: V1Deployment, probe: V1Probe): V1Deployment {
  const name = body.spec!.template.spec!.containers[0]!.name;
  withProbe(name, "liveness", probe)(body);
  return body;
}

/** The server's words for a refusal, or "allowed". */
async function outcome(call: () => Promise<unknown>): Promise<"allowed" | string> {
  try {
    await call();
    return "allowed";
  } catch (err) {
    if (!isApiError(err) || (err.code !== 403 && err.code !== 422)) throw err;
    const status = (typeof err.body === "string" ? JSON.parse(err.body) : err.body) as { message?: string };
    return status.message ?? `HTTP ${err.code}`;
  }
}

/** The API server's verdict on creating a Deployment (dry run: admission runs, nothing is stored). */
const verdict = (body: V1Deployment) =>
  outcome(() =>
    apps.createNamespacedDeployment({ namespace: body.metadata!.namespace!, body, dryRun: "All" }),
  );

/** Waits until deny refuses `body` (dry run): the plugin learns new HealthPolicies by watch. */
async function untilDenied(body: V1Deployment): Promise<string> {
  return waitFor(
    async () => {
      const said = await verdict(body);
      if (said === "allowed") throw new Error(`Deployment ${body.metadata!.name} is still allowed`);
      return said;
    },
    {
      what: `the ValidatingAdmissionPolicy to deny Deployment ${body.metadata!.name} in ${body.metadata!.namespace}`,
      timeoutMs: 60_000,
      intervalMs: 250,
    },
  );
}

const namespaces: string[] = [];
async function namespaceWith(
  hint: string,
  ...policies: [string, Record<string, unknown>][]
): Promise<string> {
  const namespace = await createTestNamespace(`deny-${hint}`);
  namespaces.push(namespace);
  await core.patchNamespace(
    { name: namespace, body: { metadata: { labels: { [SCOPE_LABEL]: run } } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  for (const [policyName, spec] of policies) {
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace,
      body: healthPolicy(namespace, policyName, spec),
    });
  }
  return namespace;
}

let denying: string;

beforeAll(async () => {
  // Other suites may install the same CRD at the same time: server-side apply is idempotent.
  await installCrd();
  await waitFor(
    async () => {
      const installed = await apiextensions.readCustomResourceDefinition({ name: CRD_NAME });
      return installed.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    },
    { what: `CRD ${CRD_NAME} to be Established` },
  );

  const { policy, binding } = denyDeepLivenessManifests(name);
  (binding["spec"] as Record<string, unknown>)["matchResources"] = {
    namespaceSelector: { matchLabels: { [SCOPE_LABEL]: run } },
  };
  await apply(policy as unknown as KubernetesObject);
  await apply(binding as unknown as KubernetesObject);

  // Given a namespace whose HealthPolicy denies deep liveness …
  denying = await namespaceWith("on", ["web", denyingSpec]);
  // … the policy takes effect once the admission plugin has synced it and the param.
  await waitFor(async () => (await verdict(deployment(denying, "/health/deep"))) !== "allowed", {
    what: "the ValidatingAdmissionPolicy to deny a deep liveness probe",
    timeoutMs: 60_000,
    intervalMs: 250,
  });
});

afterAll(async () => {
  await ignoreNotFound(admissionregistration.deleteValidatingAdmissionPolicyBinding({ name }));
  await ignoreNotFound(admissionregistration.deleteValidatingAdmissionPolicy({ name }));
  await Promise.all(namespaces.map((ns) => deleteTestNamespace(ns)));
});

describe("deny.deepLiveness (ValidatingAdmissionPolicy, paramKind HealthPolicy)", () => {
  it("type-checks against the CRD's schema without warnings", async () => {
    const checked = await waitFor(
      async () => {
        const vap: V1ValidatingAdmissionPolicy = await admissionregistration.readValidatingAdmissionPolicy({
          name,
        });
        return vap.status?.typeChecking ? vap : undefined;
      },
      { what: "the policy's type checking to finish" },
    );
    expect(checked.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
  });

  it("denies a Deployment whose liveness path is a declared deep path, saying what to do", async () => {
    const message = await verdict(deployment(denying, "/health/db"));
    expect(message).toContain("HealthPolicy web (deny.deepLiveness: true) refuses this Deployment");
    expect(message).toContain("container web has livenessProbe.httpGet.path /health/db");
    expect(message).toContain("Point the liveness probe at a shallow endpoint");
  });

  it("allows a shallow liveness probe in the same namespace, and a real create of it", async () => {
    expect(await verdict(deployment(denying, "/healthz"))).toBe("allowed");
    await apps.createNamespacedDeployment({
      namespace: denying,
      body: deployment(denying, "/healthz", "shallow"),
    });
  });

  it("denies an UPDATE that makes liveness deep", async () => {
    await apps.createNamespacedDeployment({
      namespace: denying,
      // app=web on the Deployment: the namespace's policy selects it.
      body: makeDeployment("updated", inNamespace(denying), withLabels({ app: "web" }), (d) =>
        withLiveness(d, { httpGet: { path: "/livez", port: "http" } }),
      ),
    });
    const deepen = {
      spec: {
        template: {
          spec: { containers: [{ name: "updated", livenessProbe: { httpGet: { path: "/health/deep" } } }] },
        },
      },
    };
    await expect(
      apps.patchNamespacedDeployment(
        { name: "updated", namespace: denying, body: deepen },
        setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
      ),
    ).rejects.toMatchObject({ code: 403 });
  });

  it("allows the deep path when the namespace's policy has deny.deepLiveness: false", async () => {
    const namespace = await namespaceWith("off", ["web", { ...denyingSpec, deny: { deepLiveness: false } }]);
    expect(await verdict(deployment(namespace, "/health/deep"))).toBe("allowed");
  });

  it("allows anything in a namespace without a HealthPolicy (parameterNotFoundAction: Allow)", async () => {
    const namespace = await namespaceWith("none");
    expect(await verdict(deployment(namespace, "/health/deep"))).toBe("allowed");
  });

  it("checks every HealthPolicy that selects the Deployment: one that denies is enough", async () => {
    const namespace = await namespaceWith(
      "two",
      ["audit-only", { selector: { matchLabels: { app: "web" } }, endpoints: {} }],
      ["strict", { ...denyingSpec, selector: { matchLabels: { app: "web" } } }],
    );
    expect(await untilDenied(deployment(namespace, "/health/deep"))).toContain("HealthPolicy strict");
  });

  it("denies the rollout's deep-check path too", async () => {
    const namespace = await namespaceWith("rollout", [
      "web",
      {
        ...denyingSpec,
        rollout: { steps: [{ weight: 100 }], deepCheck: { path: "/status/dependencies" } },
      },
    ]);
    expect(await verdict(deployment(namespace, "/status/dependencies"))).toContain(
      "livenessProbe.httpGet.path /status/dependencies",
    );
  });
});

/** A strategic merge patch that sets one container's liveness probe. */
const liveness = (container: string, probe: unknown) => ({
  spec: { template: { spec: { containers: [{ name: container, livenessProbe: probe }] } } },
});

/** The Deployment as stored, for the old/new comparisons below. */
const read = (namespace: string, deploymentName: string) =>
  apps.readNamespacedDeployment({ namespace, name: deploymentName });

const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const patchDeployment = (namespace: string, deploymentName: string, body: object) =>
  apps.patchNamespacedDeployment({ namespace, name: deploymentName, body }, mergePatch);

describe("deny judges only the Deployments a HealthPolicy selects", () => {
  it("a Deployment the policy does not select may have deep liveness, and its labels and annotations may change", async () => {
    // Given a policy that selects app=unrelated and denies deep liveness …
    const namespace = await namespaceWith("unselected", [
      "strict",
      { ...denyingSpec, selector: { matchLabels: { app: "unrelated" } } },
    ]);
    await untilDenied(deployment(namespace, "/health/deep", "unrelated"));
    // … and a Deployment `legacy` it does not select, whose liveness path is the deep one
    expect(await verdict(deployment(namespace, "/health/deep", "legacy"))).toBe("allowed");
    await apps.createNamespacedDeployment({
      namespace,
      body: deployment(namespace, "/health/deep", "legacy"),
    });

    // When it is labelled (kubectl label deploy legacy team=x) and annotated, Then both pass
    expect(
      await outcome(() => patchDeployment(namespace, "legacy", { metadata: { labels: { team: "x" } } })),
    ).toBe("allowed");
    expect(
      await outcome(() =>
        patchDeployment(namespace, "legacy", {
          metadata: { annotations: { "example.com/owner": "team-x" } },
        }),
      ),
    ).toBe("allowed");
    expect((await read(namespace, "legacy")).metadata?.labels).toMatchObject({ team: "x" });
  });

  it.each<[string, Record<string, unknown>, Record<string, string>, "denied" | "allowed"]>([
    [
      "matchExpressions In (matches)",
      { matchExpressions: [{ key: "tier", operator: "In", values: ["web"] }] },
      { tier: "web" },
      "denied",
    ],
    [
      "matchExpressions In (other value)",
      { matchExpressions: [{ key: "tier", operator: "In", values: ["web"] }] },
      { tier: "batch" },
      "allowed",
    ],
    [
      "matchExpressions NotIn (other value)",
      { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["batch"] }] },
      { tier: "web" },
      "denied",
    ],
    [
      "matchExpressions NotIn (excluded value)",
      { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["web"] }] },
      { tier: "web" },
      "allowed",
    ],
    [
      "matchExpressions Exists (present)",
      { matchExpressions: [{ key: "tier", operator: "Exists" }] },
      { tier: "web" },
      "denied",
    ],
    [
      "matchExpressions Exists (absent)",
      { matchExpressions: [{ key: "tier", operator: "Exists" }] },
      {},
      "allowed",
    ],
    [
      "matchExpressions DoesNotExist (absent)",
      { matchExpressions: [{ key: "legacy", operator: "DoesNotExist" }] },
      {},
      "denied",
    ],
    [
      "matchExpressions DoesNotExist (present)",
      { matchExpressions: [{ key: "legacy", operator: "DoesNotExist" }] },
      { legacy: "yes" },
      "allowed",
    ],
    [
      "matchLabels and matchExpressions (both hold)",
      { matchLabels: { app: "sel" }, matchExpressions: [{ key: "tier", operator: "Exists" }] },
      { tier: "web" },
      "denied",
    ],
    [
      "matchLabels and matchExpressions (one fails)",
      { matchLabels: { app: "other" }, matchExpressions: [{ key: "tier", operator: "Exists" }] },
      { tier: "web" },
      "allowed",
    ],
  ])("selector %s → %s", async (hint, selector, labels, expected) => {
    // A second policy that selects every case's Deployment by a label it always has, denying
    // nothing, lets us wait for the plugin to know this namespace's policies before judging.
    const namespace = await namespaceWith(
      hint
        .replace(/[^a-z]+/gi, "-")
        .toLowerCase()
        .slice(0, 30),
      ["strict", { ...denyingSpec, selector }],
      ["sentinel", { ...denyingSpec, selector: { matchLabels: { sentinel: "yes" } } }],
    );
    await untilDenied(
      makeDeployment("sentinel", inNamespace(namespace), withLabels({ sentinel: "yes" }), (d) =>
        withLiveness(d, { httpGet: { path: "/health/deep", port: "http" } }),
      ),
    );
    const body = makeDeployment("sel", inNamespace(namespace), withLabels(labels), (d) =>
      withLiveness(d, { httpGet: { path: "/health/deep", port: "http" } }),
    );
    const said = await verdict(body);
    if (expected === "allowed") expect(said).toBe("allowed");
    else expect(said).toContain("HealthPolicy strict");
  });

  it("targetRef: only the named Deployment", async () => {
    const namespace = await namespaceWith("target-ref", [
      "strict",
      { deny: { deepLiveness: true }, targetRef: { name: "web" }, endpoints: denyingSpec.endpoints },
    ]);
    expect(await untilDenied(deployment(namespace, "/health/deep", "web"))).toContain("HealthPolicy strict");
    expect(await verdict(deployment(namespace, "/health/deep", "other"))).toBe("allowed");
  });

  it("judges only the containers the policy governs (spec.containers, else those with a port)", async () => {
    const namespace = await namespaceWith("governed", ["strict", { ...denyingSpec, containers: ["web"] }]);
    await untilDenied(deployment(namespace, "/health/deep"));
    const sidecar = makeContainer("sidecar");
    sidecar.livenessProbe = { httpGet: { path: "/health/deep", port: "http" } };
    const withDeepSidecar = deployment(namespace, "/healthz");
    withContainer(sidecar)(withDeepSidecar);
    expect(await verdict(withDeepSidecar)).toBe("allowed");
  });
});

describe("deny covers the LivenessDeep rule's exec signals", () => {
  let namespace: string;
  beforeAll(async () => {
    namespace = await namespaceWith("exec", ["web", denyingSpec]);
    await untilDenied(deployment(namespace, "/health/deep"));
  });

  const exec = (...command: string[]): V1Probe => ({ exec: { command } });
  it.each<[string, V1Probe, "denied" | "allowed"]>([
    ["sh -c pg_isready toward another host", exec("sh", "-c", "pg_isready -h orders-db"), "denied"],
    ["pg_isready --host=db", exec("pg_isready", "--host=orders-db", "-U", "app"), "denied"],
    ["pg_isready on the pod itself", exec("sh", "-c", "pg_isready -h localhost -U app"), "allowed"],
    ["pg_isready with the default (local) host", exec("pg_isready", "-U", "app"), "allowed"],
    [
      "redis-cli toward redis-master",
      exec("sh", "-c", "redis-cli -h redis-master ping | grep PONG"),
      "denied",
    ],
    ["redis-cli -h $(hostname -i)", exec("sh", "-c", "redis-cli -h $(hostname -i) ping"), "allowed"],
    ["curl toward another service", exec("curl", "-fsS", "http://orders-api:8080/health"), "denied"],
    [
      "curl to a declared deep path on the pod",
      exec("curl", "-f", "http://localhost:8080/health/deep"),
      "denied",
    ],
    ["curl to a shallow path on the pod", exec("curl", "-f", "http://127.0.0.1:8080/healthz"), "allowed"],
    [
      "curl over the pod's unix socket",
      exec("curl", "--unix-socket", "/run/app.sock", "http://app/healthz"),
      "allowed",
    ],
    ["nc toward another host", exec("sh", "-c", "nc -z -w 1 redis 6379"), "denied"],
    ["nc on the pod", exec("nc", "-z", "localhost", "6379"), "allowed"],
    ["grpc_health_probe toward another host", exec("grpc_health_probe", "-addr=payments:9090"), "denied"],
    ["grpc_health_probe on the pod", exec("/bin/grpc_health_probe", "-addr=:9090"), "allowed"],
    ["kubectl (the API server is a shared dependency)", exec("kubectl", "get", "--raw", "/readyz"), "denied"],
    ["a local script", exec("/app/healthcheck", "--liveness"), "allowed"],
  ])("%s → %s", async (_case, probe, expected) => {
    const said = await verdict(withLiveness(makeDeployment("web", inNamespace(namespace)), probe));
    if (expected === "allowed") expect(said).toBe("allowed");
    else {
      expect(said).toContain("HealthPolicy web (deny.deepLiveness: true) refuses this Deployment");
      expect(said).toContain("container web has livenessProbe.exec.command [");
      expect(said).toContain("which dials a dependency");
    }
  });
});

/**
 * A Deployment the policy selects that violates it already (it predates the policy): deny must
 * not stand in the way of any write that leaves its liveness probes alone. The same cases run
 * under an Audit and an Enforce policy: today Enforce is written by the controller after
 * admission, so deny sees the user's object either way; once Enforce moves to a
 * MutatingAdmissionPolicy (which runs before validation) these cases must still pass.
 */
describe.each(["Audit", "Enforce"] as const)(
  "a selected Deployment that already violates (%s policy)",
  (mode) => {
    let namespace: string;
    const deep = () => deployment(namespace, "/health/deep", "legacy");

    beforeAll(async () => {
      // Given `legacy`, with deep liveness, created before any HealthPolicy existed in its namespace
      namespace = await namespaceWith(`pre-${mode.toLowerCase()}`);
      const body = deep();
      withReplicas(2)(body);
      await apps.createNamespacedDeployment({ namespace, body });
      // When a policy that selects it and denies deep liveness arrives
      await custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        body: healthPolicy(namespace, "strict", {
          ...denyingSpec,
          selector: { matchLabels: { app: "legacy" } },
          mode,
        }),
      });
      await untilDenied(deep());
    });

    it("label and annotation edits pass", async () => {
      expect(
        await outcome(() => patchDeployment(namespace, "legacy", { metadata: { labels: { team: "x" } } })),
      ).toBe("allowed");
      expect(
        await outcome(() =>
          patchDeployment(namespace, "legacy", { metadata: { annotations: { note: "hello" } } }),
        ),
      ).toBe("allowed");
    });

    it("a replicas patch on the Deployment passes, and so does deployments/scale (not matched: it carries no probe)", async () => {
      expect(await outcome(() => patchDeployment(namespace, "legacy", { spec: { replicas: 3 } }))).toBe(
        "allowed",
      );
      expect(
        await outcome(() =>
          apps.patchNamespacedDeploymentScale(
            { namespace, name: "legacy", body: { spec: { replicas: 1 } } },
            mergePatch,
          ),
        ),
      ).toBe("allowed");
      expect((await read(namespace, "legacy")).spec?.replicas).toBe(1);
    });

    it("an image change (a rollout) that keeps the deep liveness probe as it was passes", async () => {
      const image = "registry.invalid/healthgate/test-app:2";
      expect(
        await outcome(() =>
          apps.patchNamespacedDeployment(
            {
              namespace,
              name: "legacy",
              body: { spec: { template: { spec: { containers: [{ name: "legacy", image }] } } } },
            },
            setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
          ),
        ),
      ).toBe("allowed");
    });

    it("changing liveness to another deep signal is refused; to a shallow one passes", async () => {
      const setLiveness = (probe: V1Probe) =>
        outcome(() =>
          apps.patchNamespacedDeployment(
            {
              namespace,
              name: "legacy",
              // null drops the other handler: a probe has exactly one.
              body: liveness("legacy", {
                ...probe,
                httpGet: probe.httpGet ?? null,
                exec: probe.exec ?? null,
              }),
            },
            setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
          ),
        );
      expect(await setLiveness({ exec: { command: ["sh", "-c", "pg_isready -h orders-db"] } })).toContain(
        "HealthPolicy strict",
      );
      expect(await setLiveness({ httpGet: { path: "/health/db", port: "http" } })).toContain(
        "HealthPolicy strict",
      );
      expect(await setLiveness({ httpGet: { path: "/healthz", port: "http" } })).toBe("allowed");
    });
  },
);

describe("deletions are never refused", () => {
  it.each(["Audit", "Enforce"] as const)(
    "a foreground delete of a violating Deployment finishes (%s policy): the collector's finalizer removal passes",
    async (mode) => {
      const namespace = await namespaceWith(`fg-${mode.toLowerCase()}`);
      await apps.createNamespacedDeployment({
        namespace,
        body: deployment(namespace, "/health/deep", "legacy"),
      });
      await custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        body: healthPolicy(namespace, "strict", {
          ...denyingSpec,
          selector: { matchLabels: { app: "legacy" } },
          mode,
        }),
      });
      await untilDenied(deployment(namespace, "/health/deep", "legacy"));
      // Its ReplicaSet exists, so foreground deletion has a dependent to wait for.
      await waitFor(
        async () => (await apps.listNamespacedReplicaSet({ namespace })).items.length > 0 || undefined,
        { what: "the Deployment controller to create a ReplicaSet" },
      );

      // When it is deleted the way GitOps tools do (kubectl delete --cascade=foreground)
      await apps.deleteNamespacedDeployment({ namespace, name: "legacy", propagationPolicy: "Foreground" });

      // Then it is gone, not Terminating forever
      await waitFor(async () => (await ignoreNotFound(read(namespace, "legacy"))) === undefined, {
        what: `Deployment ${namespace}/legacy to be deleted (foreground)`,
        timeoutMs: 60_000,
        intervalMs: 250,
      });
    },
    90_000,
  );
});

describe("healthgate's own writes pass", () => {
  const hg = useControllerHarness();

  it.each(["Audit", "Enforce"] as const)(
    "%s: status conditions (and Enforce's probe apply) on a Deployment whose ungoverned container has a deep liveness path",
    async (mode) => {
      // Given a namespace judged by deny, a Deployment whose sidecar (not governed: spec.containers
      // lists only web) has a deep liveness path, and a policy selecting it that denies deep liveness
      await core.patchNamespace(
        { name: hg.namespace, body: { metadata: { labels: { [SCOPE_LABEL]: run } } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      const sidecar = makeContainer("sidecar", (c) => {
        c.ports = [{ name: "admin", containerPort: 9090 }];
        c.livenessProbe = { httpGet: { path: "/health/deep", port: "admin" } };
      });
      await hg.apply(makeDeployment("web", withContainer(sidecar)));
      await hg.createPolicy(
        makePolicy("web", withMode(mode), withDeepPaths("/health/deep"), (p) => {
          p.spec.deny = { deepLiveness: true };
          p.spec.containers = ["web"];
        }),
      );
      await untilDenied(
        withLiveness(makeDeployment("web", inNamespace(hg.namespace)), {
          httpGet: { path: "/health/deep", port: "http" },
        }),
      );

      // When healthgate reconciles it
      const operator = await hg.startOperator();

      // Then its writes land: the conditions on deployments/status (not matched by deny) and, in
      // Enforce, the probe apply on the Deployment (it changes web's liveness only, to a shallow one)
      await waitForDeploymentCondition(hg.namespace, "web", "LivenessShallow", { status: "True" });
      if (mode === "Enforce") {
        await waitFor(
          async () => {
            const web = (await read(hg.namespace, "web")).spec!.template.spec!.containers.find(
              (c) => c.name === "web",
            );
            expect(web?.livenessProbe?.httpGet?.path).toBe("/healthz");
            return true;
          },
          { what: "Enforce's liveness probe to land on container web" },
        );
      }
      await waitUntilIdle(operator, 1);
      const refused = (await requestLog(operator)).filter((line) => / (400|403|422): /.test(line));
      expect(refused).toEqual([]);
      // and the sidecar's deep probe is still there: deny never rewrites, healthgate governs web only
      const stored = (await read(hg.namespace, "web")).spec!.template.spec!.containers;
      expect(stored.find((c) => c.name === "sidecar")?.livenessProbe?.httpGet?.path).toBe("/health/deep");
    },
    90_000,
  );
});
