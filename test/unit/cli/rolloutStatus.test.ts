// `healthgate rollout status`: what it prints from the record, the policy's steps and the pods.
import { describe, expect, it } from "vitest";
import {
  bakeRemainingSeconds,
  formatStatus,
  parseOperator,
  type StatusView,
} from "../../../src/cli/rollout.ts";

const NOW = Date.parse("2026-12-04T10:00:30Z");
const view = (over: Partial<StatusView> = {}): StatusView => ({
  namespace: "shop",
  deployment: "web",
  replicas: 3,
  state: {
    phase: "Baking",
    revision: "new1",
    stableRevision: "old1",
    step: 0,
    weight: 33,
    budget: 1,
    admitted: ["web-new1-a"],
    bakeStartedAt: "2026-12-04T10:00:00Z",
    reason: "Baking",
    message: "step 1/2 (weight 33%) baking since 2026-12-04T10:00:00Z for 2m",
  },
  steps: [{ weight: 33, bake: "2m" }, { weight: 100 }],
  pending: undefined,
  pods: [
    { name: "web-new1-a", revision: "new1", ready: true, gate: "True", gateReason: "Admitted" },
    { name: "web-new1-b", revision: "new1", ready: false },
    { name: "web-old1-a", revision: "old1", ready: true, gate: "True", gateReason: "StableRevision" },
  ],
  now: NOW,
  ...over,
});

describe("rollout status", () => {
  it.each([
    { name: "baking: 90 s of 2 m left", v: view(), want: 90 },
    { name: "a bake that has run out", v: view({ now: NOW + 600_000 }), want: 0 },
    { name: "not baking", v: view({ state: { ...view().state!, phase: "Progressing" } }), want: undefined },
  ])("bake remaining: $name", ({ v, want }) => expect(bakeRemainingSeconds(v)).toBe(want));

  it("shows the step, the bake remaining, admitted/total, each pod's gate and why it waits", () => {
    const text = formatStatus(view({ pending: "promote/new1/1" }));
    expect(text).toContain("phase:     Baking (Baking)");
    expect(text).toContain("revision:  new1 (stable old1)");
    expect(text).toContain("step:      1/2 (weight 33%), bake 2m, 90s remaining");
    expect(text).toContain("admitted:  1/3 new pods (this step admits 1)");
    expect(text).toContain("why:       step 1/2");
    expect(text).toContain("pending:   promote/new1/1");
    expect(text).toContain("web-new1-a  revision new1  Ready  gate True Admitted");
    expect(text).toContain("web-new1-b  revision new1  not Ready  gate -");
    expect(text).toContain("web-old1-a  revision old1 (stable)  Ready  gate True StableRevision");
  });

  it("shows a rollback: where it stands, and who wrote the failed template back", () => {
    const state = { ...view().state!, phase: "Aborted" as const, reason: "RollbackOverridden" };
    const text = formatStatus(
      view({
        state: {
          ...state,
          rollback: {
            phase: "Overridden",
            failedRevision: "new1",
            toRevision: "old1",
            at: "2026-12-04T10:00:10Z",
            manager: "argocd-controller",
          },
        },
      }),
    );
    expect(text).toContain(
      "rollback:  Overridden: revision new1 → stable old1 at 2026-12-04T10:00:10Z; written back by field manager argocd-controller",
    );
    expect(formatStatus(view())).not.toContain("rollback:");
  });

  it("shows each pod's latest deep check from the operator's report, or why it is not shown", () => {
    const text = formatStatus(
      view({
        deepChecks: {
          pods: [
            {
              pod: "web-new1-a",
              cohort: "new",
              standing: "Passing",
              consecutivePasses: 4,
              consecutiveFailures: 0,
              consecutiveErrors: 0,
              latest: {
                revision: "new1",
                outcome: "pass",
                statusCode: 200,
                durationMs: 12,
                bytesRead: 2,
                truncated: false,
                at: "2026-12-04T10:00:27Z",
              },
            },
            {
              pod: "web-old1-a",
              cohort: "stable",
              standing: "Pending",
              consecutivePasses: 0,
              consecutiveFailures: 0,
              consecutiveErrors: 1,
              latest: {
                revision: "old1",
                outcome: "error",
                durationMs: 1000,
                bytesRead: 0,
                truncated: false,
                errorClass: "timeout-before-answer",
                at: "2026-12-04T10:00:29Z",
              },
            },
          ],
          unchecked: [{ pod: "web-new1-b", cohort: "new", reason: "HostNetwork" }],
        },
      }),
    );
    expect(text).toContain("gate True Admitted  deep-check pass 200 in 12 ms 3s ago (Passing)");
    expect(text).toContain("gate -  deep-check unchecked (HostNetwork)");
    expect(text).toContain(
      "StableRevision  deep-check error timeout-before-answer in 1000 ms 1s ago (Pending)",
    );
    expect(formatStatus(view({ deepChecks: { unavailable: "forbidden to get services/proxy" } }))).toContain(
      "deep checks: not shown: forbidden to get services/proxy",
    );
  });

  it("parses --operator", () => {
    expect(parseOperator("healthgate/healthgate-metrics:http-metrics")).toEqual({
      namespace: "healthgate",
      service: "healthgate-metrics",
      port: "http-metrics",
    });
    expect(parseOperator("ops/hg:8080")?.port).toBe("8080");
    expect(parseOperator("hg-metrics:8080")).toBeUndefined();
    expect(parseOperator("ops/hg/x:1")).toBeUndefined();
  });

  it("says when there is no rollout state", () => {
    expect(formatStatus(view({ state: undefined }))).toContain("no rollout state recorded");
  });
});
