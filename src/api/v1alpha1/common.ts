import { z } from "zod";

// Building blocks shared by the HealthPolicy schemas. The zod schemas are the
// single source of truth: the CRD's openAPIV3Schema is generated from them
// (hack/generate.ts), and the operator parses live objects with them.
//
// Rules that JSON Schema cannot express (cross-field rules, patterns with a
// helpful message) are written once, with `withRules`: the API server checks
// the CEL expression, and parseHealthPolicy checks the TypeScript twin, with
// the same message. A policy stored before a CRD upgrade therefore still ends
// as a clear condition instead of surprising the controller.

/** Kubernetes CEL validation rule attached to a schema node (x-kubernetes-validations). */
export interface CelRule {
  rule: string;
  message: string;
  /** Overrides `message` when set; the CEL twin of {@link Rule.messageFor}. */
  messageExpression?: string;
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
}

/** A CEL rule together with its TypeScript twin. */
export interface Rule<T> extends CelRule {
  /** True when `self` satisfies the rule. Must agree with `rule` on every value the schema admits. */
  holds: (self: T) => boolean;
  /** The TypeScript twin of `messageExpression`: the message for a `self` that breaks the rule. */
  messageFor?: (self: T) => string;
}

export const cel = (...rules: CelRule[]) => ({ "x-kubernetes-validations": rules });

const celRules = (schema: z.ZodType): CelRule[] => {
  const rules: unknown = schema.meta()?.["x-kubernetes-validations"];
  return Array.isArray(rules) ? (rules as CelRule[]) : [];
};

/** "liveness.path" (a CEL fieldPath, relative to the node) → ["liveness", "path"]. */
const issuePath = (fieldPath: string | undefined): string[] =>
  fieldPath ? fieldPath.replace(/^\./, "").split(".") : [];

/**
 * Attaches rules to a schema: the CEL half goes into the generated CRD (appended to any rules
 * already there), the TypeScript half runs when the schema parses.
 */
export function withRules<S extends z.ZodType>(schema: S, ...rules: Rule<z.output<S>>[]): S {
  const celOnly = rules.map(({ holds: _holds, messageFor: _messageFor, ...r }): CelRule => r);
  return schema.meta(cel(...celRules(schema), ...celOnly)).superRefine((self, ctx) => {
    for (const r of rules) {
      if (r.holds(self)) continue;
      ctx.addIssue({
        code: "custom",
        message: r.messageFor?.(self) ?? r.message,
        path: issuePath(r.fieldPath),
        input: self,
      });
    }
  });
}

/** A CEL string literal for a regular expression (raw, so backslashes stay as they are). */
const celRegex = (re: RegExp): string => {
  if (re.flags !== "" || re.source.includes("'")) throw new Error(`regex ${re} cannot be a CEL raw string`);
  return `r'${re.source}'`;
};

/**
 * A string that must match `re`, checked with a message that says what to fix. A bare
 * JSON Schema `pattern` would make the API server answer "should match '^...$'".
 * `re` must mean the same in JavaScript and RE2 (no lookaround, no backreferences).
 */
export const matching = <S extends z.ZodString>(schema: S, re: RegExp, message: string): S =>
  withRules(schema, { rule: `self.matches(${celRegex(re)})`, message, holds: (s) => re.test(s) });

/** An integer with explicit bounds (zod's int() alone bounds at ±2^53). */
export const int32 = (min: number, max: number) => z.int().min(min).max(max);

const durationRe = /^([0-9]+h)?([0-9]+m)?([0-9]+s)?$/;
/** Go-style duration restricted to s/m/h units, e.g. "90s", "2m", "1h30m". */
export const duration = () =>
  matching(
    z.string().min(2).max(16),
    durationRe,
    "must be a duration in hours, minutes and seconds, e.g. 90s, 2m or 1h30m",
  );

/** Parses a {@link duration} into seconds (undefined when it is not one). */
export const durationSeconds = (d: string): number | undefined => {
  const m = durationRe.exec(d);
  if (!m || d === "") return undefined;
  const n = (s: string | undefined) => (s ? Number.parseInt(s, 10) : 0);
  return n(m[1]) * 3600 + n(m[2]) * 60 + n(m[3]);
};

const portNameRe = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const hasLetterRe = /[a-z]/;
const portMessage =
  "must be a port number from 1 to 65535 or a port name (the container port's name: at most 15 lowercase letters, digits and single hyphens, with at least one letter), e.g. 8080 or http";

/**
 * A container port by number or by name (x-kubernetes-int-or-string). Structural schemas allow
 * only a bare `anyOf: [{type: integer}, {type: string}]` on such a node, so the bounds live in a
 * rule; the string's maxLength stays on the node (it bounds the rule's estimated cost).
 */
export const intOrStringPort = () =>
  withRules(z.union([z.int(), z.string().max(15)], { error: portMessage }), {
    rule:
      `type(self) == int ? self >= 1 && self <= 65535 : ` +
      `self.matches(${celRegex(portNameRe)}) && self.matches(${celRegex(hasLetterRe)})`,
    message: portMessage,
    holds: (p) =>
      typeof p === "number"
        ? p >= 1 && p <= 65535
        : p.length <= 15 && portNameRe.test(p) && hasLetterRe.test(p),
  }).meta({ "x-kubernetes-int-or-string": true });

/** An absolute HTTP path. */
export const httpPath = () =>
  matching(
    z.string().min(1).max(1024),
    /^\/[^\s?#]*$/,
    "must be an absolute HTTP path: start with / and contain no spaces, query (?) or fragment (#), e.g. /healthz",
  );

/**
 * A path healthgate requests itself (the deep check). Stricter than {@link httpPath}: RFC 3986
 * path characters only and no empty segment, so it can never read as another host ("//host",
 * "@host", "http://host", "\\host") or smuggle a header (CR, LF).
 */
export const OWN_ENDPOINT_PATH = /^(\/[A-Za-z0-9._~!$&()*+,;=:%-]+)*\/?$/;
export const ownEndpointPath = () =>
  matching(
    z.string().min(1).max(1024),
    OWN_ENDPOINT_PATH,
    "must be a path on the pod itself: start with a single /, no empty segment (//), and only letters, digits and " +
      "- . _ ~ ! $ & ( ) * + , ; = : % (no @, backslash, space, query or fragment), e.g. /health/deep",
  );

const dnsLabelRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const containerName = () =>
  matching(
    z.string().min(1).max(63),
    dnsLabelRe,
    "must be a container name: lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. web",
  );
export const objectName = () =>
  matching(
    z.string().min(1).max(253),
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    "must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, e.g. web-api",
  );

/** Set semantics for a list (x-kubernetes-list-type: set): the API server reports duplicates; so does parsing. */
export const uniqueItems = <S extends z.ZodArray<z.ZodType<string | number>>>(schema: S, what: string): S =>
  schema.meta({ "x-kubernetes-list-type": "set" }).superRefine((items, ctx) => {
    const seen = new Set<unknown>();
    items.forEach((item, i) => {
      if (seen.has(item))
        ctx.addIssue({
          code: "custom",
          message: `duplicate ${what} ${JSON.stringify(item)}: list each once`,
          path: [i],
          input: item,
        });
      seen.add(item);
    });
  });

const matchExpression = withRules(
  z.object({
    key: z.string().min(1).max(317).describe("The label key the requirement applies to."),
    operator: z
      .enum(["In", "NotIn", "Exists", "DoesNotExist"])
      .describe("How the key relates to the values: In, NotIn, Exists or DoesNotExist."),
    values: z
      .array(z.string().max(63))
      .max(64)
      .optional()
      .describe("Values for In and NotIn; must be empty for Exists and DoesNotExist."),
  }),
  {
    rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
    message: "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
    fieldPath: ".values",
    holds: (e) =>
      (e.operator === "In" || e.operator === "NotIn") === (e.values !== undefined && e.values.length > 0),
  },
);

/** metav1.LabelSelector. */
export const labelSelector = () =>
  withRules(
    z.object({
      matchLabels: z
        .record(z.string().min(1).max(317), z.string().max(63))
        .optional()
        .meta({ maxProperties: 64 })
        .describe("Labels a Deployment must carry, all of them (as in a Deployment's own selector)."),
      matchExpressions: z
        .array(matchExpression)
        .max(32)
        .optional()
        .describe("Set-based label requirements, all of which must hold."),
    }),
    {
      rule: "has(self.matchLabels) && size(self.matchLabels) > 0 || has(self.matchExpressions) && size(self.matchExpressions) > 0",
      message:
        "selector must have matchLabels or matchExpressions; an empty selector would select every Deployment in the namespace — add labels or use targetRef",
      holds: (s) => Object.keys(s.matchLabels ?? {}).length > 0 || (s.matchExpressions ?? []).length > 0,
    },
  );
