// Least privilege, proved from what the operator actually did: kube-apiserver's audit log of the
// whole integration run (the operators the tests start run as the chart's ServiceAccount with the
// chart's RBAC: test/support/operatorIdentity.ts). Runs after every integration file (vitest
// groupOrder), so the log holds the whole suite. It fails when the chart grants anything the
// operator never used, and when the operator was refused anything.
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import {
  OPERATOR_NAMESPACE,
  OPERATOR_SERVICE_ACCOUNT,
  renderDefaultChart,
  type RenderedObject,
} from "../support/operatorIdentity.ts";

/** "verb group/resource[/subresource]", the group of the core API written as "core". */
type Permission = string;

const permission = (verb: string, group: string, resource: string, subresource?: string): Permission =>
  `${verb} ${group || "core"}/${resource}${subresource ? `/${subresource}` : ""}`;

/**
 * Grants no audit record can show, each with the reason and the test that needs it.
 * Add one only when the API server checks the permission without auditing a request for it.
 */
const EXCEPTIONS: { permission: Permission; reason: string; test: string }[] = [
  {
    permission: permission("update", "apps", "deployments", "finalizers"),
    reason:
      "the managed PodDisruptionBudget's ownerReference (its Deployment) sets blockOwnerDeletion: true; where " +
      "the OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift) creating it needs update on " +
      "the owner's finalizers, which the plugin checks with the authorizer, leaving no audit record",
    test: "test/integration/controller/pdb.test.ts (the managed PodDisruptionBudget is created)",
  },
];

/** Operators in tests run as the chart's ServiceAccount: the run's (healthgate-system/healthgate) or a chart test release's (<release>-healthgate). */
const OPERATOR_ACCOUNT = /^system:serviceaccount:[a-z0-9-]+:([a-z0-9-]+-)?healthgate$/;
/**
 * The accounts that hold exactly the chart's default RBAC: the run's, and test/integration/chart.test.ts's
 * releases (namespace chart-release-…). Other tests give an operator less on purpose (to see a refusal
 * reported): what those are refused says nothing about the chart.
 */
const CHART_RBAC_ACCOUNT =
  /^system:serviceaccount:(healthgate-system:healthgate|chart-release-[a-z0-9]+:[a-z0-9-]+-healthgate)$/;

interface AuditEvent {
  stage: string;
  verb: string;
  user?: { username?: string };
  objectRef?: {
    apiGroup?: string;
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
  };
  responseStatus?: { code?: number };
}

/** What the chart grants its ServiceAccount (rules of the roles its bindings give it), by where. */
function granted(chart: RenderedObject[]): Map<Permission, string> {
  const subjectsOf = (o: RenderedObject) =>
    (o as unknown as { subjects?: { kind: string; name: string; namespace?: string }[] }).subjects ?? [];
  const roleRefOf = (o: RenderedObject) =>
    (o as unknown as { roleRef: { kind: string; name: string } }).roleRef;
  const bound = chart
    .filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding")
    .filter((b) =>
      subjectsOf(b).some(
        (s) =>
          s.kind === "ServiceAccount" &&
          s.name === OPERATOR_SERVICE_ACCOUNT &&
          s.namespace === OPERATOR_NAMESPACE,
      ),
    )
    .map((b) => `${roleRefOf(b).kind}/${roleRefOf(b).name}`);
  const grants = new Map<Permission, string>();
  for (const role of chart.filter((o) => bound.includes(`${o.kind}/${o.metadata.name}`))) {
    for (const rule of role.rules ?? []) {
      for (const group of rule.apiGroups ?? [""])
        for (const resource of rule.resources ?? [])
          for (const verb of rule.verbs ?? []) {
            const [plural, sub] = resource.split("/");
            grants.set(permission(verb, group, plural!, sub), `${role.kind} ${role.metadata.name}`);
          }
    }
  }
  return grants;
}

describe("the chart's RBAC against the operator's audit log", () => {
  it("grants exactly what the operator used across the integration suite, and refused it nothing", async () => {
    const logPath = process.env.HEALTHGATE_TEST_AUDIT_LOG;
    if (!logPath) {
      throw new Error(
        "no audit log: this check needs the run's own control plane, which globalSetup starts with " +
          "--audit-log-path (run `npm test` without HEALTHGATE_REUSE_PLANE)",
      );
    }
    const used = new Map<Permission, number>();
    const refused = new Set<string>();
    for (const line of (await readFile(logPath, "utf8")).split("\n")) {
      if (!line) continue;
      const event = JSON.parse(line) as AuditEvent;
      if (!OPERATOR_ACCOUNT.test(event.user?.username ?? "") || !event.objectRef?.resource) continue;
      const { apiGroup = "", resource, subresource, namespace, name } = event.objectRef;
      const p = permission(event.verb, apiGroup, resource, subresource);
      if (event.responseStatus?.code === 403) {
        if (CHART_RBAC_ACCOUNT.test(event.user?.username ?? ""))
          refused.add(
            `${p}${name ? ` ${name}` : ""} in ${namespace ?? "(cluster)"} as ${event.user?.username}`,
          );
        continue;
      }
      used.set(p, (used.get(p) ?? 0) + 1);
      // A server-side apply that creates its object is audited as patch (201) but authorized as
      // create as well: it used both.
      if (event.verb === "patch" && event.responseStatus?.code === 201) {
        const created = permission("create", apiGroup, resource, subresource);
        used.set(created, (used.get(created) ?? 0) + 1);
      }
    }
    expect(used.size, `no request of the operator's ServiceAccount in ${logPath}`).toBeGreaterThan(0);

    const grants = granted(await renderDefaultChart());
    const problems: string[] = [];
    for (const [p, where] of grants) {
      const exception = EXCEPTIONS.find((e) => e.permission === p);
      if (!used.has(p) && !exception) {
        problems.push(
          `granted but never used by the operator across the suite: "${p}" (${where}, charts/healthgate/templates/) — ` +
            "add a test that uses it or remove the grant",
        );
      }
    }
    for (const e of EXCEPTIONS) {
      if (!grants.has(e.permission))
        problems.push(
          `exception "${e.permission}" names a grant the chart does not make: remove the exception`,
        );
    }
    for (const r of refused) {
      problems.push(`refused to the operator (403): ${r} — grant it in the chart, with a test that uses it`);
    }
    expect(problems, `used: ${[...used.keys()].sort().join(", ")}`).toEqual([]);
  });
});
