import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  afterLossPercent,
  carries,
  hpaLoad,
  type Load,
  loadPerSurvivorPercent,
  lossAt,
  type LossModel,
  maxSafeMaxUnavailable,
  requiredReplicas,
  resolveIntOrPercent,
  type RolloutDisruption,
  safeMinReplicas,
  safeTargetPercent,
  smallestSafeReplicas,
  staticLoad,
  sufficientAt,
  totalLoadAt,
} from "../../../src/policy/headroom/math.ts";
import { rolling } from "./builders.ts";

const percent = fc.integer({ min: 0, max: 100 }).map((p) => `${p}%`);
const intOrPercent = fc.oneof(fc.integer({ min: 0, max: 5 }), percent);
const rollingUpdate: fc.Arbitrary<RolloutDisruption> = fc
  .tuple(intOrPercent, intOrPercent)
  .map(([surge, unavailable]) => rolling(surge, unavailable));
const rollout: fc.Arbitrary<RolloutDisruption> = fc.oneof(
  { weight: 9, arbitrary: rollingUpdate },
  { weight: 1, arbitrary: fc.constant<RolloutDisruption>({ strategy: "Recreate" }) },
);
const zone = fc
  .integer({ min: 1, max: 60 })
  .chain((of) =>
    fc.record({ zone: fc.constant("a"), pods: fc.integer({ min: 1, max: of }), of: fc.constant(of) }),
  );

/** k, and optionally a rollout and/or a zone share. */
const lossModel: fc.Arbitrary<LossModel> = fc.record(
  { tolerate: fc.integer({ min: 1, max: 5 }), rollout, zone },
  { requiredKeys: ["tolerate"] },
);
/** Models in which N − loss(N) never decreases: k plus at most one of (rollout, zone). */
const monotoneLossModel: fc.Arbitrary<LossModel> = fc.oneof(
  fc.record({ tolerate: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ tolerate: fc.integer({ min: 1, max: 5 }), rollout }),
  fc.record({ tolerate: fc.integer({ min: 1, max: 5 }), zone }),
);
const ceiling = fc.integer({ min: 20, max: 100 });
const utilization = fc.integer({ min: 1, max: 300 });
const replicas = fc.integer({ min: 1, max: 200 });

/** undefined ("no count is enough") sorts above every number. */
const orInfinity = (n: number | undefined) => n ?? Number.POSITIVE_INFINITY;

describe("headroom math properties", () => {
  it("Static: more replicas never raise the load per survivor", () => {
    fc.assert(
      fc.property(utilization, replicas, replicas, monotoneLossModel, (u, today, n, model) => {
        const load = staticLoad(u, today);
        const at = (m: number) => loadPerSurvivorPercent(load, m, lossAt(model, m).total);
        expect(at(n + 1)).toBeLessThanOrEqual(at(n));
      }),
    );
  });

  it("higher utilization never raises headroom", () => {
    fc.assert(
      fc.property(utilization, utilization, replicas, lossModel, ceiling, (a, b, n, model, c) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        const lost = lossAt(model, n).total;
        for (const load of [(u: number) => staticLoad(u, n), hpaLoad]) {
          expect(orInfinity(afterLossPercent(load(low), n, lost))).toBeLessThanOrEqual(
            orInfinity(afterLossPercent(load(high), n, lost)),
          );
          if (carries(load(high), n, lost, c)) expect(carries(load(low), n, lost, c)).toBe(true);
          const room = (u: number) => maxSafeMaxUnavailable(load(u), model, n, c) ?? -1;
          expect(room(low)).toBeGreaterThanOrEqual(room(high));
        }
        expect(orInfinity(requiredReplicas(low, n, model, c))).toBeLessThanOrEqual(
          orInfinity(requiredReplicas(high, n, model, c)),
        );
        expect(orInfinity(safeMinReplicas(low, model, c))).toBeLessThanOrEqual(
          orInfinity(safeMinReplicas(high, model, c)),
        );
      }),
    );
  });

  it("the required replica count satisfies u × N ≤ c × (N − k − r), one less does not, and so does every count above", () => {
    fc.assert(
      fc.property(utilization, replicas, lossModel, ceiling, (u, n, model, c) => {
        const required = requiredReplicas(u, n, model, c);
        fc.pre(required !== undefined);
        if (required === undefined) return;
        const load = staticLoad(u, n);
        expect(sufficientAt(load, model, required, c)).toBe(true);
        if (required > 1) expect(sufficientAt(load, model, required - 1, c)).toBe(false);
        for (let m = required; m < required + 50; m++) expect(sufficientAt(load, model, m, c)).toBe(true);
      }),
    );
  });

  it("the smallest safe minReplicas is safe from there on and one less is not", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 99 }), lossModel, ceiling, (t, model, c) => {
        const min = safeMinReplicas(t, model, c);
        fc.pre(min !== undefined);
        if (min === undefined) return;
        const load = hpaLoad(t);
        if (min > 1) expect(sufficientAt(load, model, min - 1, c)).toBe(false);
        for (let m = min; m < min + 100; m++) expect(sufficientAt(load, model, m, c)).toBe(true);
      }),
    );
  });

  it("with no zone view and a fixed r, the search agrees with the closed forms", () => {
    const fixed: fc.Arbitrary<{ model: LossModel; r: number }> = fc.oneof(
      fc.integer({ min: 1, max: 5 }).map((k) => ({ model: { tolerate: k }, r: 0 })),
      fc
        .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 4 }))
        .map(([k, surge, m]) => ({ model: { tolerate: k, rollout: rolling(surge, m) }, r: m })),
    );
    fc.assert(
      fc.property(utilization, replicas, fixed, ceiling, (u, n, { model, r }, c) => {
        const k = model.tolerate;
        // Static: ceil(u × N / c) + k + r.
        expect(requiredReplicas(u, n, model, c)).toBe(Math.ceil((u * n) / c) + k + r);
        // HPA: ceil((k + r) × c / (c − t)) when t < c, none when t ≥ c.
        expect(safeMinReplicas(u, model, c)).toBe(u < c ? Math.ceil(((k + r) * c) / (c - u)) : undefined);
      }),
    );
  });

  it("the safe target is the largest whole percent that is safe at minReplicas", () => {
    fc.assert(
      fc.property(replicas, lossModel, ceiling, (min, model, c) => {
        const target = safeTargetPercent(min, model, c);
        const lost = lossAt(model, min).total;
        if (target === undefined) {
          expect(carries(hpaLoad(1), min, lost, c)).toBe(false);
          return;
        }
        expect(carries(hpaLoad(target), min, lost, c)).toBe(true);
        expect(carries(hpaLoad(target + 1), min, lost, c)).toBe(false);
      }),
    );
  });

  it("verdicts are exact: the same as comparing rationals in BigInt", () => {
    fc.assert(
      fc.property(utilization, replicas, fc.integer({ min: 0, max: 210 }), ceiling, (u, n, lost, c) => {
        const survivors = BigInt(n - lost);
        const exact = survivors >= 1n && BigInt(u) * BigInt(n) <= BigInt(c) * survivors;
        expect(carries(staticLoad(u, n), n, lost, c)).toBe(exact);
        const after = afterLossPercent(staticLoad(u, n), n, lost);
        expect(after === undefined ? false : after <= c).toBe(exact);
      }),
    );
  });

  it("percentages resolve like the Go controller's float formula", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100_000 }), (p, total) => {
        expect(resolveIntOrPercent(`${p}%`, total, false)).toBe(Math.floor((p * total) / 100));
        expect(resolveIntOrPercent(`${p}%`, total, true)).toBe(Math.ceil((p * total) / 100));
      }),
    );
  });

  it("a Load is what it says: fixed total for Static, per replica for the HPA", () => {
    fc.assert(
      fc.property(utilization, replicas, replicas, (u, today, n) => {
        const s: Load = staticLoad(u, today);
        expect(totalLoadAt(s, n)).toBe(u * today);
        expect(totalLoadAt(hpaLoad(u), n)).toBe(u * n);
        expect(smallestSafeReplicas(s, { tolerate: 1 }, 100)).toBe(
          requiredReplicas(u, today, { tolerate: 1 }, 100),
        );
      }),
    );
  });
});
