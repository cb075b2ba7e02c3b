// Panic mode, decided (docs/panic.md; DESIGN.md, "Rollout gating", lesson 9). Envoy's panic
// threshold for a Kubernetes Service: while too few of a workload's serving pods are Ready,
// `publishNotReadyAddresses: true` on the Services that select only its pods makes the
// EndpointSlice controller mark every endpoint ready, so traffic spreads over all of them
// instead of overloading the few survivors. The same flag would also make gated and
// terminating pods ready endpoints, so panic is refused while pods of a new revision are held
// by the deep-check gate or pods are terminating, and for a Service that reaches other
// workloads' pods.
//
// Pure: the state in, the next state and what to write out. The I/O is in
// src/controller/panic.ts.
import type { PanicState } from "../../api/v1alpha1/index.ts";

export interface PanicSettings {
  floorPercent: number;
  holdSeconds: number;
}

/** A Service whose selector selects the workload's pods. */
export interface PanicService {
  name: string;
  /** Its live publishNotReadyAddresses. */
  publishes: boolean;
  /** Whether healthgate's panic field manager owns publishNotReadyAddresses on the live object. */
  ownedByPanic: boolean;
  /** Another workload (or pod) the selector also selects: such a Service is never changed. */
  sharedWith?: string;
  /** The field manager that owns publishNotReadyAddresses, when it is not healthgate's. */
  otherManager?: string;
  /**
   * This process published it and healthgate owns it no more. A field removed by an update
   * (kubectl edit) leaves no owner to name; without this, such a Service is published again
   * once (after a restart, the record alone cannot tell a revert from a write that never landed).
   */
  takenBack?: boolean;
}

export interface PanicInput {
  /** undefined: panic mode is not enabled (or the Deployment is no longer governed). */
  settings: PanicSettings | undefined;
  /** Pods that serve: running, not terminating. */
  servingPods: number;
  /** The Deployment's desired replicas: panic arms only once that many pods' worth reached the floor. */
  desiredReplicas: number;
  readyPods: number;
  /** Pods of a new revision held unready by the healthgate.io/deep-check gate. */
  heldPods: readonly string[];
  /** Pods being deleted: the flag would make them ready endpoints again, undoing their drain. */
  terminatingPods: readonly string[];
  /** A gated rollout is under way (the next gated step may begin at any moment). */
  gatedRollout: boolean;
  services: readonly PanicService[];
  previous: PanicState | undefined;
  now: Date;
}

export interface PanicEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export interface PanicDecision {
  /** The next status.panic; undefined: nothing to record (never panicked, not enabled). */
  state: PanicState | undefined;
  /** Services whose publishNotReadyAddresses healthgate must own as true. */
  publish: string[];
  /** Services to give back, with the value they had. */
  restore: { name: string; original: boolean }[];
  events: PanicEvent[];
  /** Look again after this long (the hold) even if nothing changes. */
  requeueAfterSeconds?: number;
}

/** Floor of the Ready percentage (0 without serving pods). */
export function readyPercent(ready: number, serving: number): number {
  return serving > 0 ? Math.floor((ready * 100) / serving) : 0;
}

/** Below the floor: some pod serves and fewer than floorPercent of them are Ready. */
export function belowFloor(ready: number, serving: number, floorPercent: number): boolean {
  return serving > 0 && ready * 100 < floorPercent * serving;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
const list = (names: readonly string[], max = 5) =>
  names.length <= max ? names.join(", ") : `${names.slice(0, max).join(", ")} and ${names.length - max} more`;

function panickingMessage(
  readiness: string,
  services: readonly { name: string }[],
  all: readonly PanicService[],
): string {
  const shared = all.filter((s) => s.sharedWith !== undefined).map((s) => s.name);
  return (
    `${readiness}: every pod is published on Service(s) ${list(services.map((s) => s.name))}` +
    (shared.length > 0 ? `; left alone, shared with other pods: ${list(shared)}` : "")
  );
}

/** Why panic may not be entered (or must be left) now, if it may not. */
function blocker(input: PanicInput): { reason: string; message: string } | undefined {
  if (input.heldPods.length > 0) {
    return {
      reason: "GatedPodsHeld",
      message:
        `${input.heldPods.length} pod(s) of a new revision are held by the healthgate.io/deep-check gate ` +
        `(${list(input.heldPods)}); publishNotReadyAddresses would make them ready endpoints and undo the gate. ` +
        `Panic resumes once the rollout has admitted or removed them.`,
    };
  }
  if (input.terminatingPods.length > 0) {
    return {
      reason: "PodsTerminating",
      message:
        `${input.terminatingPods.length} pod(s) are terminating (${list(input.terminatingPods)}); ` +
        `publishNotReadyAddresses would make them ready endpoints again and undo their drain. ` +
        `Panic resumes once they are gone.`,
    };
  }
  if (input.gatedRollout) {
    return {
      reason: "GatedRollout",
      message:
        "a gated rollout is under way: publishNotReadyAddresses would make its pods ready endpoints before " +
        "their deep checks admit them. Panic resumes once the rollout completes.",
    };
  }
  return undefined;
}

/** The state for a phase; `since` moves only when the phase or reason changes. */
function stateOf(previous: PanicState | undefined, fields: Omit<PanicState, "since">, now: Date): PanicState {
  const same = previous?.phase === fields.phase && previous.reason === fields.reason;
  return { ...fields, since: same ? previous.since : iso(now) };
}

/**
 * How long readiness has stayed at or above the floor while Panicking or Stopped, and whether
 * that covers the hold: `aboveFloorSince` starts at the first look above the floor and is
 * dropped as soon as the percentage falls below it again.
 */
function hold(input: PanicInput, below: boolean, settings: PanicSettings) {
  if (below) return { aboveFloorSince: undefined, held: false, remaining: undefined };
  const since = input.previous?.aboveFloorSince ?? iso(input.now);
  const elapsed = (input.now.getTime() - Date.parse(since)) / 1000;
  const held = elapsed >= settings.holdSeconds;
  return {
    aboveFloorSince: since,
    held,
    remaining: held ? undefined : Math.ceil(settings.holdSeconds - elapsed),
  };
}

export function decidePanic(input: PanicInput): PanicDecision {
  const { previous, settings, now } = input;
  const percent = readyPercent(input.readyPods, input.servingPods);
  const live = new Map(input.services.map((s) => [s.name, s]));
  const recorded = previous?.services ?? [];
  // Everything healthgate recorded, except what someone else has taken: given back.
  const restoreAll = (except?: string) =>
    recorded
      .filter((s) => s.name !== except && live.get(s.name)?.ownedByPanic === true)
      .map((s) => ({ name: s.name, original: s.original }));
  const leave = (
    fields: Pick<PanicState, "phase" | "reason" | "message"> & Partial<PanicState>,
    event: PanicEvent | undefined,
    except?: string,
  ): PanicDecision => ({
    state: stateOf(previous, { readyPercent: percent, ...fields }, now),
    publish: [],
    restore: restoreAll(except),
    events: event ? [event] : [],
  });

  if (!settings) {
    if (!previous || previous.phase === "Inactive")
      return { state: previous, publish: [], restore: [], events: [] };
    const message = "panic mode is not enabled for this Deployment (spec.guardrails.panic)";
    return leave(
      { phase: "Inactive", reason: "Disabled", message },
      previous.phase === "Panicking" ? { type: "Normal", reason: "PanicEnded", message } : undefined,
    );
  }

  const below = belowFloor(input.readyPods, input.servingPods, settings.floorPercent);
  const readiness = `${input.readyPods} of ${input.servingPods} serving pods Ready (${percent}%, floor ${settings.floorPercent}%)`;

  if (previous?.phase === "Panicking") {
    // Someone took the flag back: stop, say who, and do not fight.
    const taken = recorded.find((s) => {
      const svc = live.get(s.name);
      return (
        svc !== undefined && !svc.ownedByPanic && (svc.otherManager !== undefined || svc.takenBack === true)
      );
    });
    if (taken) {
      const manager = live.get(taken.name)?.otherManager ?? "";
      const who = manager
        ? `field manager ${manager}`
        : "an update that left no managedFields entry (kubectl edit or replace)";
      const message =
        `${who} took publishNotReadyAddresses of Service ${taken.name} back during panic; healthgate stopped ` +
        `panicking and will not write it again until readiness has recovered (${readiness}). If a GitOps tool ` +
        `manages that Service, leave publishNotReadyAddresses out of its manifest, or disable spec.guardrails.panic.`;
      return leave(
        {
          phase: "Stopped",
          reason: "ConflictingManager",
          message,
          ...(below ? {} : { aboveFloorSince: iso(now) }),
          conflict: { service: taken.name, manager },
        },
        { type: "Warning", reason: "PanicConflict", message },
        taken.name,
      );
    }
    const blocked = blocker(input);
    if (blocked) {
      const message = `left panic: ${blocked.message}`;
      return leave(
        { phase: "Refused", reason: blocked.reason, message },
        { type: "Warning", reason: "PanicRefused", message },
      );
    }
    const { aboveFloorSince, held, remaining } = hold(input, below, settings);
    if (held) {
      const message = `readiness stayed at or above the floor for the hold (${settings.holdSeconds}s): ${readiness}; restored publishNotReadyAddresses`;
      return leave(
        { phase: "Inactive", reason: "Recovered", message },
        { type: "Normal", reason: "PanicEnded", message },
      );
    }
    // Still panicking: keep what we hold; a Service that turned shared is given back.
    const kept = recorded.filter((s) => {
      const svc = live.get(s.name);
      return svc !== undefined && svc.sharedWith === undefined;
    });
    const dropped = recorded.filter((s) => live.get(s.name)?.sharedWith !== undefined);
    const added = input.services
      .filter((s) => s.sharedWith === undefined && !s.publishes && !recorded.some((r) => r.name === s.name))
      .map((s) => ({ name: s.name, original: false }));
    const services = [...kept, ...added];
    const state = stateOf(
      previous,
      {
        phase: "Panicking",
        reason: previous.reason,
        message: panickingMessage(readiness, services, input.services),
        readyPercent: percent,
        ...(aboveFloorSince ? { aboveFloorSince } : {}),
        services,
      },
      now,
    );
    return {
      state,
      publish: services.map((s) => s.name),
      restore: dropped.map((s) => ({ name: s.name, original: s.original })),
      events: [],
      ...(remaining !== undefined ? { requeueAfterSeconds: remaining } : {}),
    };
  }

  if (previous?.phase === "Stopped") {
    const { aboveFloorSince, held, remaining } = hold(input, below, settings);
    if (held) {
      return leave(
        {
          phase: "Inactive",
          reason: "Recovered",
          message: `readiness recovered after a stopped panic: ${readiness}`,
        },
        undefined,
      );
    }
    const { aboveFloorSince: _old, ...rest } = previous;
    return {
      state: { ...rest, ...(aboveFloorSince ? { aboveFloorSince } : {}) },
      publish: [],
      restore: [],
      events: [],
      ...(remaining !== undefined ? { requeueAfterSeconds: remaining } : {}),
    };
  }

  // Inactive or Refused (or never looked): enter when below the floor and nothing forbids it.
  if (!below) {
    // Armed: the pool has reached the floor once. Recorded once; nothing more is written per
    // readiness change.
    if (!previous) {
      const whole = Math.max(input.servingPods, input.desiredReplicas);
      return input.readyPods * 100 >= settings.floorPercent * whole
        ? leave({ phase: "Inactive", reason: "Armed", message: readiness }, undefined)
        : { state: undefined, publish: [], restore: [], events: [] };
    }
    if (previous.phase === "Inactive") return { state: previous, publish: [], restore: [], events: [] };
    return leave({ phase: "Inactive", reason: "AboveFloor", message: readiness }, undefined);
  }
  // Never armed: a new Deployment whose pods are still starting is not a pool that collapsed.
  if (!previous) return { state: undefined, publish: [], restore: [], events: [] };
  const refuse = (reason: string, message: string) =>
    leave(
      { phase: "Refused", reason, message },
      previous?.phase === "Refused" && previous.reason === reason
        ? undefined
        : { type: "Warning", reason: "PanicRefused", message },
    );
  const blocked = blocker(input);
  if (blocked) return refuse(blocked.reason, `${readiness}, but ${blocked.message}`);
  const shared = input.services.filter((s) => s.sharedWith !== undefined);
  const candidates = input.services.filter((s) => s.sharedWith === undefined && !s.publishes);
  if (candidates.length === 0) {
    if (shared.length > 0) {
      return refuse(
        "SharedService",
        `${readiness}, but every Service over these pods also selects other pods (` +
          shared.map((s) => `${s.name} selects ${s.sharedWith}`).join("; ") +
          `): publishNotReadyAddresses there would publish their unready pods too. Give this Deployment a ` +
          `Service of its own.`,
      );
    }
    return refuse(
      "NoService",
      input.services.length > 0
        ? `${readiness}, but every Service over these pods already publishes not-ready addresses`
        : `${readiness}, but no Service in the namespace selects these pods`,
    );
  }
  const services = candidates.map((s) => ({ name: s.name, original: false }));
  const message = panickingMessage(readiness, services, input.services);
  return {
    state: stateOf(
      previous,
      { phase: "Panicking", reason: "BelowFloor", message, readyPercent: percent, services },
      now,
    ),
    publish: services.map((s) => s.name),
    restore: [],
    events: [{ type: "Warning", reason: "PanicEntered", message }],
  };
}
