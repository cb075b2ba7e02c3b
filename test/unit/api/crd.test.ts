import { describe, expect, it } from "vitest";
import { healthPolicyCRD, toStructural, type JsonSchema } from "../../../src/api/v1alpha1/index.ts";

const crd = healthPolicyCRD();
const version = crd.spec.versions[0]!;
const root = version.schema.openAPIV3Schema;

interface Node {
  path: string;
  schema: JsonSchema;
  /** A named field (a member of some `properties`), as opposed to list items or map values. */
  isProperty: boolean;
}

/** Every schema node with its field path, e.g. `.spec.rollout.steps[*].weight`. */
function nodes(schema: JsonSchema, path = "", isProperty = false): Node[] {
  const out: Node[] = [{ path, schema, isProperty }];
  const props = schema.properties as Record<string, JsonSchema> | undefined;
  for (const [name, child] of Object.entries(props ?? {})) out.push(...nodes(child, `${path}.${name}`, true));
  if (typeof schema.items === "object") out.push(...nodes(schema.items as JsonSchema, `${path}[*]`));
  if (typeof schema.additionalProperties === "object") {
    out.push(...nodes(schema.additionalProperties as JsonSchema, `${path}[*]`));
  }
  return out;
}

const all = nodes(root);
const at = (path: string) => {
  const n = all.find((x) => x.path === path);
  if (!n) throw new Error(`no schema node at ${path}`);
  return n.schema;
};

describe("HealthPolicy CRD", () => {
  it("is namespaced healthgate.io/v1alpha1 HealthPolicy, short name hpol, category healthgate", () => {
    expect(crd.metadata.name).toBe("healthpolicies.healthgate.io");
    expect(crd.spec.group).toBe("healthgate.io");
    expect(crd.spec.scope).toBe("Namespaced");
    expect(crd.spec.names).toEqual({
      kind: "HealthPolicy",
      listKind: "HealthPolicyList",
      plural: "healthpolicies",
      singular: "healthpolicy",
      shortNames: ["hpol"],
      categories: ["healthgate"],
    });
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({
      name: "v1alpha1",
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  it("prints mode, targets, compliance, headroom, rollout phase, readiness and age", () => {
    expect(version.additionalPrinterColumns.filter((c) => !("priority" in c)).map((c) => c.name)).toEqual([
      "Mode",
      "Targets",
      "Compliant",
      "Headroom",
      "Rollout",
      "Ready",
      "Age",
    ]);
    expect(version.additionalPrinterColumns.find((c) => c.name === "Headroom")?.jsonPath).toBe(
      '.status.conditions[?(@.type=="HeadroomSufficient")].status',
    );
  });

  it("describes every field (kubectl explain shows nothing else)", () => {
    // metadata is the one exception: the API server forbids anything beside its type.
    const undocumented = all
      .filter((n) => n.isProperty && n.path !== ".metadata")
      .filter((n) => typeof n.schema.description !== "string" || n.schema.description.trim().length < 10)
      .map((n) => n.path);
    expect(undocumented).toEqual([]);
    expect(root.description).toBeTruthy();
  });

  it("is structural: every node typed, no $ref, no additionalProperties beside properties, no ±2^53 bounds", () => {
    for (const { path, schema } of all) {
      const where = path || "<root>";
      expect(schema.type ?? schema["x-kubernetes-int-or-string"], where).toBeDefined();
      expect(
        Object.keys(schema).filter((k) => k.startsWith("$")),
        where,
      ).toEqual([]);
      if (schema.properties) expect(schema.additionalProperties, where).toBeUndefined();
      expect(Math.abs(Number(schema.minimum ?? 0)), where).toBeLessThan(2 ** 53 - 1);
      expect(Math.abs(Number(schema.maximum ?? 0)), where).toBeLessThan(2 ** 53 - 1);
      if (schema["x-kubernetes-int-or-string"]) {
        expect(schema.type, where).toBeUndefined();
        expect(schema.anyOf, where).toEqual([{ type: "integer" }, { type: "string" }]);
      } else {
        expect(schema.anyOf, where).toBeUndefined();
      }
    }
  });

  it("never requires a field that has a default", () => {
    for (const { path, schema } of all) {
      const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
      for (const name of (schema.required ?? []) as string[]) {
        expect(props[name]?.default, `${path}.${name}`).toBeUndefined();
      }
    }
    // Nothing in spec is required: endpoints defaults to {} (a policy may name none).
    expect(at(".spec").required).toBeUndefined();
    expect(at(".spec.rollout").required).toEqual(["steps", "deepCheck"]);
  });

  it("bounds every list and every spec string, so CEL cost stays within the API server's budget", () => {
    for (const { path, schema } of all) {
      if (schema.type === "array") expect(schema.maxItems, path).toBeDefined();
      const bounded =
        schema.maxLength !== undefined || schema.enum !== undefined || schema.format !== undefined;
      if (path.startsWith(".spec") && (schema.type === "string" || schema["x-kubernetes-int-or-string"])) {
        expect(bounded, path).toBe(true);
      }
    }
  });

  it("carries defaults, enums and bounds", () => {
    expect(at(".spec.mode")).toMatchObject({ default: "Audit", enum: ["Audit", "Enforce"] });
    expect(at(".spec.shutdown").default).toEqual({ drainSeconds: 5, maxInFlightSeconds: 20 });
    expect(at(".spec.rollout.deepCheck.expect.statuses")).toMatchObject({
      default: [200],
      minItems: 1,
      maxItems: 16,
    });
    expect(at(".spec.rollout.steps[*].weight")).toMatchObject({ type: "integer", minimum: 1, maximum: 100 });
    expect(at(".spec.timing.liveness.periodSeconds")).toMatchObject({ minimum: 1, maximum: 3600 });
    expect(at(".spec.endpoints.port")).toMatchObject({ "x-kubernetes-int-or-string": true, maxLength: 15 });
    expect(at(".status.conditions")).toMatchObject({
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    });
  });

  it("says each default in the description, for kubectl explain", () => {
    expect(at(".spec.rollout.onFailure").description).toMatch(/ Default: Hold\.$/);
    expect(at(".spec.rollout.deepCheck.expect.statuses").description).toMatch(/ Default: \[200\]\.$/);
    expect(at(".spec.headroom.zones").description).toMatch(/ Default: true\.$/);
  });

  it("gives every CEL rule a message that names what to change", () => {
    const rules = all.flatMap((n) =>
      ((n.schema["x-kubernetes-validations"] ?? []) as { rule: string; message: string }[]).map((r) => ({
        ...r,
        path: n.path,
      })),
    );
    expect(rules.length).toBeGreaterThanOrEqual(25);
    for (const r of rules) {
      expect(r.message.length, `${r.path}: ${r.rule}`).toBeGreaterThan(20);
    }
  });
});

describe("toStructural", () => {
  it("drops additionalProperties beside properties (kubernetes #94593) and zod's ±2^53 bounds", () => {
    const out = toStructural({
      type: "object",
      properties: { n: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 } },
      additionalProperties: false,
    });
    expect(out).toEqual({ type: "object", properties: { n: { type: "integer" } } });
  });

  it("keeps additionalProperties of a map", () => {
    const map = { type: "object", additionalProperties: { type: "string", maxLength: 63 } };
    expect(toStructural(map)).toEqual(map);
  });

  it("turns an int-or-string union into x-kubernetes-int-or-string with a bare anyOf", () => {
    const out = toStructural({
      description: "Port.",
      anyOf: [
        { type: "integer", minimum: 1 },
        { type: "string", maxLength: 15, pattern: "^[a-z]+$" },
      ],
      "x-kubernetes-int-or-string": true,
    });
    expect(out).toEqual({
      description: "Port.",
      maxLength: 15,
      anyOf: [{ type: "integer" }, { type: "string" }],
      "x-kubernetes-int-or-string": true,
    });
  });

  it("does not require defaulted fields", () => {
    const out = toStructural({
      type: "object",
      properties: { a: { type: "string", default: "x" }, b: { type: "string" } },
      required: ["a", "b"],
    });
    expect(out.required).toEqual(["b"]);
  });

  it.each([
    ["a $ref", { $ref: "#/$defs/x" }, /\$ref is not supported/],
    ["an untyped node", { description: "x" }, /needs a type/],
    [
      "a union that is not int-or-string",
      { anyOf: [{ type: "string" }, { type: "boolean" }] },
      /anyOf is only supported/,
    ],
    ["oneOf", { type: "object", oneOf: [] }, /oneOf is not supported/],
  ])("refuses %s, naming the field", (_name, schema, error) => {
    expect(() => toStructural({ type: "object", properties: { f: schema } }, ".spec")).toThrow(error);
    expect(() => toStructural({ type: "object", properties: { f: schema } }, ".spec")).toThrow(
      /^\.spec\.f: /,
    );
  });
});
