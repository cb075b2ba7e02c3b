// events.k8s.io/v1 Events as healthgate records them.
import type { KubeObject } from "./client.ts";
import { microTime } from "./leaderElection.ts";

/** The API server refuses a note longer than this many bytes (not characters). */
export const EVENT_NOTE_MAX_BYTES = 1024;

/**
 * `text` cut to at most `maxBytes` bytes of UTF-8, at a character boundary, ending in "…" when
 * cut. Counting UTF-16 units instead lets a note full of "—" or "…" (3 bytes each) through
 * the cut and be refused.
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, "utf8") <= maxBytes) return text;
  const ellipsis = "…";
  let budget = maxBytes - Buffer.byteLength(ellipsis, "utf8");
  let cut = "";
  for (const char of text) {
    const size = Buffer.byteLength(char, "utf8");
    if (size > budget) break;
    budget -= size;
    cut += char;
  }
  return cut + ellipsis;
}

export interface EventSource {
  /** Who records it: `reportingInstance` (the replica's identity). */
  identity: string;
  now: Date;
  /** A number in [0, 1) that keeps two Events of one millisecond apart. */
  random: number;
}

/** An Event about `regarding` (a Deployment or a HealthPolicy), ready to create. */
export function eventFor(
  regarding: KubeObject,
  type: "Normal" | "Warning",
  reason: string,
  note: string,
  { identity, now, random }: EventSource,
): KubeObject {
  return {
    apiVersion: "events.k8s.io/v1",
    kind: "Event",
    metadata: {
      name: `${regarding.metadata.name}.${now.getTime().toString(16)}${Math.floor(random * 0xffff).toString(16)}`,
      namespace: regarding.metadata.namespace ?? "default",
    },
    eventTime: microTime(now.getTime()),
    reportingController: "healthgate.io/healthgate",
    reportingInstance: identity,
    action: reason,
    reason,
    type,
    note: truncateUtf8(note, EVENT_NOTE_MAX_BYTES),
    regarding: {
      apiVersion:
        regarding.apiVersion ?? (regarding.kind === "Deployment" ? "apps/v1" : "healthgate.io/v1alpha1"),
      kind: regarding.kind ?? "Deployment",
      name: regarding.metadata.name,
      namespace: regarding.metadata.namespace,
      uid: regarding.metadata.uid,
    },
  } as KubeObject;
}
