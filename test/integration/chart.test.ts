// The Helm chart against a real kube-apiserver with RBAC on:
//   - every rendered object passes the server's validation and admission
//     (kubectl apply --server-side --dry-run=server), with default values and
//     with every optional feature on;
//   - helm (v4) installs and uninstalls the chart;
//   - the chart's ServiceAccount, ClusterRoles, Roles and bindings, created for
//     real, allow every request the operator makes and refuse what the chart
//     does not grant, asked of the server's own authorizer (SubjectAccessReview,
//     and `kubectl auth can-i --as` for a sample);
//   - the aggregated roles give namespace users of view/edit HealthPolicy access;
//   - the operator itself, started with the chart's arguments and a token of
//     the chart's ServiceAccount, becomes ready, leads and reconciles a policy
//     without a single request refused.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { AuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import {
  createTestNamespace,
  deleteTestNamespace,
  testClients,
  testKubeconfigPath,
} from "../support/kube.ts";
import { waitFor } from "../support/waitFor.ts";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../..", import.meta.url));
const chart = join(repo, "charts/healthgate");
const scratch = mkdtempSync(join(tmpdir(), "healthgate-chart-it-"));
const suffix = Math.random().toString(16).slice(2, 8);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

let helm = "";
let kubectlBin = "";

async function kubectl(
  args: string[],
  stdin?: string,
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      kubectlBin,
      ["--kubeconfig", testKubeconfigPath(), "--cache-dir", join(scratch, "kube-cache"), ...args],
      { cwd: repo, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => resolve({ ok: !error, stdout, stderr }),
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

let valuesFiles = 0;
function valuesFile(values: Record<string, unknown>): string {
  const file = join(scratch, `values-${valuesFiles++}.yaml`);
  writeFileSync(file, stringify(values));
  return file;
}

async function render(
  releaseName: string,
  namespace: string,
  values: Record<string, unknown>,
): Promise<K8sObject[]> {
  const { stdout } = await run(
    helm,
    ["template", releaseName, chart, "--namespace", namespace, "--values", valuesFile(values)],
    { cwd: repo, maxBuffer: 64 << 20 },
  );
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const toYaml = (objects: K8sObject[]) => objects.map((o) => stringify(o)).join("---\n");
const rbacKinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

const namespaces: string[] = [];
async function namespace(hint: string): Promise<string> {
  const name = await createTestNamespace(hint);
  namespaces.push(name);
  return name;
}
// Cluster-scoped objects outlive the test namespaces: delete them explicitly.
const clusterScoped: K8sObject[] = [];
// Every release of this file installs into one namespace (their names differ);
// fewer namespaces keep the shared plane's namespace controller unhurried.
let releaseNs = "";
let watchedNs = "";

beforeAll(async () => {
  const { stdout } = await run("bash", [join(repo, "hack/ensure-helm.sh")], { maxBuffer: 16 << 20 });
  helm = stdout.trim().split("\n").pop()!;
  const built = join(inject("k8sBinDir"), "kubectl");
  kubectlBin = existsSync(built) ? built : "kubectl";
  releaseNs = await namespace("chart-release");
  watchedNs = await namespace("chart-watched");
}, 600_000);

afterAll(async () => {
  if (clusterScoped.length > 0) {
    await kubectl(["delete", "--ignore-not-found", "--wait=false", "-f", "-"], toYaml(clusterScoped));
  }
  await Promise.all(namespaces.map((ns) => deleteTestNamespace(ns)));
  rmSync(scratch, { recursive: true, force: true });
}, 120_000);

describe("the rendered chart on the API server (--dry-run=server)", () => {
  async function dryRun(objects: K8sObject[]) {
    const result = await kubectl(
      // --force-conflicts: other suites apply the same CRD under their own
      // field managers; a dry run validates the objects, not who owns them.
      ["apply", "--server-side", "--force-conflicts", "--field-manager=helm", "--dry-run=server", "-f", "-"],
      toYaml(objects),
    );
    expect(result.stderr).toBe("");
    expect(result.ok).toBe(true);
    for (const o of objects) {
      expect(result.stdout, `${o.kind} ${o.metadata.name}`).toMatch(
        new RegExp(`/${o.metadata.name} serverside-applied \\(server dry run\\)`),
      );
    }
  }

  it("accepts every object rendered with default values", async () => {
    const objects = await render(`hg-${suffix}`, releaseNs, {});
    expect(objects.map((o) => o.kind)).toEqual(
      expect.arrayContaining(["Deployment", "CustomResourceDefinition"]),
    );
    await dryRun(objects);
  });

  it("accepts every object rendered with every optional feature on", async () => {
    const objects = await render(`hg-${suffix}`, releaseNs, {
      watchNamespaces: [watchedNs],
      serviceMonitor: { enabled: true },
      networkPolicy: {
        enabled: true,
        metricsFrom: [{ podSelector: { matchLabels: { app: "prometheus" } } }],
      },
      image: { repository: "registry.example/healthgate", digest: `sha256:${"b".repeat(64)}` },
      spread: { nodes: "DoNotSchedule", zones: "DoNotSchedule", podAntiAffinity: "hard" },
      podDisruptionBudget: { enabled: true, maxUnavailable: "50%" },
      priorityClassName: "system-cluster-critical",
    });
    // The Prometheus Operator's CRDs are not part of a bare control plane;
    // the ServiceMonitor's shape is checked by the unit test.
    expect(objects.filter((o) => o.kind === "ServiceMonitor")).toHaveLength(1);
    await dryRun(objects.filter((o) => o.kind !== "ServiceMonitor"));
  });
});

describe("helm install", () => {
  it("installs and uninstalls the chart with helm v4", async () => {
    const ns = releaseNs;
    const release = `hgi-${suffix}`;
    // The CRDs and the admission policies are cluster-wide and shared with the
    // other integration tests (whose in-process operators write record status as
    // the admin user, which this release's record-status guard would refuse); the
    // dry run above covers them.
    const values = valuesFile({
      crds: { enabled: false },
      denyPolicy: { enabled: false },
      enforce: { enabled: false },
      handlerMerge: { enabled: false },
      // The hook Job's pod would never run here (no node takes the chart's pods): helm uninstall
      // would wait for it. The release-gates command it runs is tested in controller/gate.test.ts.
      uninstall: { releaseGates: false },
    });
    const common = ["--kubeconfig", testKubeconfigPath(), "--namespace", ns];
    const install = await run(helm, ["install", release, chart, ...common, "--values", values], {
      cwd: repo,
    });
    expect(install.stdout).toContain("STATUS: deployed");
    expect(install.stdout).toContain("kubectl get hpol");

    const { apps, rbac } = testClients();
    const deployment = await apps.readNamespacedDeployment({ name: `${release}-healthgate`, namespace: ns });
    expect(deployment.spec?.replicas).toBe(2);
    await rbac.readClusterRole({ name: `${release}-healthgate` });

    await run(helm, ["uninstall", release, ...common], { cwd: repo });
    await waitFor(
      async () => {
        const roles = await rbac.listClusterRole({ labelSelector: `app.kubernetes.io/instance=${release}` });
        return roles.items.length === 0;
      },
      { what: `the ClusterRoles of release ${release} to be deleted by helm uninstall` },
    );
  });
});

type Check = [verb: string, resource: string, namespace: string | "" /* cluster scope */, name?: string];

describe("the chart's RBAC, enforced by the API server", () => {
  const authz = testClients().kc.makeApiClient(AuthorizationV1Api);

  async function allowed(user: string, [verb, resource, namespace, name]: Check): Promise<boolean> {
    const [groupResource, subresource] = resource.split("/") as [string, string | undefined];
    const [plural, ...group] = groupResource.split(".");
    const review = await authz.createSubjectAccessReview({
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user,
          groups: user.startsWith("system:serviceaccount:")
            ? [
                "system:serviceaccounts",
                `system:serviceaccounts:${user.split(":")[2]}`,
                "system:authenticated",
              ]
            : ["system:authenticated"],
          resourceAttributes: {
            verb,
            group: group.join("."),
            resource: plural,
            subresource,
            namespace: namespace || undefined,
            name,
          },
        },
      },
    });
    return review.status?.allowed === true;
  }

  async function verdicts(user: string, checks: Check[]): Promise<string[]> {
    const results = await Promise.all(checks.map((c) => allowed(user, c)));
    return checks.map(
      (c, i) =>
        `${results[i] ? "yes" : "no "} ${c[0]} ${c[1]}${c[3] ? `/${c[3]}` : ""} in ${c[2] || "(cluster)"}`,
    );
  }
  const expectAll = (answer: "yes" | "no ", checks: Check[]) =>
    checks.map((c) => `${answer} ${c[0]} ${c[1]}${c[3] ? `/${c[3]}` : ""} in ${c[2] || "(cluster)"}`);

  /**
   * The chart's namespaced grants (resource.group/subresource). That they are all the operator
   * needs, and all used, is proved from the audit log (test/audit/rbac.test.ts); here the
   * authorizer shows they hold in the namespaces each mode covers.
   */
  const operatorNeeds = (ns: string): Check[] => [
    ...["list", "watch"].map((v): Check => [v, "healthpolicies.healthgate.io", ns]),
    ["patch", "healthpolicies.healthgate.io/status", ns],
    ...["list", "watch", "create", "patch", "delete"].map((v): Check => [
      v,
      "healthtargets.healthgate.io",
      ns,
    ]),
    ["patch", "healthtargets.healthgate.io/status", ns],
    ...["list", "watch", "create", "patch"].map((v): Check => [v, "healthreleases.healthgate.io", ns]),
    ["patch", "healthreleases.healthgate.io/status", ns],
    ...["list", "watch", "patch"].map((v): Check => [v, "deployments.apps", ns]),
    ["patch", "deployments.apps/status", ns],
    ...["list", "watch"].map((v): Check => [v, "replicasets.apps", ns]),
    ...["list", "watch"].map((v): Check => [v, "pods", ns]),
    // The deep-check readiness gate (writeGate); a ValidatingAdmissionPolicy limits it to that condition.
    ["patch", "pods/status", ns],
    ...["list", "watch", "patch"].map((v): Check => [v, "services", ns]),
    ...["list", "watch"].map((v): Check => [v, "horizontalpodautoscalers.autoscaling", ns]),
    ["list", "pods.metrics.k8s.io", ns],
    ...["list", "watch", "create", "patch", "delete"].map((v): Check => [
      v,
      "poddisruptionbudgets.policy",
      ns,
    ]),
    ["create", "events.events.k8s.io", ns],
    // Asked by OwnerReferencesPermissionEnforcement, never requested (docs/admission.md).
    ["update", "deployments.apps/finalizers", ns],
  ];
  const clusterReads: Check[] = ["list", "watch"].map((v): Check => [v, "nodes", ""]);
  const lease = (ns: string, id: string): Check[] => [
    ["create", "leases.coordination.k8s.io", ns],
    ...["get", "watch", "update"].map((v): Check => [v, "leases.coordination.k8s.io", ns, id]),
  ];
  /** What the chart must not grant. */
  const notGranted = (ns: string, releaseNs: string, id: string): Check[] => [
    ["delete", "deployments.apps", ns],
    ["create", "deployments.apps", ns],
    ["update", "deployments.apps", ns],
    ["update", "deployments.apps/status", ns],
    ["update", "deployments.apps/scale", ns],
    ["get", "secrets", ns],
    ["list", "secrets", ""],
    ["get", "configmaps", ns],
    ["delete", "pods", ns],
    ["update", "pods", ns],
    ["create", "pods/eviction", ns],
    ["create", "pods/exec", ns],
    ["update", "pods/status", ns],
    ["get", "services", ns],
    ["get", "pods", ns],
    ["update", "healthpolicies.healthgate.io/status", ns],
    ["create", "events", ns],
    ["patch", "events.events.k8s.io", ns],
    ["create", "replicasets.apps", ns],
    ["create", "healthpolicies.healthgate.io", ns],
    ["update", "healthpolicies.healthgate.io", ns],
    ["delete", "healthpolicies.healthgate.io", ns],
    ["update", "poddisruptionbudgets.policy", ns],
    ["delete", "events", ns],
    ["patch", "nodes", ""],
    ["delete", "leases.coordination.k8s.io", releaseNs, id],
    ["get", "leases.coordination.k8s.io", releaseNs, "kube-controller-manager"],
    ["update", "leases.coordination.k8s.io", releaseNs, "someone-else"],
    ["create", "leases.coordination.k8s.io", ns],
    ["create", "clusterroles.rbac.authorization.k8s.io", ""],
    ["create", "customresourcedefinitions.apiextensions.k8s.io", ""],
    ["impersonate", "users", ""],
  ];

  async function createRbac(release: string, releaseNs: string, values: Record<string, unknown>) {
    const objects = (await render(release, releaseNs, values)).filter((o) => rbacKinds.includes(o.kind));
    clusterScoped.push(...objects.filter((o) => o.kind.startsWith("Cluster")));
    const result = await kubectl(
      ["apply", "--server-side", "--field-manager=helm", "-f", "-"],
      toYaml(objects),
    );
    expect(result.stderr).toBe("");
    const user = `system:serviceaccount:${releaseNs}:${release}-healthgate`;
    // RBAC reaches the authorizer through an informer: wait until a grant shows.
    await waitFor(() => allowed(user, ["create", "leases.coordination.k8s.io", releaseNs]), {
      what: `the RBAC of ${release} to reach the authorizer`,
    });
    return user;
  }

  it("cluster-wide (watchNamespaces empty): allows every request the operator makes, anywhere, and nothing else", async () => {
    const appNs = watchedNs;
    const user = await createRbac(`hgr-${suffix}`, releaseNs, {});

    const needs = [
      ...operatorNeeds(appNs),
      ...operatorNeeds(""), // informers list and watch across all namespaces
      ...clusterReads,
      ...lease(releaseNs, "healthgate"),
    ];
    // The gate webhook's Secret and registration, by name only.
    const release = `hgr-${suffix}`;
    const webhook: Check[] = [
      ...["get", "update"].map((v): Check => [v, "secrets", releaseNs, `${release}-healthgate-webhook-tls`]),
      ...["get", "patch"].map((v): Check => [
        v,
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "",
        `${release}-healthgate-gate`,
      ]),
    ];
    expect(await verdicts(user, [...needs, ...webhook])).toEqual(expectAll("yes", [...needs, ...webhook]));
    const refused: Check[] = [
      ...notGranted(appNs, releaseNs, "healthgate"),
      ["get", "secrets", releaseNs, "some-other-secret"],
      ["patch", "mutatingwebhookconfigurations.admissionregistration.k8s.io", "", "some-other-webhook"],
    ];
    expect(await verdicts(user, refused)).toEqual(expectAll("no ", refused));

    // The same answers through kubectl, as an operator's user would ask.
    const as = `--as=${user}`;
    const canI = (...args: string[]) => kubectl(["auth", "can-i", as, ...args]);
    expect((await canI("patch", "deployments.apps", "-n", appNs)).stdout.trim()).toBe("yes");
    expect((await canI("patch", "deployments.apps", "--subresource=status", "-n", appNs)).stdout.trim()).toBe(
      "yes",
    );
    expect((await canI("watch", "pods", "--all-namespaces")).stdout.trim()).toBe("yes");
    expect((await canI("delete", "deployments.apps", "-n", appNs)).stdout.trim()).toBe("no");
    expect((await canI("get", "secrets", "-n", appNs)).stdout.trim()).toBe("no");
  });

  it("namespace-scoped (watchNamespaces set): allows the operator's requests in the watched namespaces only", async () => {
    const watched = watchedNs;
    const unwatched = await namespace("chart-unwatched");
    const id = "healthgate-scoped";
    const user = await createRbac(`hgn-${suffix}`, releaseNs, {
      watchNamespaces: [watched],
      leaderElection: { enabled: true, id },
    });

    const needs = [...operatorNeeds(watched), ...clusterReads, ...lease(releaseNs, id)];
    expect(await verdicts(user, needs)).toEqual(expectAll("yes", needs));
    const refused = [
      ...operatorNeeds(unwatched),
      ...operatorNeeds("").filter(([verb]) => verb === "list" || verb === "watch"),
      ...notGranted(watched, releaseNs, id),
    ];
    expect(await verdicts(user, refused)).toEqual(expectAll("no ", refused));
  });

  it("gives users of the built-in view and edit roles HealthPolicy access (aggregation)", async () => {
    const appNs = watchedNs;
    await createRbac(`hga-${suffix}`, releaseNs, {});
    const viewer = `viewer-${suffix}`;
    const editor = `editor-${suffix}`;
    const bind = (user: string, role: string) => ({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: `${user}-${role}`, namespace: appNs },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
    });
    const result = await kubectl(
      ["apply", "-f", "-"],
      toYaml([bind(viewer, "view"), bind(editor, "edit")] as K8sObject[]),
    );
    expect(result.stderr).toBe("");

    const read: Check[] = ["get", "list", "watch"].map((v): Check => [
      v,
      "healthpolicies.healthgate.io",
      appNs,
    ]);
    const write: Check[] = ["create", "update", "patch", "delete"].map((v): Check => [
      v,
      "healthpolicies.healthgate.io",
      appNs,
    ]);
    // kube-controller-manager aggregates the labelled ClusterRoles into view/edit.
    await waitFor(
      async () => {
        expect(await verdicts(viewer, read)).toEqual(expectAll("yes", read));
        return true;
      },
      { what: "the built-in view role to include HealthPolicy reads", timeoutMs: 30_000 },
    );
    expect(await verdicts(viewer, write)).toEqual(expectAll("no ", write));
    await waitFor(
      async () => {
        expect(await verdicts(editor, [...read, ...write])).toEqual(expectAll("yes", [...read, ...write]));
        return true;
      },
      { what: "the built-in edit role to include HealthPolicy writes", timeoutMs: 30_000 },
    );
    // Status belongs to the operator alone.
    const status: Check[] = [["update", "healthpolicies.healthgate.io/status", appNs]];
    expect(await verdicts(editor, status)).toEqual(expectAll("no ", status));
  });
});

/** A free TCP port on loopback. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("the operator under the chart's RBAC", () => {
  it.each([
    ["cluster-wide", "hgo", false],
    ["watching one namespace", "hgs", true],
  ])(
    "%s: becomes ready, takes the Lease and reconciles a policy with only the chart's permissions",
    async (_mode, prefix, scoped) => {
      const appNs = await namespace(`chart-operator-${prefix}`);
      const release = `${prefix}-${suffix}`;
      const leaseId = `healthgate-${prefix}`;
      const rendered = await render(release, releaseNs, {
        leaderElection: { enabled: true, id: leaseId },
        ...(scoped ? { watchNamespaces: [appNs] } : {}),
      });

      // The HealthPolicy CRD, from the chart (other suites apply the same CRD: server-side apply is idempotent).
      const crd = rendered.filter((o) => o.kind === "CustomResourceDefinition");
      const applied = await kubectl(
        ["apply", "--server-side", "--force-conflicts", "--field-manager=healthgate-chart-test", "-f", "-"],
        toYaml(crd),
      );
      expect(applied.stderr).toBe("");
      await kubectl(["wait", "--for=condition=Established", "--timeout=60s", `crd/${crd[0]!.metadata.name}`]);

      // The chart's ServiceAccount and RBAC, for real, and a token of that ServiceAccount.
      const rbacObjects = rendered.filter((o) => rbacKinds.includes(o.kind));
      clusterScoped.push(...rbacObjects.filter((o) => o.kind.startsWith("Cluster")));
      const rbacApplied = await kubectl(
        ["apply", "--server-side", "--field-manager=helm", "-f", "-"],
        toYaml(rbacObjects),
      );
      expect(rbacApplied.stderr).toBe("");
      const serviceAccount = `${release}-healthgate`;
      const token = await kubectl(["create", "token", serviceAccount, "-n", releaseNs, "--duration=1h"]);
      expect(token.stderr).toBe("");
      const cluster = testClients().kc.getCurrentCluster()!;
      const ca =
        cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString("base64") : undefined);
      const kubeconfig = join(scratch, `${release}.kubeconfig`);
      writeFileSync(
        kubeconfig,
        stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [{ name: "test", cluster: { server: cluster.server, "certificate-authority-data": ca } }],
          users: [{ name: serviceAccount, user: { token: token.stdout.trim() } }],
          contexts: [{ name: "operator", context: { cluster: "test", user: serviceAccount } }],
          "current-context": "operator",
        }),
      );

      // The operator with the Deployment's own arguments and downward-API environment.
      const deployment = rendered.find((o) => o.kind === "Deployment") as unknown as {
        spec: { template: { spec: { containers: Array<{ args: string[] }> } } };
      };
      const port = await freePort();
      const webhookPort = await freePort();
      const args = deployment.spec.template.spec.containers[0]!.args.map((a) =>
        a.startsWith("--http-port=")
          ? `--http-port=${port}`
          : a.startsWith("--webhook-port=")
            ? `--webhook-port=${webhookPort}`
            : a,
      );
      // The gate webhook's Secret and registration as the chart renders them, the registration
      // calling this process (the Service has no pods here) for the test namespace only.
      const secret = rendered.find((o) => o.kind === "Secret")!;
      const registration = rendered.find((o) => o.kind === "MutatingWebhookConfiguration") as K8sObject & {
        webhooks: { clientConfig: unknown; namespaceSelector: unknown }[];
      };
      registration.webhooks[0]!.clientConfig = { url: `https://127.0.0.1:${webhookPort}/gate` };
      registration.webhooks[0]!.namespaceSelector = {
        matchLabels: { "kubernetes.io/metadata.name": appNs },
      };
      clusterScoped.push(registration);
      const webhookApplied = await kubectl(
        ["apply", "--server-side", "--field-manager=helm", "-f", "-"],
        toYaml([secret, registration]),
      );
      expect(webhookApplied.stderr).toBe("");
      // Cluster-wide RBAC, but an operator that leaves the other suites'
      // namespaces alone: it watches its test namespace only (the cluster-wide
      // list/watch grants are proved by the SubjectAccessReviews above).
      if (!scoped) args.push(`--namespaces=${appNs}`);
      const podName = `${release}-healthgate-5d8c7-x2x4q`;
      const operator = spawn(
        process.execPath,
        [join(repo, "src/cli/main.ts"), ...args, `--kubeconfig=${kubeconfig}`],
        {
          cwd: repo,
          env: { ...process.env, POD_NAME: podName, POD_NAMESPACE: releaseNs, KUBECONFIG: "" },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let output = "";
      operator.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      operator.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => operator.once("exit", (code) => resolve(code)));

      try {
        await waitFor(
          async () => {
            if (operator.exitCode !== null)
              throw new Error(`the operator exited (${operator.exitCode}):\n${output}`);
            const res = await fetch(`http://127.0.0.1:${port}/readyz`);
            expect(res.status, await res.text()).toBe(200);
            return true;
          },
          { what: "the operator's /readyz to pass (caches synced)", timeoutMs: 60_000, intervalMs: 250 },
        );
        const { apps, custom, objects } = testClients();
        const coordination = await waitFor(
          async () => {
            const lease = (await objects.read({
              apiVersion: "coordination.k8s.io/v1",
              kind: "Lease",
              metadata: { name: leaseId, namespace: releaseNs },
            })) as { spec?: { holderIdentity?: string } };
            expect(lease.spec?.holderIdentity).toBe(podName);
            return lease;
          },
          {
            what: `the operator to hold the Lease ${leaseId} in ${releaseNs}`,
            timeoutMs: 30_000,
            intervalMs: 250,
          },
        );
        expect(coordination.spec?.holderIdentity).toBe(podName);

        // A Deployment without probes, audited by a policy: status on both.
        await apps.createNamespacedDeployment({
          namespace: appNs,
          body: {
            metadata: { name: "web", labels: { app: "web" } },
            spec: {
              replicas: 2,
              selector: { matchLabels: { app: "web" } },
              template: {
                metadata: { labels: { app: "web" } },
                spec: {
                  containers: [
                    {
                      name: "web",
                      image: "registry.example/web:1",
                      ports: [{ name: "http", containerPort: 8080 }],
                    },
                  ],
                },
              },
            },
          },
        });
        await custom.createNamespacedCustomObject({
          group: "healthgate.io",
          version: "v1alpha1",
          namespace: appNs,
          plural: "healthpolicies",
          body: {
            apiVersion: "healthgate.io/v1alpha1",
            kind: "HealthPolicy",
            metadata: { name: "web" },
            spec: {
              selector: { matchLabels: { app: "web" } },
              mode: "Audit",
              endpoints: { port: "http", liveness: { path: "/healthz" }, readiness: { path: "/readyz" } },
            },
          },
        });
        await waitFor(
          async () => {
            const policy = (await custom.getNamespacedCustomObject({
              group: "healthgate.io",
              version: "v1alpha1",
              namespace: appNs,
              plural: "healthpolicies",
              name: "web",
            })) as { status?: { observedGeneration?: number } };
            expect(policy.status?.observedGeneration).toBe(1);
            const web = await apps.readNamespacedDeployment({ name: "web", namespace: appNs });
            expect(web.status?.conditions?.map((c) => c.type)).toContain("healthgate.io/ProbesCompliant");
            return true;
          },
          {
            what: "the operator to write the policy's status and the Deployment's conditions",
            timeoutMs: 30_000,
            intervalMs: 250,
          },
        );
      } finally {
        operator.kill("SIGTERM");
        expect(await exited).toBe(0);
      }
      // Not one request was refused: the chart's RBAC is sufficient.
      expect(output).not.toMatch(/forbidden|\b403\b/i);
    },
  );
});
