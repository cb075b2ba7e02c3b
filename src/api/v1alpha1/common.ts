import { z } from "zod";

// Building blocks shared by the HealthPolicy schemas. The zod schemas are the
// single source of truth: the CRD's openAPIV3Schema is generated from them
// (hack/generate.ts), and the operator parses live objects with them.

/** Kubernetes CEL validation rule attached to a schema node. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
}

export const cel = (...rules: CelRule[]) => ({ "x-kubernetes-validations": rules });

/** A non-negative 32-bit integer with explicit bounds (zod's int() alone bounds at ±2^53). */
export const int32 = (min: number, max: number) => z.int().min(min).max(max);

/** Go-style duration restricted to s/m/h units, e.g. "90s", "2m", "1h30m". */
export const duration = () =>
  z
    .string()
    .regex(/^([0-9]+h)?([0-9]+m)?([0-9]+s)?$/)
    .min(2)
    .max(16);

/** IANA service name (a named container port), as Kubernetes validates it. */
const portName = z
  .string()
  .min(1)
  .max(15)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);

/** A container port by number or by name (x-kubernetes-int-or-string). */
export const intOrStringPort = () =>
  z.union([int32(1, 65535), portName]).meta({ "x-kubernetes-int-or-string": true });

/** An absolute HTTP path. */
export const httpPath = () =>
  z
    .string()
    .min(1)
    .max(1024)
    .regex(/^\/[^\s?#]*$/);

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const containerName = () => z.string().min(1).max(63).regex(dnsLabel);
export const objectName = () =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);

/** metav1.LabelSelector. */
export const labelSelector = () =>
  z
    .object({
      matchLabels: z
        .record(z.string().max(63), z.string().max(63))
        .optional()
        .describe("Labels a Deployment must carry, all of them (as in a Deployment's own selector)."),
      matchExpressions: z
        .array(
          z.object({
            key: z.string().min(1).max(317).describe("The label key the requirement applies to."),
            operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]).describe("How the key relates to the values."),
            values: z
              .array(z.string().max(63))
              .max(64)
              .optional()
              .describe("Values for In and NotIn; must be empty for Exists and DoesNotExist."),
          }).meta(
            cel({
              rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
              message: "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
            }),
          ),
        )
        .max(32)
        .optional()
        .describe("Set-based label requirements, all of which must hold."),
    })
    .meta(
      cel({
        rule: "has(self.matchLabels) && size(self.matchLabels) > 0 || has(self.matchExpressions) && size(self.matchExpressions) > 0",
        message: "selector must have matchLabels or matchExpressions; an empty selector would select every Deployment in the namespace — use targetRef or add labels",
      }),
    );
