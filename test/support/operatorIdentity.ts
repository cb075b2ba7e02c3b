// The operator's identity in the integration tests: the chart's own ServiceAccount with the
// chart's own RBAC (rendered by helm with default values, release `healthgate` in
// `healthgate-system`), created once per run by globalSetup, and a kubeconfig holding a token
// of that ServiceAccount. Operators the tests start in-process run as it, so kube-apiserver's
// audit log shows what the operator itself does (test/audit/rbac.test.ts).
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parse, parseAllDocuments, stringify } from "yaml";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const CHART_DIR = path.join(repoRoot, "charts/healthgate");

export const OPERATOR_NAMESPACE = "healthgate-system";
export const OPERATOR_RELEASE = "healthgate";
export const OPERATOR_SERVICE_ACCOUNT = "healthgate";
export const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SERVICE_ACCOUNT}`;

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] }[];
}

export const RBAC_KINDS = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

/** helm: $HELM (hack/test.sh sets it), else hack/ensure-helm.sh (offline it uses the cached one). */
export async function helmBinary(): Promise<string> {
  if (process.env.HELM) return process.env.HELM;
  const { stdout } = await run("bash", [path.join(repoRoot, "hack/ensure-helm.sh")], { maxBuffer: 16 << 20 });
  return stdout.trim().split("\n").pop()!;
}

/** The chart rendered as `helm install healthgate -n healthgate-system` would with default values. */
export async function renderDefaultChart(): Promise<RenderedObject[]> {
  const { stdout } = await run(
    await helmBinary(),
    ["template", OPERATOR_RELEASE, CHART_DIR, "--namespace", OPERATOR_NAMESPACE],
    { cwd: repoRoot, maxBuffer: 64 << 20 },
  );
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as RenderedObject | null)
    .filter((o): o is RenderedObject => o !== null);
}

/**
 * Creates the chart's ServiceAccount and RBAC on the plane (idempotent) and writes a kubeconfig
 * with a token of that ServiceAccount to `kubeconfigOut`; resolves once the authorizer grants it.
 */
export async function createOperatorIdentity(options: {
  adminKubeconfig: string;
  kubectl: string;
  kubeconfigOut: string;
}): Promise<void> {
  const kubectl = async (args: string[], stdin?: string) => {
    const child = run(options.kubectl, ["--kubeconfig", options.adminKubeconfig, ...args], {
      maxBuffer: 16 << 20,
    });
    if (stdin !== undefined) child.child.stdin!.end(stdin);
    return (await child).stdout;
  };
  const rbac = (await renderDefaultChart()).filter((o) => RBAC_KINDS.includes(o.kind));
  const namespace = { apiVersion: "v1", kind: "Namespace", metadata: { name: OPERATOR_NAMESPACE } };
  await kubectl(
    ["apply", "--server-side", "--field-manager=healthgate-test", "-f", "-"],
    [namespace, ...rbac].map((o) => stringify(o)).join("---\n"),
  );
  const token = (
    await kubectl(["create", "token", OPERATOR_SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=12h"])
  ).trim();
  const admin = parse(await readFile(options.adminKubeconfig, "utf8")) as {
    clusters: { name: string; cluster: Record<string, unknown> }[];
  };
  const cluster = admin.clusters[0]!;
  await writeFile(
    options.kubeconfigOut,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [cluster],
      users: [{ name: OPERATOR_SERVICE_ACCOUNT, user: { token } }],
      contexts: [{ name: "operator", context: { cluster: cluster.name, user: OPERATOR_SERVICE_ACCOUNT } }],
      "current-context": "operator",
    }),
    { mode: 0o600 },
  );
  // RBAC reaches the authorizer through an informer: wait until the grant shows.
  const deadline = Date.now() + 30_000;
  for (;;) {
    // Asked as the admin impersonating the ServiceAccount: the audit log records only the operator.
    const answer = await kubectl([
      "auth",
      "can-i",
      "watch",
      "deployments.apps",
      "-A",
      `--as=${OPERATOR_USER}`,
    ])
      .catch((err: { stdout?: string }) => err.stdout ?? "")
      .then((out) => out.trim());
    if (answer === "yes") return;
    if (Date.now() > deadline)
      throw new Error(`the chart's RBAC never reached the authorizer (can-i: ${answer})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
