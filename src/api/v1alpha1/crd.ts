import { z } from "zod";
import {
  CATEGORIES,
  ConditionType,
  GROUP,
  KIND,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
} from "./healthpolicy.ts";
import { healthPolicySpec } from "./spec.ts";
import { healthPolicyStatus } from "./status.ts";

// The HealthPolicy CustomResourceDefinition, generated from the zod schemas.
// hack/generate.ts writes it as YAML; nothing here does I/O.
//
// zod's OpenAPI 3.0 output is close to what the API server wants, but a CRD
// schema must be *structural* (every node typed, no type inside anyOf, ...):
// toStructural makes it so and refuses what it cannot fix, so a schema change
// that the API server would reject fails `npm run generate` instead.

export type JsonSchema = { [key: string]: unknown };

const SAFE = Number.MAX_SAFE_INTEGER;

// Keys the generated schema may use; anything else is a sign that zod emitted a
// construct the API server does not understand (e.g. $ref, oneOf with types).
const allowedKeys = new Set([
  "description",
  "type",
  "format",
  "default",
  "enum",
  "minimum",
  "maximum",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "properties",
  "required",
  "items",
  "additionalProperties",
  "anyOf",
  "x-kubernetes-validations",
  "x-kubernetes-int-or-string",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-map-type",
]);

// Key order in the output: what a reader looks for first.
const keyOrder = [...allowedKeys];

const isObject = (v: unknown): v is JsonSchema => typeof v === "object" && v !== null && !Array.isArray(v);

const defaultText = (value: unknown): string | undefined => {
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
    return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number"))
    return `[${value.join(", ")}]`;
  return undefined; // objects: their fields say their own defaults
};

/**
 * Turns zod's OpenAPI 3.0 output into a structural schema the API server accepts.
 * `at` is the field path, for error messages.
 */
export function toStructural(input: JsonSchema, at = ""): JsonSchema {
  const node: JsonSchema = { ...input };
  delete node.$schema;
  for (const key of Object.keys(node)) {
    if (!allowedKeys.has(key))
      throw new Error(`${at || "<root>"}: schema keyword ${key} is not supported in a CRD schema`);
  }

  // zod's int() is bounded at ±2^53; the bound means nothing to the API server.
  if (node.minimum === -SAFE) delete node.minimum;
  if (node.maximum === SAFE) delete node.maximum;

  if (node["x-kubernetes-int-or-string"] === true) {
    // The only anyOf a structural schema allows here: bare integer and string, no type
    // beside it. Bounds belong in the node's CEL rules; the string's maxLength may stay on
    // the node (it applies to strings only, and bounds the cost of those rules).
    const branches = Array.isArray(node.anyOf) ? (node.anyOf as JsonSchema[]) : [];
    const types = branches.map((b) => b.type).sort();
    if (types.join() !== "integer,string") {
      throw new Error(`${at}: x-kubernetes-int-or-string needs a union of an integer and a string schema`);
    }
    const maxLength = branches.find((b) => b.type === "string")?.maxLength;
    for (const k of ["type", "minimum", "maximum", "minLength", "maxLength", "pattern", "format"])
      delete node[k];
    node.anyOf = [{ type: "integer" }, { type: "string" }];
    if (maxLength !== undefined) node.maxLength = maxLength;
  } else if (node.anyOf !== undefined) {
    throw new Error(
      `${at}: anyOf is only supported for x-kubernetes-int-or-string; use a plain type or a CEL rule`,
    );
  } else if (typeof node.type !== "string") {
    throw new Error(`${at || "<root>"}: every node of a structural schema needs a type`);
  }

  if (isObject(node.properties)) {
    // Kubernetes #94593: additionalProperties (even false) may not sit beside properties.
    delete node.additionalProperties;
    const properties: JsonSchema = {};
    for (const [name, child] of Object.entries(node.properties)) {
      if (!isObject(child)) throw new Error(`${at}.${name}: not a schema`);
      properties[name] = toStructural(child, `${at}.${name}`);
    }
    node.properties = properties;
    // A defaulted field is never missing after defaulting; requiring it would make the
    // API server reject objects that omit it before defaults apply.
    if (Array.isArray(node.required)) {
      const required = (node.required as string[]).filter((name) => {
        const child = properties[name];
        return isObject(child) && child.default === undefined;
      });
      if (required.length > 0) node.required = required;
      else delete node.required;
    }
  }
  if (isObject(node.additionalProperties)) {
    node.additionalProperties = toStructural(node.additionalProperties, `${at}[*]`);
  }
  if (isObject(node.items)) node.items = toStructural(node.items, `${at}[*]`);

  // kubectl explain shows descriptions, not defaults: say the default in the description.
  if (
    node.default !== undefined &&
    typeof node.description === "string" &&
    !/\bDefault\b/.test(node.description)
  ) {
    const shown = defaultText(node.default);
    if (shown !== undefined) node.description = `${node.description} Default: ${shown}.`;
  }

  const ordered: JsonSchema = {};
  for (const k of keyOrder) if (node[k] !== undefined) ordered[k] = node[k];
  return ordered;
}

/** zod → OpenAPI 3.0 (input side: defaults make fields optional) → structural. */
export const structuralSchemaOf = (schema: z.ZodType, at: string): JsonSchema =>
  toStructural(z.toJSONSchema(schema, { target: "openapi-3.0", io: "input" }) as JsonSchema, at);

/** The CRD's openAPIV3Schema for the whole HealthPolicy object. */
export function healthPolicyOpenAPISchema(): JsonSchema {
  return {
    description:
      "HealthPolicy says how the Deployments it selects are health-checked: shallow liveness, probe timing sized to " +
      "detection objectives, graceful shutdown, N−k headroom and rollouts gated on out-of-band deep checks.",
    type: "object",
    properties: {
      apiVersion: {
        description:
          "APIVersion defines the versioned schema of this representation of an object. Servers should convert " +
          "recognized schemas to the latest internal value, and may reject unrecognized values.",
        type: "string",
      },
      kind: {
        description:
          "Kind is a string value representing the REST resource this object represents. Servers may infer this from " +
          "the endpoint the client submits requests to. Cannot be updated. In CamelCase.",
        type: "string",
      },
      metadata: { type: "object" },
      spec: structuralSchemaOf(healthPolicySpec, ".spec"),
      status: structuralSchemaOf(healthPolicyStatus, ".status"),
    },
    required: ["spec"],
  };
}

const conditionStatus = (type: ConditionType) => `.status.conditions[?(@.type=="${type}")].status`;

/** Columns of `kubectl get hpol` (priority 1: only with -o wide). */
export const printerColumns = [
  { name: "Mode", type: "string", jsonPath: ".spec.mode", description: "Audit or Enforce." },
  {
    name: "Targets",
    type: "integer",
    jsonPath: ".status.targetCount",
    description: "Deployments this policy selects.",
  },
  {
    name: "Compliant",
    type: "integer",
    jsonPath: ".status.compliantCount",
    description: "Selected Deployments with no finding at error or above.",
  },
  {
    name: "Headroom",
    type: "string",
    jsonPath: conditionStatus(ConditionType.HeadroomSufficient),
    description:
      "HeadroomSufficient condition: do the survivors carry peak load after losing tolerate replicas?",
  },
  {
    name: "Rollout",
    type: "string",
    jsonPath: ".status.rolloutPhase",
    description: "Phase of the most advanced rollout.",
  },
  {
    name: "Ready",
    type: "string",
    jsonPath: conditionStatus(ConditionType.Ready),
    description: "Ready condition.",
  },
  {
    name: "Shallow",
    type: "string",
    jsonPath: conditionStatus(ConditionType.LivenessShallow),
    description: "LivenessShallow condition: no liveness probe reaches a deep endpoint.",
    priority: 1,
  },
  {
    name: "Reason",
    type: "string",
    jsonPath: `.status.conditions[?(@.type=="${ConditionType.Ready}")].reason`,
    description: "Why the policy is or is not Ready.",
    priority: 1,
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const;

export const CRD_NAME = `${PLURAL}.${GROUP}`;

export interface CrdNames {
  kind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
}

/** A namespaced, status-subresourced CustomResourceDefinition of the healthgate.io group, as plain JSON. */
export function crdObject(
  names: CrdNames,
  columns: readonly Record<string, unknown>[],
  openAPIV3Schema: JsonSchema,
) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${names.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/name": "healthgate", "app.kubernetes.io/component": "crd" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: `${names.kind}List`,
        plural: names.plural,
        singular: names.singular,
        shortNames: [...names.shortNames],
        categories: [...CATEGORIES],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns.map((c) => ({ ...c })),
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

/** The CustomResourceDefinition object (apiextensions.k8s.io/v1), as plain JSON. */
export function healthPolicyCRD() {
  return crdObject(
    { kind: KIND, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES },
    printerColumns,
    healthPolicyOpenAPISchema(),
  );
}
