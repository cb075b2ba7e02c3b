import { z } from "zod";
import { API_VERSION, KIND } from "./names.ts";
import { healthPolicySpec } from "./spec.ts";
import { healthPolicyStatus } from "./status.ts";

// The API's names live in names.ts (no zod), so the gate webhook's thread can read them
// without loading the schemas; re-exported here for everyone else.
export * from "./names.ts";

const metadata = z
  .object({
    name: z.string(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    generation: z.number().optional(),
    resourceVersion: z.string().optional(),
    creationTimestamp: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();

/** The whole object as the operator reads it (metadata kept loose). */
export const healthPolicy = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata,
  spec: healthPolicySpec,
  status: healthPolicyStatus.optional(),
});
export type HealthPolicy = z.output<typeof healthPolicy>;
