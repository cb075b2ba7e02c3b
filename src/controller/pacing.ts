// Release pacing, the thin stateful half (the rules are in src/policy/pacing.ts). The leader keeps
// the rollout slots and the queue in memory, seeded from the records (status.pacing) when it
// starts, so a restarted or newly elected operator resumes the same queue. Every decision is taken
// synchronously (no await between reading the slots and taking one), so concurrent reconciles
// never hand out more than maxConcurrentRollouts slots.
import { Gauge } from "prom-client";
import type { Deployment } from "../api/k8s.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import {
  nextInLine,
  pace,
  queuedAhead,
  rolloutComplete,
  slotHeld,
  type PaceVerdict,
  type PacingSettings,
  type QueueEntry,
  type Slot,
} from "../policy/pacing.ts";
import type { Clock } from "../kube/clock.ts";
import type { CachedTarget } from "./world.ts";

/** While queued, look again at least this often (a timed-out slot frees without any event). */
export const QUEUED_RECHECK_MS = 30_000;

export interface ReleasePacerOptions {
  settings: PacingSettings;
  clock: Clock;
  /** The cached Deployment `namespace/name`. */
  deployment: (key: string) => Deployment | undefined;
  /**
   * Whether the Deployment's template carries the decision `revision` (or a guard keeps it out):
   * admission applied the release. False while unknown (the record does not name it yet).
   */
  applied: (key: string, revision: string, deployment: Deployment) => boolean;
  /** Every cached record (seeds the slots and the queue once). */
  records: () => readonly CachedTarget[];
  /** The revision released for Deployment `namespace/name` (the release index names it), if any. */
  released: (key: string) => string | undefined;
  /** Look at a queued Deployment again (a slot may be free for it). */
  wake: (namespace: string, name: string) => void;
}

export type PacerVerdict = PaceVerdict & {
  /** When to look again while queued. */
  recheckMs?: number;
  /** Since when it waits (ms), while queued. */
  queuedSince?: number;
};

export class ReleasePacer {
  private readonly o: ReleasePacerOptions;
  private readonly slots = new Map<string, Slot>();
  private readonly queue = new Map<string, { revision: string; since: number }>();
  private seeded = false;

  constructor(options: ReleasePacerOptions) {
    this.o = options;
  }

  get settings(): PacingSettings {
    return this.o.settings;
  }

  /**
   * Whether releasing `revision` to the Deployment `key` (`namespace/name`) may happen now.
   * `changesTemplate`: the live template does not carry the decision yet.
   */
  decide(key: string, revision: string, changesTemplate: boolean): PacerVerdict {
    this.seed();
    const now = this.o.clock.now();
    this.sweep(now);
    const deployment = this.o.deployment(key);
    const waiting = this.queue.get(key);
    const entry: QueueEntry = { key, since: waiting?.since ?? now };
    const verdict = pace({
      settings: this.o.settings,
      now,
      revision,
      changesTemplate,
      rolling: deployment !== undefined && !rolloutComplete(deployment),
      ownSlot: this.slots.get(key),
      inUse: [...this.slots.keys()].filter((k) => k !== key).length,
      queuedAhead: queuedAhead(this.entries(), entry),
    });
    if (verdict.release) {
      this.queue.delete(key);
      if (verdict.slot) this.slots.set(key, verdict.slot);
      this.wakeNext();
      return verdict;
    }
    this.queue.set(key, { revision, since: entry.since });
    const expiries = [...this.slots.values()].map((s) => s.since + this.o.settings.slotTimeoutMs - now);
    return {
      ...verdict,
      queuedSince: entry.since,
      recheckMs: Math.max(1_000, Math.min(QUEUED_RECHECK_MS, ...expiries)),
    };
  }

  /** The Deployment's decision is released already: it waits for nothing (its slot, if any, stays). */
  settled(key: string): void {
    if (this.queue.delete(key)) this.wakeNext();
  }

  /** The release write was refused: nothing rolls, so its slot goes to the next in line (its queue place stays). */
  refused(key: string): void {
    if (this.slots.delete(key)) this.wakeNext();
  }

  /** The Deployment is gone, ungoverned or out of Enforce: its slot and its place in the queue go. */
  forget(key: string): void {
    const had = this.slots.delete(key);
    if (this.queue.delete(key) || had) this.wakeNext();
  }

  /** Frees the slots whose rollout completed or timed out, and wakes as many queued Deployments. */
  tick(): void {
    this.seed();
    this.sweep(this.o.clock.now());
    this.wakeNext();
  }

  /** Slots held now (for the metrics). */
  inUse(): number {
    this.sweep(this.o.clock.now());
    return this.slots.size;
  }

  /** Deployments waiting for a slot (for the metrics). */
  queued(): number {
    return this.queue.size;
  }

  private entries(): QueueEntry[] {
    return [...this.queue].map(([key, q]) => ({ key, since: q.since }));
  }

  private sweep(now: number): void {
    for (const [key, slot] of this.slots) {
      const deployment = this.o.deployment(key);
      const applied = deployment !== undefined && this.o.applied(key, slot.revision, deployment);
      if (!slotHeld(slot, deployment, applied, now, this.o.settings)) this.slots.delete(key);
    }
  }

  private wakeNext(): void {
    if (this.queue.size === 0) return;
    const free = this.o.settings.maxConcurrentRollouts - this.slots.size;
    for (const key of nextInLine(this.entries(), free)) {
      const [namespace, name] = key.split("/") as [string, string];
      this.o.wake(namespace, name);
    }
  }

  /** Once, from the records: slots granted (Released with since) and the queue (Queued). */
  private seed(): void {
    if (this.seeded) return;
    this.seeded = true;
    for (const record of this.o.records()) {
      const pacing = record.status?.pacing;
      const key = `${record.metadata.namespace ?? ""}/${record.metadata.name}`;
      const since = pacing?.since ? Date.parse(pacing.since) : NaN;
      if (!pacing || Number.isNaN(since)) continue;
      if (pacing.state === "Queued" && pacing.pendingRevision) {
        this.queue.set(key, { revision: pacing.pendingRevision, since });
      } else if (pacing.state === "Released") {
        const revision = this.o.released(key);
        if (revision !== undefined) this.slots.set(key, { revision, since });
      }
    }
    this.sweep(this.o.clock.now());
  }
}

/** healthgate_rollout_slots_in_use, healthgate_rollout_slots, healthgate_releases_queued. */
export function registerPacingGauges(metrics: HealthgateMetrics, pacer: ReleasePacer): void {
  const registers = [metrics.registry];
  new Gauge({
    name: "healthgate_rollout_slots_in_use",
    help: "Deployments whose paced release is rolling out now (each holds one of maxConcurrentRollouts slots).",
    registers,
    collect() {
      this.set(pacer.inUse());
    },
  });
  new Gauge({
    name: "healthgate_rollout_slots",
    help: "maxConcurrentRollouts: paced releases that may roll at once cluster-wide (0: pacing off).",
    registers,
    collect() {
      this.set(pacer.settings.maxConcurrentRollouts);
    },
  });
  new Gauge({
    name: "healthgate_releases_queued",
    help: "Deployments whose Enforce decision waits for a rollout slot (their record says pacing.state Queued).",
    registers,
    collect() {
      this.set(pacer.queued());
    },
  });
}
