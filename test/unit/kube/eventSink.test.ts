// src/kube/eventSink.ts: Events leave the reconcile and are created in the background, oldest
// first, a bounded number at once; what cannot be sent is dropped and counted, never thrown.
// The API server here is a function whose answers each test controls (what is under test is
// the queue's order and bounds, which no server decides).
import { ApiException } from "@kubernetes/client-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { KubeObject } from "../../../src/kube/client.ts";
import { EventSink, type EventSinkOptions } from "../../../src/kube/eventSink.ts";
import { createLogger } from "../../../src/observability/logger.ts";

const event = (name: string): KubeObject =>
  ({
    metadata: { name, namespace: "shop" },
    reason: "Flipped",
    regarding: { kind: "Deployment", name },
  }) as KubeObject;

/** A create whose answers the test releases one by one. */
function server() {
  const calls: { name: string; resolve: () => void; reject: (err: unknown) => void; signal: AbortSignal }[] =
    [];
  const create = (e: KubeObject, signal: AbortSignal) =>
    new Promise<unknown>((resolve, reject) => {
      calls.push({ name: e.metadata.name, resolve: () => resolve(e), reject, signal });
      signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
    });
  return { calls, create };
}

const tick = () => new Promise((r) => setImmediate(r));

function counter() {
  const counts: Record<string, number> = {};
  const count = (key: string) => void (counts[key] = (counts[key] ?? 0) + 1);
  return { counts, count };
}

/** A sink over a server() whose answers the test releases, counting drops and refusals. */
function sinkOver(options: Partial<EventSinkOptions> = {}) {
  const api = server();
  const counts = counter();
  const sink = new EventSink({
    create: api.create,
    logger: createLogger("silent"),
    concurrency: 1,
    dropped: counts.count,
    refused: () => counts.count("refused"),
    ...options,
  });
  return { api, counts: counts.counts, sink };
}

describe("EventSink", () => {
  it("returns at once and creates the Events oldest first, at most `concurrency` at a time", async () => {
    const api = server();
    const pending: number[] = [];
    const sink = new EventSink({
      create: api.create,
      logger: createLogger("silent"),
      concurrency: 2,
      pending: (n) => void pending.push(n),
    });
    const signal = new AbortController().signal;
    for (const name of ["a", "b", "c", "d"]) sink.record(event(name), signal);
    expect(api.calls.map((c) => c.name)).toEqual(["a", "b"]);
    expect(sink.size).toBe(4);
    api.calls[1]!.resolve();
    await tick();
    expect(api.calls.map((c) => c.name)).toEqual(["a", "b", "c"]);
    api.calls[0]!.resolve();
    api.calls[2]!.resolve();
    await tick();
    expect(api.calls.map((c) => c.name)).toEqual(["a", "b", "c", "d"]);
    const drained = sink.drained();
    api.calls[3]!.resolve();
    await drained;
    expect(sink.size).toBe(0);
    expect(pending.at(-1)).toBe(0);
  });

  it("drops what is over its capacity, counted, and sends the rest", async () => {
    const { api, counts, sink } = sinkOver({ capacity: 2 });
    const signal = new AbortController().signal;
    for (const name of ["a", "b", "c", "d"]) sink.record(event(name), signal);
    // "a" is in flight; "b" and "c" wait; "d" is over the 2 waiting.
    expect(counts).toEqual({ QueueFull: 1 });
    for (let i = 0; i < 3; i++) {
      api.calls[i]!.resolve();
      await tick();
    }
    expect(api.calls.map((c) => c.name)).toEqual(["a", "b", "c"]);
  });

  it("never sends an Event of a term that ended, and ends the one in flight", async () => {
    const { api, counts, sink } = sinkOver();
    const term = new AbortController();
    sink.record(event("a"), term.signal);
    sink.record(event("b"), term.signal);
    const next = new AbortController().signal;
    sink.record(event("c"), next);
    term.abort();
    await tick();
    expect(api.calls.map((c) => c.name)).toEqual(["a", "c"]);
    expect(counts).toEqual({ TermEnded: 2 });
    api.calls[1]!.resolve();
    await sink.drained();
  });

  it("counts a refused Event as a refused write and goes on with the next", async () => {
    const { api, counts, sink } = sinkOver();
    const signal = new AbortController().signal;
    sink.record(event("a"), signal);
    sink.record(event("b"), signal);
    api.calls[0]!.reject(new ApiException(403, "Forbidden", "events is forbidden", {}));
    await tick();
    expect(counts).toEqual({ refused: 1 });
    expect(api.calls.map((c) => c.name)).toEqual(["a", "b"]);
    api.calls[1]!.resolve();
    await sink.drained();
  });

  describe("rate", () => {
    afterEach(() => void vi.useRealTimers());

    it("creates at most `burst` at once, then `perSecond`, and never more than the queue holds", async () => {
      vi.useFakeTimers();
      const created: string[] = [];
      const sink = new EventSink({
        create: (e) => {
          created.push(e.metadata.name);
          return Promise.resolve();
        },
        logger: createLogger("silent"),
        concurrency: 5,
        perSecond: 10,
        burst: 2,
        now: () => Date.now(),
      });
      const signal = new AbortController().signal;
      for (const name of ["a", "b", "c", "d", "e"]) sink.record(event(name), signal);
      await vi.advanceTimersByTimeAsync(0);
      expect(created).toEqual(["a", "b"]);
      await vi.advanceTimersByTimeAsync(100);
      expect(created).toEqual(["a", "b", "c"]);
      await vi.advanceTimersByTimeAsync(100);
      expect(created).toEqual(["a", "b", "c", "d"]);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(created).toEqual(["a", "b", "c", "d", "e"]);
      await sink.drained();
      // Idle for a second: the bucket is full again (2), no more.
      await vi.advanceTimersByTimeAsync(1_000);
      for (const name of ["f", "g", "h"]) sink.record(event(name), signal);
      await vi.advanceTimersByTimeAsync(0);
      expect(created.slice(5)).toEqual(["f", "g"]);
      await vi.advanceTimersByTimeAsync(100);
      expect(created.slice(5)).toEqual(["f", "g", "h"]);
    });
  });
});
