import type { z } from "zod";
import { ConditionType, KIND, healthPolicy, type HealthPolicy } from "./healthpolicy.ts";
import { healthPolicyStatus } from "./status.ts";

// Defence in depth: the API server validates a HealthPolicy with the CRD's
// schema and CEL rules, but a policy stored before a CRD upgrade (or written
// while the CRD was missing its rules) can still reach the controller. The
// controller parses every policy with the same zod schema, which carries the
// TypeScript twins of the CEL rules, and turns a bad one into a condition:
// a permanent error is reported, never retried and never thrown.

export interface InvalidSpecCondition {
  type: typeof ConditionType.Ready;
  status: "False";
  reason: "InvalidSpec";
  message: string;
}

export type ParseResult =
  | {
      ok: true;
      policy: HealthPolicy;
      /**
       * Set when the stored status did not parse (e.g. written by another version of healthgate):
       * `policy.status` is then undefined and the next status write replaces it.
       */
      ignoredStatus?: string;
    }
  | { ok: false; condition: InvalidSpecCondition };

/** At most this many problems are spelled out in one message; the rest are counted. */
const MAX_LISTED = 5;

/** ["spec", "rollout", "steps", 0, "bake"] → "spec.rollout.steps[0].bake" (the API server's notation). */
export const formatPath = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`;
    const k = String(key);
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) return acc ? `${acc}.${k}` : k;
    return `${acc}[${k}]`;
  }, "");

const describeType = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "an object" : `a ${typeof v}`;

const expectedType = (expected: string): string =>
  ({
    object: "an object",
    array: "a list",
    string: "a string",
    number: "a number",
    int: "an integer",
    boolean: "true or false",
  })[expected] ?? expected;

const noun = (origin: string, n: number | bigint): string =>
  origin === "string"
    ? `${n} character${n === 1 ? "" : "s"}`
    : origin === "array"
      ? `${n} item${n === 1 ? "" : "s"}`
      : String(n);

/**
 * Messages for zod's built-in issues, in the API server's spirit (what is wrong, what is allowed).
 * Rules with their own message (CEL twins, patterns, the port union) keep theirs.
 */
const friendly: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "required: set this field";
      return `must be ${expectedType(issue.expected)}, not ${describeType(issue.input)}`;
    case "too_small":
      return `must be at least ${noun(issue.origin, issue.minimum)}${issue.origin === "string" ? " long" : ""}`;
    case "too_big":
      return `must be at most ${noun(issue.origin, issue.maximum)}${issue.origin === "string" ? " long" : ""}`;
    case "invalid_value":
      if (issue.input === undefined) return "required: set this field";
      return `must be ${issue.values.length === 1 ? "" : "one of "}${issue.values.map((v) => JSON.stringify(v)).join(", ")}, not ${JSON.stringify(issue.input)}`;
    case "not_multiple_of":
      return `must be a whole number`;
    default:
      return undefined;
  }
};

/** Typed client results carry Date objects where the wire has RFC 3339 strings. */
const wireShape = (v: unknown): unknown => {
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(wireShape);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, wireShape(x)]));
  }
  return v;
};

const objectRef = (obj: unknown): string => {
  const meta = typeof obj === "object" && obj !== null ? (obj as { metadata?: unknown }).metadata : undefined;
  const field = (k: string) => {
    const v = typeof meta === "object" && meta !== null ? (meta as Record<string, unknown>)[k] : undefined;
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const name = field("name") ?? "(unnamed)";
  const namespace = field("namespace");
  return `${KIND} ${namespace ? `${namespace}/` : ""}${name}`;
};

const summarize = (issues: readonly z.core.$ZodIssue[]): string => {
  const listed = issues.slice(0, MAX_LISTED).map((i) => `${formatPath(i.path) || "(object)"}: ${i.message}`);
  const more = issues.length - listed.length;
  return listed.join("; ") + (more > 0 ? `; and ${more} more problem${more === 1 ? "" : "s"}` : "");
};

const invalid = (obj: unknown, what: string): ParseResult => ({
  ok: false,
  condition: {
    type: ConditionType.Ready,
    status: "False",
    reason: "InvalidSpec",
    message: `${objectRef(obj)} is invalid: ${what}`,
  },
});

/**
 * Parses a HealthPolicy read from the API server. Never throws: a policy that does not satisfy the
 * schema (bounds, enums, patterns, cross-field rules) yields the Ready=False/InvalidSpec condition
 * whose message names the object, each offending field and what to change.
 */
export function parseHealthPolicy(obj: unknown): ParseResult {
  try {
    const wire = wireShape(obj);
    if (typeof wire !== "object" || wire === null || Array.isArray(wire)) {
      return invalid(obj, `expected a ${KIND} object, got ${describeType(wire)}`);
    }
    // The status is healthgate's own bookkeeping: a status that does not parse must not
    // make the user's spec "invalid". It is dropped and rewritten on the next status write.
    const { status, ...rest } = wire as Record<string, unknown>;
    const parsed = healthPolicy.safeParse(rest, { error: friendly });
    if (!parsed.success) return invalid(obj, summarize(parsed.error.issues));
    if (status === undefined) return { ok: true, policy: parsed.data };
    const parsedStatus = healthPolicyStatus.safeParse(status, { error: friendly });
    if (!parsedStatus.success) {
      return {
        ok: true,
        policy: parsed.data,
        ignoredStatus: summarize(parsedStatus.error.issues.map(underStatus)),
      };
    }
    return { ok: true, policy: { ...parsed.data, status: parsedStatus.data } };
  } catch (err) {
    // A bug in a rule's TypeScript twin must not take the controller down.
    return invalid(obj, `could not be checked (${err instanceof Error ? err.message : String(err)})`);
  }
}

const underStatus = (issue: z.core.$ZodIssue): z.core.$ZodIssue => ({
  ...issue,
  path: ["status", ...issue.path],
});
