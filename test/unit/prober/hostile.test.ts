// Each hostile kind of target against the real probe, over real sockets on loopback (no mock:
// the kernel's resets and Node's HTTP parser are what the prober meets in a cluster). Each test
// has a time bound of its own: a probe that waited longer than its timeout would fail it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeOnce } from "../../../src/prober/httpProbe.ts";
import { BODY_CAP_BYTES, type ProbeTarget } from "../../../src/prober/types.ts";
import { deepCheckOutcome } from "../../../src/policy/rollout/deepCheck.ts";
import {
  startLoopbackServers,
  TARGET_KINDS,
  type RunningServers,
  type TargetKind,
} from "../../support/loopbackTargets.ts";

const TIMEOUT_MS = 1_000;
const measure = (target: ProbeTarget) => probeOnce(target).measurement;
/** The test's own bound: the probe's timeout plus room for a loaded machine (a drip would take 37 s). */
const BOUND_MS = TIMEOUT_MS + 4_000;

let farm: RunningServers;
beforeAll(async () => {
  farm = await startLoopbackServers(Object.fromEntries(TARGET_KINDS.map((k) => [k, 1])), {
    firstIp: "127.21.0.1",
  });
});
afterAll(() => farm?.close());

export function targetOf(kind: TargetKind, extra: Partial<ProbeTarget> = {}): ProbeTarget {
  const server = farm.servers.find((s) => s.kind === kind)!;
  return {
    key: `uid-${kind}`,
    namespace: "shop",
    pod: `web-${kind}`,
    revision: "abc123",
    cohort: "new",
    ip: server.ip,
    port: server.port,
    scheme: server.scheme,
    path: "/health/deep",
    intervalMs: 5_000,
    timeoutMs: TIMEOUT_MS,
    expect: { statuses: [200], bodyContains: "deep ok" },
    ...extra,
  };
}

describe("a probe against each kind of target returns a measurement, bounded by its timeout and the body cap", () => {
  it.each([
    { kind: "healthy", statusCode: 200, errorClass: undefined, outcome: "pass", bodyMatched: true },
    { kind: "tls-healthy", statusCode: 200, errorClass: undefined, outcome: "pass", bodyMatched: true },
    { kind: "failing", statusCode: 503, errorClass: undefined, outcome: "fail", bodyMatched: false },
    { kind: "silent", statusCode: undefined, errorClass: "timeout-before-answer", outcome: "error" },
    { kind: "drip-headers", statusCode: undefined, errorClass: "timeout-before-answer", outcome: "error" },
    { kind: "slow-tls", statusCode: undefined, errorClass: "timeout-before-answer", outcome: "error" },
    { kind: "drip-body", statusCode: 200, errorClass: "timeout-during-body", outcome: "fail" },
    { kind: "reset-mid-header", statusCode: undefined, errorClass: "reset", outcome: "error" },
    { kind: "garbage", statusCode: undefined, errorClass: "protocol", outcome: "fail" },
    { kind: "redirect", statusCode: 302, errorClass: undefined, outcome: "fail", bodyMatched: false },
  ] as const)("$kind → $outcome", { timeout: BOUND_MS }, async (row) => {
    const target = targetOf(row.kind);
    const m = await measure(target);
    expect(m.statusCode).toBe(row.statusCode);
    expect(m.errorClass).toBe(row.errorClass);
    if ("bodyMatched" in row) expect(m.bodyMatched).toBe(row.bodyMatched);
    expect(deepCheckOutcome(m, target.expect)).toBe(row.outcome);
    expect(m.bytesRead).toBeLessThanOrEqual(BODY_CAP_BYTES);
  });

  it(
    "a 10 MiB body: reads the cap (one chunk past it at most), closes the connection, judges the status",
    { timeout: BOUND_MS },
    async () => {
      const m = await measure(targetOf("huge-body", { expect: { statuses: [200] } }));
      expect(m).toMatchObject({ statusCode: 200, truncated: true });
      expect(m.errorClass).toBeUndefined();
      expect(m.bytesRead).toBeGreaterThanOrEqual(BODY_CAP_BYTES);
      expect(m.bytesRead).toBeLessThan(2 * BODY_CAP_BYTES);
    },
  );

  it("bodyContains looks only at the first 64 KiB", { timeout: BOUND_MS }, async () => {
    const m = await measure(targetOf("huge-body", { expect: { statuses: [200], bodyContains: "deep ok" } }));
    expect(m).toMatchObject({ statusCode: 200, truncated: true, bodyMatched: false });
  });

  it("a redirect to another host is not followed", { timeout: BOUND_MS }, async () => {
    const m = await measure(targetOf("redirect"));
    expect(m.statusCode).toBe(302);
    expect(farm.redirectFollowed()).toBe(0);
  });

  it("nothing listening → refused, a transport error", { timeout: BOUND_MS }, async () => {
    const m = await measure(targetOf("healthy", { ip: "127.21.255.254", port: 9 }));
    expect(m.errorClass).toBe("refused");
    expect(deepCheckOutcome(m, { statuses: [200] })).toBe("error");
  });

  it(
    "the wrong scheme: HTTPS against plain HTTP → tls; HTTP against TLS → reset (Node's TLS server drops it)",
    { timeout: BOUND_MS },
    async () => {
      expect((await measure(targetOf("healthy", { scheme: "HTTPS" }))).errorClass).toBe("tls");
      expect((await measure(targetOf("tls-healthy", { scheme: "HTTP" }))).errorClass).toBe("reset");
    },
  );

  it("cancel() ends the probe at once", { timeout: BOUND_MS }, async () => {
    const probe = probeOnce(targetOf("silent", { timeoutMs: 60_000 }));
    setTimeout(() => probe.cancel(), 50);
    expect(await probe.measurement).toMatchObject({ errorClass: "other", detail: "cancelled" });
  });
});
