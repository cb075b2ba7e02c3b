// Release pacing (issue 19, item 5): one policy edit never rolls the fleet at once. A release
// whose decision changes a Deployment's template rolls that Deployment, so such releases take a
// rollout slot: at most `maxConcurrentRollouts` Deployments cluster-wide hold one at a time. A
// slot is held from the release until the Deployment's rollout of it is complete (the release
// label names the decision, observedGeneration is current, every replica updated and
// available), or until `slotTimeoutMs` has passed (a held, aborted or stuck rollout frees its
// slot then). Releases that change no template are not paced; a decision whose Deployment
// already rolls for another reason (a user's own write changed the template) rides along at
// once. Pure: the controller (src/controller/pacing.ts) keeps the slots and the queue.
import type { Deployment } from "../api/k8s.ts";
import { RELEASED_LABEL } from "./enforce.ts";

export interface PacingSettings {
  /** Deployments cluster-wide whose release may roll at once; 0: pacing off. */
  maxConcurrentRollouts: number;
  /** A slot whose rollout has not completed after this long is freed (held, aborted, stuck). */
  slotTimeoutMs: number;
}

/**
 * Defaults: 5 rollouts at once, and 600 s before a slot is freed (a Deployment's own default
 * progressDeadlineSeconds: by then the Deployment controller itself calls the rollout stuck).
 */
export const DEFAULT_PACING: PacingSettings = { maxConcurrentRollouts: 5, slotTimeoutMs: 600_000 };

/** Whether the Deployment's rollout is complete: the controller saw the latest spec, every replica updated and available. */
export function rolloutComplete(deployment: Deployment): boolean {
  const want = deployment.spec.replicas ?? 1;
  const s = deployment.status ?? {};
  return (
    (s.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0) &&
    (s.replicas ?? 0) === want &&
    (s.updatedReplicas ?? 0) === want &&
    (s.availableReplicas ?? 0) === want
  );
}

/** A slot: granted at `since` (ms) for the release of `revision`. */
export interface Slot {
  revision: string;
  since: number;
}

/**
 * Whether a slot is still held: not timed out, and the Deployment has not yet completed the
 * rollout of the slot's release. Complete means: its release label names that revision (before
 * the release write lands, a stale cache's "complete" is the previous rollout's), admission
 * applied the decision to the template (`applied`: a release write that reached admission before
 * the API server's cache held the decision changes no template, and is re-sent), and the
 * rollout is complete.
 */
export function slotHeld(
  slot: Slot,
  deployment: Deployment | undefined,
  applied: boolean,
  now: number,
  settings: PacingSettings,
): boolean {
  if (!deployment || now - slot.since >= settings.slotTimeoutMs) return false;
  const landed = deployment.metadata.labels?.[RELEASED_LABEL] === slot.revision;
  return !(landed && applied && rolloutComplete(deployment));
}

export type ReleaseReason =
  /** maxConcurrentRollouts is 0. */
  | "Unpaced"
  /** The live template already carries the decision: releasing it rolls nothing. */
  | "NoTemplateChange"
  /** The Deployment holds a slot already (its previous release is still rolling): the newer decision follows in it. */
  | "SlotHeld"
  /** The Deployment rolls anyway (someone else's write changed the template): the decision rides along. */
  | "RidesAlong"
  /** A slot was free and no Deployment queued before this one. */
  | "SlotGranted";

export type PaceVerdict =
  | { release: true; reason: ReleaseReason; slot?: Slot }
  | {
      release: false;
      /** 1: next in line. */
      position: number;
      /** Slots held by other Deployments. */
      inUse: number;
    };

export interface PaceInput {
  settings: PacingSettings;
  now: number;
  /** The decision to release. */
  revision: string;
  /** Whether releasing it changes the live template (it does not carry the decision yet). */
  changesTemplate: boolean;
  /** Whether the Deployment's rollout is in progress now (not complete). */
  rolling: boolean;
  /** This Deployment's own slot, if it holds one. */
  ownSlot?: Slot | undefined;
  /** Slots other Deployments hold. */
  inUse: number;
  /** Other Deployments queued before this one. */
  queuedAhead: number;
}

/** Release now (and with which slot), or wait in the queue. */
export function pace(input: PaceInput): PaceVerdict {
  const { settings, now, revision } = input;
  if (settings.maxConcurrentRollouts <= 0) return { release: true, reason: "Unpaced" };
  // Its own slot first: a release that has just landed (the template carries it) before the
  // record says so is still the one holding that slot, since when it was granted.
  if (input.ownSlot)
    return { release: true, reason: "SlotHeld", slot: { revision, since: input.ownSlot.since } };
  if (!input.changesTemplate) return { release: true, reason: "NoTemplateChange" };
  if (input.rolling) return { release: true, reason: "RidesAlong" };
  const free = settings.maxConcurrentRollouts - input.inUse;
  if (input.queuedAhead < free)
    return { release: true, reason: "SlotGranted", slot: { revision, since: now } };
  return { release: false, position: input.queuedAhead + 1, inUse: input.inUse };
}

/** A queued release: the Deployment's key and since when it waits (ms). */
export interface QueueEntry {
  key: string;
  since: number;
}

/** First come, first served; the key breaks ties. */
export const queueOrder = (a: QueueEntry, b: QueueEntry): number =>
  a.since - b.since || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** Entries of `queue` ahead of `entry` (which need not be in it). */
export const queuedAhead = (queue: readonly QueueEntry[], entry: QueueEntry): number =>
  queue.filter((q) => q.key !== entry.key && queueOrder(q, entry) < 0).length;

/** The queued keys to look at again when `free` slots are free: the first `free` in line. */
export function nextInLine(queue: readonly QueueEntry[], free: number): string[] {
  if (free <= 0) return [];
  return [...queue]
    .sort(queueOrder)
    .slice(0, free)
    .map((q) => q.key);
}
