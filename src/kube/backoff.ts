// Retry timing shared by the informers (watch restarts), the work queue (failed reconciles)
// and leader election. Pure apart from the injected random source and clock.
import type { Clock } from "./clock.ts";

export interface BackoffPolicy {
  /** Delay before the first retry. */
  baseMs: number;
  /** No delay grows beyond this. */
  capMs: number;
}

/** base × 2^attempt, capped; attempt 0 is the first retry. */
export function exponentialDelay(attempt: number, { baseMs, capMs }: BackoffPolicy): number {
  // Clamp the exponent so 2^attempt never becomes Infinity (Infinity × 0 would be NaN).
  return Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 64));
}

/**
 * "Full jitter": uniform in [0, exponentialDelay). When an API server restarts, every watch
 * of every replica breaks at the same instant; spreading the retries over the whole window
 * keeps them from arriving as one thundering herd.
 */
export function fullJitterDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  return Math.floor(random() * exponentialDelay(attempt, policy));
}

/**
 * Token bucket shared by every key of a queue: whatever a key's own backoff says, retries as a
 * whole never exceed `perSecond` after an initial `burst` (client-go's default controller rate
 * limiter is 10/s with a burst of 100). Tokens may go negative: each reservation waits its turn.
 */
export class TokenBucket {
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private updatedAt: number;

  constructor(perSecond: number, burst: number, clock: Clock) {
    this.perSecond = perSecond;
    this.burst = burst;
    this.clock = clock;
    this.tokens = burst;
    this.updatedAt = clock.now();
  }

  /** Takes one token and returns how long its holder must wait before using it (ms). */
  reserve(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.perSecond);
    this.updatedAt = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.perSecond) * 1000);
  }
}
