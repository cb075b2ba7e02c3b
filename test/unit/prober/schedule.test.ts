// ProbeSchedule: due times with injected time and randomness.
import { describe, expect, it } from "vitest";
import { JITTER, ProbeSchedule } from "../../../src/prober/schedule.ts";

/** A seeded generator (mulberry32), so the spread is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("ProbeSchedule", () => {
  it("spreads 10,000 targets added at once over their interval: no second holds more than 15 % of them", () => {
    const s = new ProbeSchedule(seeded(1));
    for (let i = 0; i < 10_000; i++) s.upsert(`pod-${i}`, 10_000, 0);
    const seen = new Set<string>();
    const perSecond = Array.from(
      { length: 10 },
      (_, sec) =>
        s.takeDue((sec + 1) * 1000).filter((d) => {
          const first = !seen.has(d.key);
          seen.add(d.key);
          return first;
        }).length,
    );
    expect(perSecond.reduce((a, b) => a + b)).toBe(10_000);
    expect(Math.max(...perSecond)).toBeLessThan(1_500);
    expect(Math.min(...perSecond)).toBeGreaterThan(500);
  });

  it("reschedules each target one jittered interval after its due time", () => {
    const values = [0.5, 0, 0.999];
    const s = new ProbeSchedule(() => values.shift() ?? 0.5);
    s.upsert("a", 1_000, 0); // first due at 500
    expect(s.nextDueAt()).toBe(500);
    expect(s.takeDue(499)).toEqual([]);
    expect(s.takeDue(510)).toEqual([{ key: "a", dueAt: 500 }]);
    // random 0 → the shortest interval: 1,000 × (1 − JITTER)
    expect(s.nextDueAt()).toBe(500 + 1_000 * (1 - JITTER));
    s.takeDue(2_000);
    // random 0.999 → almost the longest: 1,000 × (1 + JITTER)
    expect(s.nextDueAt()).toBeCloseTo(1_400 + 1_000 * (1 + JITTER * 0.998), 5);
  });

  it("a target that fell far behind starts again from now instead of catching up in a burst", () => {
    const s = new ProbeSchedule(() => 0.5);
    s.upsert("a", 1_000, 0);
    expect(s.takeDue(60_000)).toHaveLength(1);
    const next = s.nextDueAt()!;
    expect(next).toBeGreaterThan(60_000);
    expect(next).toBeLessThanOrEqual(61_100);
  });

  it("removes targets, and an unchanged upsert keeps the plan", () => {
    const s = new ProbeSchedule(seeded(2));
    s.upsert("a", 1_000, 0);
    s.upsert("b", 1_000, 0);
    const planned = s.nextDueAt();
    s.upsert("a", 1_000, 0);
    s.upsert("b", 1_000, 0);
    expect(s.nextDueAt()).toBe(planned);
    s.remove("a");
    expect(s.size).toBe(1);
    expect(s.takeDue(5_000).map((d) => d.key)).toEqual(["b"]);
  });

  it("a shorter interval takes effect now, never later than planned", () => {
    const values = [0.9, 0.1];
    const s = new ProbeSchedule(() => values.shift() ?? 0.5);
    s.upsert("a", 10_000, 0); // due at 9,000
    s.upsert("a", 1_000, 0); // 0.1 × 1,000 → due at 100
    expect(s.nextDueAt()).toBe(100);
  });
});
