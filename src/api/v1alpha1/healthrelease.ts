import { z } from "zod";
import { crdObject, structuralSchemaOf } from "./crd.ts";
import { GROUP } from "./healthpolicy.ts";

// HealthRelease: the namespace's released Enforce decisions, as the MutatingAdmissionPolicy reads
// them, in RELEASE_INDEX_SHARDS shards: Deployment `name` is indexed in the HealthRelease named
// releaseIndexName(releaseShard(name)), and healthgate's release write labels the Deployment
// with its shard (RELEASE_SHARD_LABEL). One binding per shard selects the Deployments by that
// label and names that shard's HealthRelease statically, so the API server hands admission one
// small parameter per write. (A binding cannot name "the Deployment's own HealthTarget": with
// the records as parameters every write of a released Deployment was evaluated once per record
// of its namespace — 1-3 s per write at 1,000 records. With one index per namespace it was
// evaluated once, but the API server converts the whole parameter object on each evaluation:
// 0.5 s per write with 1,000 distinct decisions in it. Shards keep the parameter small.)
//
// This index is where a released decision is kept, and the only place: the per-Deployment
// HealthTarget record says whether the template carries it (Enforced), what is stable and what
// pacing waits for, but holds no copy of it, so a release that lands writes the index (once per
// shard for a policy edit) and the Deployment, not the record. Decisions are stored once per
// revision: Deployments with the same decision share it, so the object stays small. Only
// healthgate's ServiceAccount may write its status (the record-status ValidatingAdmissionPolicy).

export const RELEASE_INDEX_KIND = "HealthRelease";
export const RELEASE_INDEX_PLURAL = "healthreleases";
export const RELEASE_INDEX_SINGULAR = "healthrelease";
export const RELEASE_INDEX_SHORT_NAMES = ["hrel"];
export const RELEASE_INDEX_CRD_NAME = `${RELEASE_INDEX_PLURAL}.${GROUP}`;
/** How many HealthReleases (and admission bindings) the released Deployments of a namespace spread over. */
export const RELEASE_INDEX_SHARDS = 32;
/** Label of healthgate's release write: the Deployment's shard, which selects its binding. */
export const RELEASE_SHARD_LABEL = "healthgate.io/release-shard";

/** The shard of Deployment `name`: FNV-1a of the name modulo RELEASE_INDEX_SHARDS, two digits. */
export function releaseShard(name: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return String(hash % RELEASE_INDEX_SHARDS).padStart(2, "0");
}

/** The HealthRelease that indexes a shard, e.g. healthgate-07; the shard's binding names it. */
export const releaseIndexName = (shard: string) => `healthgate-${shard}`;

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
        .describe("A released decision (the same shape as HealthTarget status.stable)."),
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
        "HealthRelease indexes Enforce decisions healthgate released in its namespace for the admission policy " +
        "that applies them: up to 32 per namespace, named healthgate-00 to healthgate-31, each for the Deployments " +
        "labelled with that shard (healthgate.io/release-shard). Written by healthgate only; the per-Deployment " +
        "HealthTarget records hold no copy: this is where a released decision is kept.",
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
