// Polling with a deadline and a failure message that says what was awaited and
// what was last seen, so a timed-out integration test explains itself.
import { setTimeout as delay } from "node:timers/promises";
import { inspect } from "node:util";

export interface WaitOptions {
  /** What is awaited, phrased to follow "waiting for": "deployment web to have 3 available replicas". */
  what: string;
  /** Default 30 s. */
  timeoutMs?: number;
  /** Default 100 ms: the plane is local, polls are cheap. */
  intervalMs?: number;
}

export class WaitTimeoutError extends Error {
  override name = "WaitTimeoutError";
}

/**
 * Calls `probe` until it returns a value that is not undefined, null or false,
 * and returns that value. A probe that throws means "not yet, because …"; so
 * `expect(…)` inside a probe works, and its message becomes the failure message
 * if time runs out:
 *
 *   const deployment = await waitFor(async () => {
 *     const d = await apps.readNamespacedDeployment({ name: "web", namespace });
 *     expect(d.status?.availableReplicas).toBe(3);
 *     return d;
 *   }, { what: "deployment web to have 3 available replicas" });
 */
export async function waitFor<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: WaitOptions,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const started = Date.now();
  let attempts = 0;
  let last: string;
  for (;;) {
    attempts++;
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
      last = `the probe returned ${inspect(value)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : inspect(err);
    }
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) {
      throw new WaitTimeoutError(
        `timed out after ${elapsed} ms (${attempts} attempts) waiting for ${options.what}; last: ${last}`,
      );
    }
    await delay(Math.min(intervalMs, Math.max(0, timeoutMs - elapsed)));
  }
}

/**
 * Asserts that `check` keeps passing (does not throw, returns no false) for
 * `forMs`: the way to show that something does *not* happen, e.g. a rollout
 * that must not progress. Fails at the first violation, with its message.
 */
export async function holdsFor(
  check: () => unknown | Promise<unknown>,
  options: { forMs: number; intervalMs?: number; what: string },
): Promise<void> {
  const until = Date.now() + options.forMs;
  for (;;) {
    let verdict: unknown;
    try {
      verdict = await check();
    } catch (err) {
      throw new Error(
        `expected ${options.what} for ${options.forMs} ms, but: ${err instanceof Error ? err.message : inspect(err)}`,
        {
          cause: err,
        },
      );
    }
    if (verdict === false)
      throw new Error(`expected ${options.what} for ${options.forMs} ms, but the check returned false`);
    if (Date.now() >= until) return;
    await delay(Math.min(options.intervalMs ?? 100, Math.max(0, until - Date.now())));
  }
}
