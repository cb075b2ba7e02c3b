import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { exponentialDelay, fullJitterDelay, TokenBucket } from "../../../src/kube/backoff.ts";
import { FakeClock } from "./fakeClock.ts";

const workQueuePolicy = { baseMs: 5, capMs: 300_000 };

describe("exponentialDelay", () => {
  it.each([
    { name: "first retry waits the base", attempt: 0, want: 5 },
    { name: "doubles per attempt", attempt: 1, want: 10 },
    { name: "2^10 × 5 ms", attempt: 10, want: 5_120 },
    { name: "caps at 5 min (2^16 × 5 ms > 300 s)", attempt: 16, want: 300_000 },
    { name: "stays capped far beyond, no Infinity or NaN", attempt: 5_000, want: 300_000 },
    { name: "negative attempts count as the first", attempt: -3, want: 5 },
  ])("$name", ({ attempt, want }) => {
    expect(exponentialDelay(attempt, workQueuePolicy)).toBe(want);
  });
});

describe("fullJitterDelay", () => {
  const policy = { baseMs: 1_000, capMs: 30_000 };

  it.each([
    { name: "random 0 → no wait", attempt: 3, random: 0, want: 0 },
    { name: "random ½ → half the window (8 s of 16 s)", attempt: 4, random: 0.5, want: 8_000 },
    { name: "the window is capped at 30 s", attempt: 20, random: 0.5, want: 15_000 },
  ])("$name", ({ attempt, random, want }) => {
    expect(fullJitterDelay(attempt, policy, () => random)).toBe(want);
  });

  it("always lies in [0, min(cap, base × 2^attempt))", () => {
    fc.assert(
      fc.property(
        fc.nat(200),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const delay = fullJitterDelay(attempt, policy, () => r);
          return delay >= 0 && delay < Math.max(1, exponentialDelay(attempt, policy));
        },
      ),
    );
  });
});

describe("TokenBucket", () => {
  it("lets a burst through, then spaces reservations at the rate", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 2, clock);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([
      0, 0, 100, 200,
    ]);
  });

  it("refills with time, never beyond the burst", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 2, clock);
    bucket.reserve();
    bucket.reserve();
    await clock.advance(60_000);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 100]);
  });
});
