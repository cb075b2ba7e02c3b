import { describe, expect, it } from "vitest";
import {
  afterLossPercent,
  carries,
  hpaLoad,
  type IntOrPercent,
  lossAt,
  type LossModel,
  loadPerSurvivorPercent,
  maxSafeMaxUnavailable,
  requiredReplicas,
  resolveFenceposts,
  resolveIntOrPercent,
  safeMinReplicas,
  safeTargetPercent,
  staticLoad,
  zoneSpread,
} from "../../../src/policy/headroom/math.ts";
import { rolling } from "./builders.ts";

describe("resolveIntOrPercent (apimachinery GetScaledValueFromIntOrPercent)", () => {
  const rows: {
    name: string;
    value: IntOrPercent;
    total: number;
    down: number | undefined;
    up: number | undefined;
  }[] = [
    { name: "an integer is taken as is", value: 2, total: 10, down: 2, up: 2 },
    { name: "an integer larger than the total is not capped", value: 7, total: 3, down: 7, up: 7 },
    { name: "25% of 4", value: "25%", total: 4, down: 1, up: 1 }, // 1.0
    { name: "25% of 3", value: "25%", total: 3, down: 0, up: 1 }, // 0.75
    { name: "25% of 2", value: "25%", total: 2, down: 0, up: 1 }, // 0.5
    { name: "25% of 1", value: "25%", total: 1, down: 0, up: 1 }, // 0.25
    { name: "25% of 10", value: "25%", total: 10, down: 2, up: 3 }, // 2.5
    { name: "33% of 3", value: "33%", total: 3, down: 0, up: 1 }, // 0.99
    { name: "33% of 10", value: "33%", total: 10, down: 3, up: 4 }, // 3.3
    { name: "33% of 100", value: "33%", total: 100, down: 33, up: 33 }, // 33.0
    { name: "50% of 1", value: "50%", total: 1, down: 0, up: 1 }, // 0.5
    { name: "100% of 3", value: "100%", total: 3, down: 3, up: 3 },
    { name: "0% of 5", value: "0%", total: 5, down: 0, up: 0 },
    { name: "a percent of 0 replicas", value: "25%", total: 0, down: 0, up: 0 },
    { name: "a leading + is accepted (strconv.Atoi)", value: "+10%", total: 20, down: 2, up: 2 },
    {
      name: "a bare number string is not a percentage",
      value: "25",
      total: 4,
      down: undefined,
      up: undefined,
    },
    { name: "garbage", value: "a lot", total: 4, down: undefined, up: undefined },
    { name: "a negative percentage", value: "-5%", total: 4, down: undefined, up: undefined },
    { name: "a negative integer", value: -1, total: 4, down: undefined, up: undefined },
    { name: "a fractional integer", value: 1.5, total: 4, down: undefined, up: undefined },
  ];
  it.each(rows)("$name", ({ value, total, down, up }) => {
    expect(resolveIntOrPercent(value, total, false)).toBe(down);
    expect(resolveIntOrPercent(value, total, true)).toBe(up);
  });
});

describe("resolveFenceposts (Deployment controller: surge rounds up, unavailable down, both 0 → 1 unavailable)", () => {
  const rows: {
    name: string;
    surge: IntOrPercent | undefined;
    unavailable: IntOrPercent | undefined;
    replicas: number;
    want: { maxSurge: number; maxUnavailable: number } | undefined;
  }[] = [
    {
      name: "defaults at 1 replica",
      surge: "25%",
      unavailable: "25%",
      replicas: 1,
      want: { maxSurge: 1, maxUnavailable: 0 },
    }, // 0.25 ↑ / ↓
    {
      name: "defaults at 2 replicas",
      surge: "25%",
      unavailable: "25%",
      replicas: 2,
      want: { maxSurge: 1, maxUnavailable: 0 },
    }, // 0.5
    {
      name: "defaults at 3 replicas",
      surge: "25%",
      unavailable: "25%",
      replicas: 3,
      want: { maxSurge: 1, maxUnavailable: 0 },
    }, // 0.75
    {
      name: "defaults at 4 replicas",
      surge: "25%",
      unavailable: "25%",
      replicas: 4,
      want: { maxSurge: 1, maxUnavailable: 1 },
    },
    {
      name: "defaults at 10 replicas",
      surge: "25%",
      unavailable: "25%",
      replicas: 10,
      want: { maxSurge: 3, maxUnavailable: 2 },
    }, // 2.5
    {
      name: "33% at 3 replicas",
      surge: "33%",
      unavailable: "33%",
      replicas: 3,
      want: { maxSurge: 1, maxUnavailable: 0 },
    }, // 0.99
    {
      name: "100% unavailable",
      surge: 0,
      unavailable: "100%",
      replicas: 3,
      want: { maxSurge: 0, maxUnavailable: 3 },
    },
    {
      name: "surge 0, 25% of 3 rounds to 0 → 1",
      surge: 0,
      unavailable: "25%",
      replicas: 3,
      want: { maxSurge: 0, maxUnavailable: 1 },
    },
    {
      name: "0% and 33% of 2 → 1",
      surge: "0%",
      unavailable: "33%",
      replicas: 2,
      want: { maxSurge: 0, maxUnavailable: 1 },
    }, // 0.66
    {
      name: "both literally 0 → 1",
      surge: 0,
      unavailable: "0%",
      replicas: 5,
      want: { maxSurge: 0, maxUnavailable: 1 },
    },
    {
      name: "absent counts as 0",
      surge: undefined,
      unavailable: undefined,
      replicas: 4,
      want: { maxSurge: 0, maxUnavailable: 1 },
    },
    {
      name: "surge 1, unavailable 0 stays 0",
      surge: 1,
      unavailable: 0,
      replicas: 5,
      want: { maxSurge: 1, maxUnavailable: 0 },
    },
    { name: "invalid maxUnavailable", surge: 1, unavailable: "one", replicas: 5, want: undefined },
  ];
  it.each(rows)("$name", ({ surge, unavailable, replicas, want }) => {
    expect(resolveFenceposts(surge, unavailable, replicas)).toEqual(want);
  });
});

describe("load per survivor u × N / (N − k − r), decided exactly", () => {
  const rows: {
    name: string;
    u: number;
    n: number;
    lost: number;
    c: number;
    after: number | undefined;
    ok: boolean;
  }[] = [
    { name: "4 × 80%, lose 1", u: 80, n: 4, lost: 1, c: 90, after: 107, ok: false }, // 106.7%
    { name: "5 × 80%, lose 1", u: 80, n: 5, lost: 1, c: 90, after: 100, ok: false }, // 100.0%
    { name: "5 × 70%, lose 1", u: 70, n: 5, lost: 1, c: 90, after: 88, ok: true }, // 87.5%
    { name: "10 × 81%, lose 1: exactly the ceiling", u: 81, n: 10, lost: 1, c: 90, after: 90, ok: true }, // 90.0% (81 × (10/9) is 90.00000000000001 in floats)
    { name: "3 × 60%, lose 1: exactly the ceiling", u: 60, n: 3, lost: 1, c: 90, after: 90, ok: true }, // 90.0%
    { name: "8 × 80%, lose 1", u: 80, n: 8, lost: 1, c: 90, after: 92, ok: false }, // 91.4%
    { name: "9 × 80%, lose 1", u: 80, n: 9, lost: 1, c: 90, after: 90, ok: true }, // 90.0%
    { name: "just over: 10 × 82%, lose 1", u: 82, n: 10, lost: 1, c: 90, after: 92, ok: false }, // 91.1%
    { name: "1 replica, lose 1: no survivor", u: 10, n: 1, lost: 1, c: 90, after: undefined, ok: false }, // ∞
    { name: "2 × 40%, lose 1", u: 40, n: 2, lost: 1, c: 90, after: 80, ok: true }, // 80.0%
    { name: "2 × 50%, lose 1", u: 50, n: 2, lost: 1, c: 90, after: 100, ok: false }, // 100.0%
    { name: "3 × 30%, lose 1 + rollout 1", u: 30, n: 3, lost: 2, c: 90, after: 90, ok: true }, // 90.0%
    { name: "losses beyond N", u: 30, n: 3, lost: 5, c: 90, after: undefined, ok: false }, // ∞, not a crash
    { name: "ceiling 100%", u: 75, n: 4, lost: 1, c: 100, after: 100, ok: true }, // 100.0%
    { name: "rounded up, not to nearest", u: 67, n: 3, lost: 1, c: 100, after: 101, ok: false }, // 100.5%
  ];
  it.each(rows)("$name", ({ u, n, lost, c, after, ok }) => {
    const load = staticLoad(u, n);
    expect(afterLossPercent(load, n, lost)).toBe(after);
    expect(carries(load, n, lost, c)).toBe(ok);
    if (after === undefined) expect(loadPerSurvivorPercent(load, n, lost)).toBe(Number.POSITIVE_INFINITY);
    // The rounded-up figure is above the ceiling exactly when the verdict is "not ok".
    if (after !== undefined) expect(after <= c).toBe(ok);
  });
});

describe("lossAt: k, the largest zone when worse, plus the rollout", () => {
  const zone = { zone: "a", pods: 3, of: 5 };
  const rows: { name: string; model: LossModel; n: number; want: ReturnType<typeof lossAt> }[] = [
    {
      name: "k alone",
      model: { tolerate: 1 },
      n: 4,
      want: { failures: 1, zoneDecides: false, rollout: 0, total: 1 },
    },
    {
      name: "rollout at 25% of 4",
      model: { tolerate: 1, rollout: rolling("25%", "25%") },
      n: 4,
      want: { failures: 1, zoneDecides: false, rollout: 1, total: 2 },
    },
    {
      name: "rollout at 25% of 3 rounds down to 0",
      model: { tolerate: 1, rollout: rolling("25%", "25%") },
      n: 3,
      want: { failures: 1, zoneDecides: false, rollout: 0, total: 1 },
    },
    {
      name: "Recreate takes all",
      model: { tolerate: 1, rollout: { strategy: "Recreate" } },
      n: 4,
      want: { failures: 1, zoneDecides: false, rollout: 4, total: 5 },
    },
    {
      name: "zone a (3 of 5) is worse than k = 1",
      model: { tolerate: 1, zone },
      n: 5,
      want: { failures: 3, zoneDecides: true, rollout: 0, total: 3 },
    },
    {
      name: "k = 4 is worse than zone a",
      model: { tolerate: 4, zone },
      n: 5,
      want: { failures: 4, zoneDecides: false, rollout: 0, total: 4 },
    },
    {
      name: "zone share scales with N: 3/5 of 10",
      model: { tolerate: 1, zone },
      n: 10,
      want: { failures: 6, zoneDecides: true, rollout: 0, total: 6 },
    },
    {
      name: "zone share rounds up: 3/5 of 4",
      model: { tolerate: 1, zone },
      n: 4,
      want: { failures: 3, zoneDecides: true, rollout: 0, total: 3 },
    }, // 2.4
  ];
  it.each(rows)("$name", ({ model, n, want }) => expect(lossAt(model, n)).toEqual(want));
});

describe("requiredReplicas (Static/Metrics: today's total u × N is fixed)", () => {
  const rows: {
    name: string;
    u: number;
    n: number;
    model: LossModel;
    c?: number;
    want: number | undefined;
  }[] = [
    { name: "4 × 80%, k = 1", u: 80, n: 4, model: { tolerate: 1 }, want: 5 }, // ceil(320/90) + 1: 5 leave 4 at 80%
    { name: "already enough: 5 × 70%", u: 70, n: 5, model: { tolerate: 1 }, want: 5 }, // 4 at 87.5%
    { name: "more than enough: 10 × 30%", u: 30, n: 10, model: { tolerate: 1 }, want: 5 }, // 300/90 → 4 + 1; 4 at 75%
    { name: "exactly at the ceiling: 3 × 60%", u: 60, n: 3, model: { tolerate: 1 }, want: 3 }, // 2 at 90%
    { name: "1 replica at 50%", u: 50, n: 1, model: { tolerate: 1 }, want: 2 }, // 1 at 50%
    { name: "2 × 50%", u: 50, n: 2, model: { tolerate: 1 }, want: 3 }, // 2 at 50%
    { name: "k = 2", u: 80, n: 4, model: { tolerate: 2 }, want: 6 }, // 4 at 80%
    {
      name: "4 × 80% during a 25% rollout",
      u: 80,
      n: 4,
      model: { tolerate: 1, rollout: rolling("25%", "25%") },
      want: 6,
    }, // 5: r=1 → 3 at 106.7%; 6: r=1 → 4 at 80%
    {
      // The closed form with r resolved at today's N (r = 2 of 10) says ceil(800/90) + 1 + 2 = 12,
      // but at 12 a 25% maxUnavailable takes 3: 8 survivors at 100%. 13 leaves 9 at 88.9%.
      name: "percent r depends on N: 10 × 80% during a 25% rollout",
      u: 80,
      n: 10,
      model: { tolerate: 1, rollout: rolling("25%", "25%") },
      want: 13,
    },
    {
      // Without the fencepost rule 4 would do (3 at 66.7%); with maxSurge 0, 10% of 4 rounds to 0 and becomes 1.
      name: "fencepost: surge 0 and 10% of 4 → maxUnavailable 1",
      u: 50,
      n: 4,
      model: { tolerate: 1, rollout: rolling(0, "10%") },
      want: 5,
    },
    {
      name: "2 × 50% during a rollout at 25% of 2 (rounds to 0)",
      u: 50,
      n: 2,
      model: { tolerate: 1, rollout: rolling("25%", "25%") },
      want: 3,
    }, // 3: r=0 → 2 at 50%
    {
      name: "integer maxUnavailable 2",
      u: 80,
      n: 4,
      model: { tolerate: 1, rollout: rolling(1, 2) },
      want: 7,
    }, // ceil(320/90) + 1 + 2
    {
      name: "maxUnavailable 100%: nothing is enough",
      u: 10,
      n: 4,
      model: { tolerate: 1, rollout: rolling(0, "100%") },
      want: undefined,
    },
    {
      name: "Recreate: nothing is enough",
      u: 10,
      n: 4,
      model: { tolerate: 1, rollout: { strategy: "Recreate" } },
      want: undefined,
    },
    // Zones keep today's spread: losing zone a at N loses ceil(N × 3/5).
    {
      name: "uneven zones a:3 b:1 c:1, 5 × 50%",
      u: 50,
      n: 5,
      model: { tolerate: 1, zone: { zone: "a", pods: 3, of: 5 } },
      want: 8,
    }, // 7: loses 5 → 2 at 125%; 8: loses 5 → 3 at 83.3%
    {
      name: "even zones a:2 b:2, 4 × 50%",
      u: 50,
      n: 4,
      model: { tolerate: 1, zone: { zone: "a", pods: 2, of: 4 } },
      want: 6,
    }, // 5: loses 3 → 2 at 100%; 6: loses 3 → 3 at 66.7%
    {
      name: "every pod in one zone: nothing is enough",
      u: 10,
      n: 3,
      model: { tolerate: 1, zone: { zone: "a", pods: 3, of: 3 } },
      want: undefined,
    },
    { name: "ceiling 50%", u: 80, n: 4, model: { tolerate: 1 }, c: 50, want: 8 }, // ceil(320/50) + 1 = 8: 7 at 45.7%
  ];
  it.each(rows)("$name", ({ u, n, model, c = 90, want }) => {
    expect(requiredReplicas(u, n, model, c)).toBe(want);
  });
});

describe("the HPA pair: largest safe target and smallest safe minReplicas", () => {
  const rows: {
    name: string;
    t: number;
    min: number;
    model: LossModel;
    c?: number;
    ok: boolean;
    target: number | undefined;
    minReplicas: number | undefined;
  }[] = [
    {
      name: "80% at minReplicas 4",
      t: 80,
      min: 4,
      model: { tolerate: 1 },
      ok: false,
      target: 67,
      minReplicas: 9,
    }, // 90 × 3/4 = 67.5 ↓; 90/(90−80) = 9
    {
      name: "70% at minReplicas 4",
      t: 70,
      min: 4,
      model: { tolerate: 1 },
      ok: false,
      target: 67,
      minReplicas: 5,
    }, // 4.5 ↑
    {
      name: "60% at minReplicas 3: exactly safe",
      t: 60,
      min: 3,
      model: { tolerate: 1 },
      ok: true,
      target: 60,
      minReplicas: 3,
    }, // 2 at 90%
    {
      name: "50% at minReplicas 2",
      t: 50,
      min: 2,
      model: { tolerate: 1 },
      ok: false,
      target: 45,
      minReplicas: 3,
    }, // 2.25 ↑
    {
      name: "k = 2: 50% at minReplicas 5",
      t: 50,
      min: 5,
      model: { tolerate: 2 },
      ok: true,
      target: 54,
      minReplicas: 5,
    }, // 180/40 = 4.5 ↑
    {
      name: "t = c: no minReplicas is safe",
      t: 90,
      min: 4,
      model: { tolerate: 1 },
      ok: false,
      target: 67,
      minReplicas: undefined,
    },
    {
      name: "t > c: no minReplicas is safe",
      t: 95,
      min: 10,
      model: { tolerate: 1 },
      ok: false,
      target: 81,
      minReplicas: undefined,
    }, // 90 × 9/10
    {
      name: "minReplicas 1: no target is safe",
      t: 50,
      min: 1,
      model: { tolerate: 1 },
      ok: false,
      target: undefined,
      minReplicas: 3,
    },
    {
      name: "ceiling 1% at minReplicas 2: not even 1% is safe",
      t: 1,
      min: 2,
      model: { tolerate: 1 },
      c: 1,
      ok: false,
      target: undefined,
      minReplicas: undefined,
    },
    {
      // At 4, a 25% rollout takes 1: 2 survivors, so the target must be 90 × 2/4 = 45.
      // The closed form ceil((1 + 1) × 90 / 30) = 6 holds at 6 and 7 but not at 8 (r = 2: 480 > 90 × 5 = 450);
      // every count from 9 on is safe (9: 540 ≤ 90 × 6), so "raise minReplicas to 9".
      name: "60% during a 25% rollout at minReplicas 4",
      t: 60,
      min: 4,
      model: { tolerate: 1, rollout: rolling("25%", "25%") },
      ok: false,
      target: 45,
      minReplicas: 9,
    },
    {
      name: "integer maxUnavailable 1 matches the closed form",
      t: 60,
      min: 4,
      model: { tolerate: 1, rollout: rolling(1, 1) },
      ok: false,
      target: 45,
      minReplicas: 6, // ceil(2 × 90 / 30)
    },
  ];
  it.each(rows)("$name", ({ t, min, model, c = 90, ok, target, minReplicas }) => {
    expect(carries(hpaLoad(t), min, lossAt(model, min).total, c)).toBe(ok);
    expect(safeTargetPercent(min, model, c)).toBe(target);
    expect(safeMinReplicas(t, model, c)).toBe(minReplicas);
  });
});

describe("maxSafeMaxUnavailable", () => {
  const rows: {
    name: string;
    load: ReturnType<typeof staticLoad>;
    n: number;
    model: LossModel;
    want: number | undefined;
  }[] = [
    {
      name: "5 × 70%: no room for a rollout",
      load: staticLoad(70, 5),
      n: 5,
      model: { tolerate: 1 },
      want: 0,
    }, // 5 − 1 − ceil(350/90)
    { name: "10 × 50%", load: staticLoad(50, 10), n: 10, model: { tolerate: 1 }, want: 3 }, // 10 − 1 − ceil(5.6): 6 at 83.3%
    {
      name: "4 × 80%: unsafe even without a rollout",
      load: staticLoad(80, 4),
      n: 4,
      model: { tolerate: 1 },
      want: undefined,
    },
    {
      name: "10 × 1%: one survivor is enough",
      load: staticLoad(1, 10),
      n: 10,
      model: { tolerate: 1 },
      want: 8,
    },
    { name: "HPA 60% at 10", load: hpaLoad(60), n: 10, model: { tolerate: 1 }, want: 2 }, // 10 − 1 − ceil(6.7): 7 at 85.7%
    {
      name: "zone a:3 of 10 decides",
      load: staticLoad(30, 10),
      n: 10,
      model: { tolerate: 1, zone: { zone: "a", pods: 3, of: 10 } },
      want: 3,
    }, // 10 − 3 − ceil(3.3)
    {
      name: "a rollout in the model is ignored",
      load: staticLoad(50, 10),
      n: 10,
      model: { tolerate: 1, rollout: { strategy: "Recreate" } },
      want: 3,
    },
  ];
  it.each(rows)("$name", ({ load, n, model, want }) => {
    const got = maxSafeMaxUnavailable(load, model, n, 90);
    expect(got).toBe(want);
    if (got !== undefined) {
      const { failures } = lossAt({ ...model, rollout: undefined }, n);
      expect(carries(load, n, failures + got, 90)).toBe(true);
      expect(carries(load, n, failures + got + 1, 90)).toBe(false);
    }
  });
});

describe("zoneSpread", () => {
  const zones = { n1: "a", n2: "a", n3: "a", n4: "b", n5: "c", n6: "c" };
  const rows: {
    name: string;
    nodes: string[];
    nodeZones: Record<string, string>;
    want: ReturnType<typeof zoneSpread>;
  }[] = [
    {
      name: "uneven: a holds 3 of 5",
      nodes: ["n1", "n2", "n3", "n4", "n5"],
      nodeZones: zones,
      want: { zone: "a", pods: 3, of: 5, zonesInCluster: 3 },
    },
    {
      name: "a tie goes to the zone that sorts first",
      nodes: ["n5", "n6", "n1", "n2"],
      nodeZones: zones,
      want: { zone: "a", pods: 2, of: 4, zonesInCluster: 3 },
    },
    {
      name: "pods on nodes without a zone count toward the total",
      nodes: ["n1", "x1", "x2"],
      nodeZones: zones,
      want: { zone: "a", pods: 1, of: 3, zonesInCluster: 3 },
    },
    {
      name: "a single-zone cluster has no zone view",
      nodes: ["n1", "n2"],
      nodeZones: { n1: "a", n2: "a" },
      want: undefined,
    },
    { name: "no pods", nodes: [], nodeZones: zones, want: undefined },
    { name: "no pod on a zoned node", nodes: ["x1"], nodeZones: zones, want: undefined },
  ];
  it.each(rows)("$name", ({ nodes, nodeZones, want }) => expect(zoneSpread(nodes, nodeZones)).toEqual(want));
});
