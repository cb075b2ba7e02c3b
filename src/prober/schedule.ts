// When each target is due: pure (time and randomness are arguments).
//
// Every target gets its own phase — its first check falls uniformly within one interval of being
// added — and every interval is jittered by ±JITTER, so 10,000 targets added by one relist do
// not fire together and do not drift back into step. The next due time follows the previous
// due time, not the probe's end, so a slow target keeps its cadence; a target that fell behind
// (the worker was busy) starts again from now instead of bursting to catch up.

export const JITTER = 0.1;

interface Slot {
  intervalMs: number;
  dueAt: number;
  /** Bumped on every change: heap entries of older generations are stale. */
  generation: number;
}

interface HeapEntry {
  key: string;
  dueAt: number;
  generation: number;
}

export interface Due {
  key: string;
  dueAt: number;
}

export class ProbeSchedule {
  private readonly slots = new Map<string, Slot>();
  private readonly heap: HeapEntry[] = [];
  private generation = 0;
  private readonly random: () => number;

  /** `random` returns a number in [0, 1), like Math.random. */
  constructor(random: () => number) {
    this.random = random;
  }

  get size(): number {
    return this.slots.size;
  }

  has(key: string): boolean {
    return this.slots.has(key);
  }

  /**
   * Adds a target, or changes its interval. A new target is first due within one interval; a
   * changed interval takes effect from now, never later than the check already planned.
   */
  upsert(key: string, intervalMs: number, now: number): void {
    const slot = this.slots.get(key);
    if (slot && slot.intervalMs === intervalMs) return;
    const phase = now + this.random() * intervalMs;
    this.place(key, intervalMs, slot ? Math.min(slot.dueAt, phase) : phase);
  }

  remove(key: string): void {
    this.slots.delete(key);
  }

  /** The earliest due time, or undefined when there is nothing to do. */
  nextDueAt(): number | undefined {
    this.dropStale();
    return this.heap[0]?.dueAt;
  }

  /**
   * Takes every target due at `now` (earliest first), each already rescheduled one jittered
   * interval after its due time (or from now, when that is already past).
   */
  takeDue(now: number): Due[] {
    const due: Due[] = [];
    for (;;) {
      this.dropStale();
      const top = this.heap[0];
      if (!top || top.dueAt > now) return due;
      const slot = this.slots.get(top.key)!;
      due.push({ key: top.key, dueAt: top.dueAt });
      const interval = slot.intervalMs * (1 - JITTER + 2 * JITTER * this.random());
      const next = top.dueAt + interval;
      this.place(top.key, slot.intervalMs, next > now ? next : now + Math.max(1, this.random() * interval));
    }
  }

  private place(key: string, intervalMs: number, dueAt: number): void {
    const generation = ++this.generation;
    this.slots.set(key, { intervalMs, dueAt, generation });
    this.push({ key, dueAt, generation });
  }

  private dropStale(): void {
    for (;;) {
      const top = this.heap[0];
      if (!top || this.slots.get(top.key)?.generation === top.generation) return;
      this.pop();
    }
  }

  // A binary min-heap on dueAt.
  private push(entry: HeapEntry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.dueAt <= entry.dueAt) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = entry;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= h.length) break;
      const right = left + 1;
      const child = right < h.length && h[right]!.dueAt < h[left]!.dueAt ? right : left;
      if (h[child]!.dueAt >= last.dueAt) break;
      h[i] = h[child]!;
      i = child;
    }
    h[i] = last;
  }
}
