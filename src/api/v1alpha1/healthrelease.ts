import { z } from "zod";
import { crdObject, structuralSchemaOf } from "./crd.ts";
import { GROUP } from "./healthpolicy.ts";

// HealthRelease: the namespace's released Enforce decisions, as the MutatingAdmissionPolicy reads
// them. One object per namespace, always named `healthgate` (RELEASE_INDEX_NAME), so the
// policy's binding names it statically and the API server hands admission one parameter per
// write, however many Deployments the namespace holds. (A binding cannot name "the Deployment's
// own HealthTarget": with the records as parameters every write of a released Deployment was
// evaluated once per record of its namespace — 3 s per write at 1,000 records.)
//
// The per-Deployment HealthTarget record stays the record (its status.released is what this
// index copies); this object only indexes it for admission. Decisions are stored once per
// revision: Deployments with the same decision share it, so the object stays small. Only
// healthgate's ServiceAccount may write its status (the record-status ValidatingAdmissionPolicy).

export const RELEASE_INDEX_KIND = "HealthRelease";
export const RELEASE_INDEX_PLURAL = "healthreleases";
export const RELEASE_INDEX_SINGULAR = "healthrelease";
export const RELEASE_INDEX_SHORT_NAMES = ["hrel"];
export const RELEASE_INDEX_CRD_NAME = `${RELEASE_INDEX_PLURAL}.${GROUP}`;
/** The one HealthRelease per namespace: the admission policy's binding names it. */
export const RELEASE_INDEX_NAME = "healthgate";

export const healthReleaseStatus = z.object({
  deployments: z
    .record(z.string(), z.string().max(32))
    .optional()
    .describe("Deployment name → revision of its released decision (a key of decisions)."),
  decisions: z
    .record(
      z.string(),
      z
        .looseObject({})
        .meta({ "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-map-type": "atomic" })
        .describe("A released decision, as in HealthTarget status.released."),
    )
    .optional()
    .describe("Revision → released decision, each stored once however many Deployments carry it."),
});
export type HealthReleaseStatus = z.infer<typeof healthReleaseStatus>;

export function healthReleaseCRD() {
  return crdObject(
    {
      kind: RELEASE_INDEX_KIND,
      plural: RELEASE_INDEX_PLURAL,
      singular: RELEASE_INDEX_SINGULAR,
      shortNames: RELEASE_INDEX_SHORT_NAMES,
    },
    [{ name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }],
    {
      description:
        "HealthRelease indexes the Enforce decisions healthgate released in its namespace for the admission policy " +
        "that applies them: one object per namespace, named healthgate. Written by healthgate only; the " +
        "per-Deployment HealthTarget records hold the same decisions.",
      type: "object",
      properties: {
        apiVersion: { type: "string" },
        kind: { type: "string" },
        metadata: { type: "object" },
        status: structuralSchemaOf(healthReleaseStatus, ".status"),
      },
    },
  );
}
