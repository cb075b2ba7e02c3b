import { describe, expect, it } from "vitest";
import { registerStatusGauges } from "../../../src/controller/statusMetrics.ts";
import type { World } from "../../../src/controller/world.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";

const FAMILIES = [
  "healthgate_findings",
  "healthgate_headroom_after_loss_ratio",
  "healthgate_headroom_sufficient",
  "healthgate_detection_seconds",
  "healthgate_rollout_phase",
  "healthgate_rollout_step",
  "healthgate_rollout_admitted_pods",
];

/** The status gauges over a cache holding `policies` and `targets` (only what they read). */
function gaugesOver(world: { policies: unknown[]; targets: unknown[] }) {
  const metrics = createMetrics();
  registerStatusGauges(metrics, {
    policies: { list: () => world.policies },
    targets: { list: () => world.targets },
  } as unknown as World);
  return async () => (await metrics.registry.metrics()).split("\n");
}

/** The status gauges' series (not their HELP and TYPE lines) in a scrape. */
const seriesOf = (lines: string[]) => lines.filter((l) => FAMILIES.some((f) => l.startsWith(`${f}{`)));

const policy = (targets: unknown[]) => ({
  metadata: { namespace: "shop", name: "web-policy" },
  status: { targets },
});

describe("status gauges, computed at scrape time from the cache", () => {
  it("render every series the policies' and records' status holds, and nothing once it is gone", async () => {
    const world = {
      policies: [
        policy([
          {
            name: "web",
            headroom: { afterLossPercent: 107, ok: false },
            detection: [{ container: "app", ejectSeconds: 30, readmitSeconds: 10, restartSeconds: 90 }],
            findings: [
              { rule: "LivenessMissing", severity: "error" },
              { rule: "ReadinessThreshold", severity: "warning" },
            ],
          },
          { name: "api", findings: [{ rule: "LivenessMissing", severity: "error" }] },
        ]),
      ],
      targets: [
        {
          metadata: { namespace: "shop", name: "web" },
          status: { rollout: { phase: "Baking", step: 1, admitted: ["a", "b"] } },
        },
      ],
    };
    const scrape = gaugesOver(world);
    expect(seriesOf(await scrape()).sort()).toEqual(
      [
        'healthgate_findings{rule="LivenessMissing",severity="error"} 2',
        'healthgate_findings{rule="ReadinessThreshold",severity="warning"} 1',
        'healthgate_headroom_after_loss_ratio{namespace="shop",policy="web-policy",deployment="web"} 1.07',
        'healthgate_headroom_sufficient{namespace="shop",policy="web-policy",deployment="web"} 0',
        'healthgate_detection_seconds{namespace="shop",policy="web-policy",deployment="web",container="app",kind="eject"} 30',
        'healthgate_detection_seconds{namespace="shop",policy="web-policy",deployment="web",container="app",kind="readmit"} 10',
        'healthgate_detection_seconds{namespace="shop",policy="web-policy",deployment="web",container="app",kind="restart"} 90',
        'healthgate_rollout_phase{namespace="shop",deployment="web",phase="Baking"} 1',
        'healthgate_rollout_step{namespace="shop",deployment="web"} 1',
        'healthgate_rollout_admitted_pods{namespace="shop",deployment="web"} 2',
      ].sort(),
    );
    const all = await scrape();
    expect(all).toContain("# TYPE healthgate_detection_seconds gauge");
    expect(all).toContain(
      "# HELP healthgate_headroom_sufficient 1 when the survivors stay under the ceiling after the loss, 0 when not.",
    );

    // The policy and the record go: their series go with them at the next scrape.
    world.policies = [];
    world.targets = [];
    const after = await scrape();
    expect(seriesOf(after)).toEqual([]);
    // (the families stay declared)
    for (const family of FAMILIES) expect(after).toContain(`# TYPE ${family} gauge`);
  });
});
