import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { denyDeepLivenessManifests } from "../../../src/policy/probes/deny.ts";
import { DENY_TEMPLATE_PATH, renderDenyTemplate } from "../../../hack/gen-deny-policy.ts";
import { RULES_DOC_PATH, renderRulesDoc } from "../../../hack/gen-rules-doc.ts";
import { PROBE_RULES } from "../../../src/policy/probes/index.ts";

const root = new URL("../../../", import.meta.url);

describe("deny.deepLiveness ValidatingAdmissionPolicy", () => {
  const { policy, binding } = denyDeepLivenessManifests("healthgate-deny-deep-liveness");
  const spec = policy["spec"] as {
    paramKind: unknown;
    matchConstraints: { resourceRules: unknown[] };
    variables: unknown[];
    validations: { expression: string; messageExpression: string }[];
  };
  const bindingSpec = binding["spec"];

  it("takes the HealthPolicy as its parameter and matches Deployment CREATE/UPDATE", () => {
    expect(policy).toMatchObject({
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
    });
    expect(spec.paramKind).toEqual({ apiVersion: "healthgate.io/v1alpha1", kind: "HealthPolicy" });
    expect(spec.matchConstraints.resourceRules).toEqual([
      {
        apiGroups: ["apps"],
        apiVersions: ["v1"],
        operations: ["CREATE", "UPDATE"],
        resources: ["deployments"],
      },
    ]);
  });

  it("binds every HealthPolicy in the object's namespace and allows when there is none", () => {
    expect(bindingSpec).toEqual({
      policyName: "healthgate-deny-deep-liveness",
      validationActions: ["Deny"],
      paramRef: { selector: {}, parameterNotFoundAction: "Allow" },
    });
  });

  it("never judges an object being deleted, nor an UPDATE that leaves every liveness probe as it was", () => {
    const conditions = (policy["spec"] as { matchConditions: { name: string; expression: string }[] })
      .matchConditions;
    expect(conditions.map((c) => c.name)).toEqual(["not-being-deleted", "adds-or-changes-a-liveness-probe"]);
    expect(conditions[0]?.expression).toBe("!has(object.metadata.deletionTimestamp)");
    // Parameter-free: match conditions run before any HealthPolicy is looked at.
    for (const c of conditions) expect(c.expression).not.toContain("params");
  });

  it("judges only what the policy selects and governs (selector, targetRef, spec.containers)", () => {
    const cel = JSON.stringify(spec.variables);
    for (const field of [
      "params.spec.selector.matchLabels",
      "params.spec.selector.matchExpressions",
      "params.spec.targetRef.name",
      "params.spec.containers",
      "oldObject.spec.template.spec.containers",
    ]) {
      expect(cel).toContain(field);
    }
    expect(spec.validations[0]?.expression).toContain("variables.selected");
  });

  it("checks deny.deepLiveness, the deep paths and the rollout deep-check path", () => {
    const cel = JSON.stringify(spec.variables) + JSON.stringify(spec.validations);
    for (const field of [
      "params.spec.deny.deepLiveness",
      "params.spec.endpoints.deep.paths",
      "params.spec.rollout.deepCheck.path",
      "livenessProbe.httpGet.path",
      "livenessProbe.exec.command",
    ]) {
      expect(cel).toContain(field);
    }
    expect(spec.validations[0]?.messageExpression).toContain("shallow endpoint");
  });
});

describe("generated files are up to date", () => {
  it(`${DENY_TEMPLATE_PATH} (node hack/gen-deny-policy.ts)`, () => {
    expect(readFileSync(new URL(DENY_TEMPLATE_PATH, root), "utf8")).toBe(renderDenyTemplate());
  });
  it(`${RULES_DOC_PATH} (node hack/gen-rules-doc.ts)`, () => {
    const doc = readFileSync(new URL(RULES_DOC_PATH, root), "utf8");
    expect(doc).toBe(renderRulesDoc());
    for (const rule of PROBE_RULES) expect(doc).toContain(`| \`${rule.rule}\` | ${rule.severity} |`);
  });
  it("the chart template is two YAML documents once the Helm lines are removed", () => {
    const plain = renderDenyTemplate()
      .split("\n")
      .filter((l) => !l.startsWith("{{-"))
      .join("\n")
      .replaceAll(/\{\{[^}]*\}\}/g, "x");
    const docs = parseAllDocuments(plain);
    expect(Array.isArray(docs) && docs.map((d) => d.errors.length)).toEqual([0, 0]);
  });
});
