// The operator as the chart runs it: the chart's ServiceAccount with exactly the RBAC the chart
// renders (helm template, watchNamespaces = the test's namespace), so a test proves that what
// healthgate does is allowed by the chart — including grants no request uses but an admission
// plugin asks the authorizer about (OwnerReferencesPermissionEnforcement and blockOwnerDeletion).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { AuthorizationV1Api, KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import { kubectl, repoRoot } from "./support.ts";

const run = promisify(execFile);
const RBAC_KINDS = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

let helm: Promise<string> | undefined;
/** helm, from the cache `hack/ensure-helm.sh` keeps (it works offline once cached). */
function helmBinary(): Promise<string> {
  helm ??= run("bash", ["hack/ensure-helm.sh"], { cwd: repoRoot, maxBuffer: 16 << 20 }).then(({ stdout }) =>
    stdout.trim().split("\n").pop()!,
  );
  return helm;
}

export interface ChartIdentity {
  kubeConfig: KubeConfig;
  /** Every object the chart rendered (the RBAC among them is applied). */
  rendered: { kind: string; metadata: { name: string; namespace?: string } }[];
  /** `system:serviceaccount:<namespace>:<name>`, for admission policies that single it out. */
  username: string;
  /** Deletes the cluster-scoped RBAC objects (the namespaced ones go with the namespace). */
  remove(): Promise<void>;
}

/**
 * The chart's ServiceAccount and RBAC in `namespace`, and a kubeconfig that authenticates as it.
 * `watchNamespace`: the namespace healthgate watches, when it is not its own (the gate webhook
 * never gates pods of healthgate's own namespace). `leaderElection`: the chart's Lease grants (Lease
 * `healthgate` in `namespace`) too.
 */
export async function chartIdentity(
  namespace: string,
  options: { watchNamespace?: string; leaderElection?: boolean } = {},
): Promise<ChartIdentity> {
  const release = `hg-${randomBytes(3).toString("hex")}`;
  const { stdout } = await run(
    await helmBinary(),
    [
      "template",
      release,
      "charts/healthgate",
      "--namespace",
      namespace,
      "--set",
      `watchNamespaces={${options.watchNamespace ?? namespace}}`,
      "--set",
      `leaderElection.enabled=${options.leaderElection ?? false}`,
      "--set",
      "replicas=1",
    ],
    { cwd: repoRoot, maxBuffer: 64 << 20 },
  );
  const rendered = parseAllDocuments(stdout)
    .map((d) => d.toJS() as ChartIdentity["rendered"][number] | null)
    .filter((o): o is ChartIdentity["rendered"][number] => o !== null);
  const rbac = rendered.filter((o) => RBAC_KINDS.includes(o.kind));
  const yaml = rbac.map((o) => JSON.stringify(o)).join("\n---\n");
  await kubectl(["apply", "--server-side", "--field-manager=helm", "-f", "-"], { stdin: yaml });
  const clusterScoped = rbac.filter((o) => o.kind.startsWith("Cluster"));

  const serviceAccount = rbac.find((o) => o.kind === "ServiceAccount")!.metadata.name;
  const username = `system:serviceaccount:${namespace}:${serviceAccount}`;
  const { core, kc } = testClients();
  const token = (
    await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    })
  ).status!.token!;
  // RBAC reaches the authorizer through an informer: wait until the grants show.
  const authz = kc.makeApiClient(AuthorizationV1Api);
  await waitFor(
    async () => {
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: username,
            groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
            resourceAttributes: {
              verb: "list",
              group: "healthgate.io",
              resource: "healthpolicies",
              namespace: options.watchNamespace ?? namespace,
            },
          },
        },
      });
      return review.status?.allowed === true || undefined;
    },
    { what: `the chart's RBAC for ${username} to reach the authorizer`, intervalMs: 200 },
  );

  const cluster = kc.getCurrentCluster()!;
  const caData =
    cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString("base64") : undefined);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "plane", server: cluster.server, caData, skipTLSVerify: false }],
    users: [{ name: serviceAccount, token }],
    contexts: [{ name: "chart", cluster: "plane", user: serviceAccount }],
    currentContext: "chart",
  });
  return {
    kubeConfig,
    rendered,
    username,
    async remove() {
      for (const o of clusterScoped) {
        await kubectl([
          "delete",
          "--ignore-not-found",
          "--wait=false",
          o.kind.toLowerCase(),
          o.metadata.name,
        ]);
      }
    },
  };
}
