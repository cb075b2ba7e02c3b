// deny.deepLiveness on a real kube-apiserver: the ValidatingAdmissionPolicy
// (src/policy/probes/deny.ts, rendered into the chart) with the HealthPolicy
// as its parameter refuses a Deployment whose liveness path is a deep path that
// any HealthPolicy in its namespace declares with deny.deepLiveness: true, and
// leaves everything else alone.
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
  type V1ValidatingAdmissionPolicy,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { API_VERSION, CRD_NAME, GROUP, KIND, PLURAL, VERSION } from "../../src/api/v1alpha1/index.ts";
import { denyDeepLivenessManifests } from "../../src/policy/probes/deny.ts";
import { inNamespace, makeDeployment, withProbe } from "../support/builders.ts";
import {
  createTestNamespace,
  deleteTestNamespace,
  ignoreNotFound,
  isApiError,
  testClients,
  testKubeconfigPath,
} from "../support/kube.ts";
import { waitFor } from "../support/waitFor.ts";

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
  return makeDeployment(
    deploymentName,
    inNamespace(namespace),
    withProbe(deploymentName, "liveness", { httpGet: { path: livenessPath, port: "http" } }),
  );
}

/** The API server's verdict on creating a Deployment (dry run: admission runs, nothing is stored). */
async function verdict(body: V1Deployment): Promise<"allowed" | string> {
  try {
    await apps.createNamespacedDeployment({ namespace: body.metadata!.namespace!, body, dryRun: "All" });
    return "allowed";
  } catch (err) {
    if (!isApiError(err) || (err.code !== 403 && err.code !== 422)) throw err;
    const status = (typeof err.body === "string" ? JSON.parse(err.body) : err.body) as { message?: string };
    return status.message ?? `HTTP ${err.code}`;
  }
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
      body: deployment(denying, "/livez", "updated"),
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

  it("checks every HealthPolicy in the namespace: one that denies is enough", async () => {
    const namespace = await namespaceWith(
      "two",
      ["audit-only", { selector: { matchLabels: { app: "other" } }, endpoints: {} }],
      ["strict", { ...denyingSpec, selector: { matchLabels: { app: "unrelated" } } }],
    );
    expect(await verdict(deployment(namespace, "/health/deep"))).toContain("HealthPolicy strict");
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
