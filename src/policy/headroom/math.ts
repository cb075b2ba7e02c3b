// N−k headroom arithmetic: numbers in, numbers out (DESIGN.md, "Headroom").
//
// Units: load is in "replica-percent" — 100 is one replica busy at exactly its
// requests. Percents are whole numbers at the API boundary; every verdict is an
// exact integer comparison (u × N ≤ c × survivors), never a float comparison,
// so 81% × 10 / 9 survivors is exactly 90% and passes a 90% ceiling.

export type IntOrPercent = number | string;

/** An int-or-percent parsed once, so resolving it against a replica count cannot fail. */
export interface IntOrPercentValue {
  value: number;
  percent: boolean;
}

/** The largest replica count the searches consider (the bound of requiredReplicas in the status schema). */
export const REPLICA_SEARCH_LIMIT = 1_000_000;

/**
 * Parses a Deployment/PDB int-or-string the way apimachinery does: an integer, or a string
 * that is digits followed by "%". Anything else (or a negative value) is undefined.
 */
export function parseIntOrPercent(v: IntOrPercent): IntOrPercentValue | undefined {
  if (typeof v === "number")
    return Number.isSafeInteger(v) && v >= 0 ? { value: v, percent: false } : undefined;
  const m = /^\+?(\d{1,9})%$/.exec(v);
  return m ? { value: Number(m[1]), percent: true } : undefined;
}

/** intstr.GetScaledValueFromIntOrPercent: a percent of `total`, rounded up or down; an integer as is. */
export function scaleIntOrPercent(v: IntOrPercentValue, total: number, roundUp: boolean): number {
  if (!v.percent) return v.value;
  const scaled = v.value * total;
  return roundUp ? Math.ceil(scaled / 100) : Math.floor(scaled / 100);
}

/** {@link parseIntOrPercent} then {@link scaleIntOrPercent}; undefined when the value is not valid. */
export function resolveIntOrPercent(v: IntOrPercent, total: number, roundUp: boolean): number | undefined {
  const parsed = parseIntOrPercent(v);
  return parsed && scaleIntOrPercent(parsed, total, roundUp);
}

export interface Fenceposts {
  maxSurge: number;
  maxUnavailable: number;
}

/**
 * The Deployment controller's ResolveFenceposts: maxSurge rounds up, maxUnavailable rounds
 * down, an absent value counts as 0, and when both resolve to 0 maxUnavailable becomes 1 so
 * the rollout can proceed. (The API server's 25%/25% defaults are the caller's business.)
 */
export function resolveFenceposts(
  maxSurge: IntOrPercent | undefined,
  maxUnavailable: IntOrPercent | undefined,
  replicas: number,
): Fenceposts | undefined {
  const surge = parseIntOrPercent(maxSurge ?? 0);
  const unavailable = parseIntOrPercent(maxUnavailable ?? 0);
  if (!surge || !unavailable) return undefined;
  return resolveParsedFenceposts(surge, unavailable, replicas);
}

function resolveParsedFenceposts(
  surge: IntOrPercentValue,
  unavailable: IntOrPercentValue,
  replicas: number,
): Fenceposts {
  const s = scaleIntOrPercent(surge, replicas, true);
  const u = scaleIntOrPercent(unavailable, replicas, false);
  return { maxSurge: s, maxUnavailable: s === 0 && u === 0 ? 1 : u };
}

/** What a rollout in progress takes away. */
export type RolloutDisruption =
  | { strategy: "RollingUpdate"; maxSurge: IntOrPercentValue; maxUnavailable: IntOrPercentValue }
  | { strategy: "Recreate" };

/** The largest zone's share of the pods: losing it at N replicas loses ceil(N × pods / of). */
export interface ZoneShare {
  zone: string;
  pods: number;
  of: number;
}

/** What is lost at N replicas: k failures (or the largest zone when worse), plus the rollout's r. */
export interface LossModel {
  /** k. */
  tolerate: number;
  /** Present only while a rollout is in progress (r = 0 otherwise). */
  rollout?: RolloutDisruption;
  /** Present when the zone view applies. */
  zone?: ZoneShare;
}

export interface Loss {
  /** max(k, the largest zone's pods). */
  failures: number;
  /** True when losing the largest zone is worse than losing k replicas. */
  zoneDecides: boolean;
  /** r. */
  rollout: number;
  /** failures + r. */
  total: number;
}

/** Replicas a rollout takes away at N: resolved maxUnavailable, or all of them for Recreate. */
export function rolloutLossAt(rollout: RolloutDisruption | undefined, replicas: number): number {
  if (!rollout) return 0;
  if (rollout.strategy === "Recreate") return replicas;
  return resolveParsedFenceposts(rollout.maxSurge, rollout.maxUnavailable, replicas).maxUnavailable;
}

/** Pods lost with the largest zone at N replicas, keeping today's spread: ceil(N × pods / of). */
export function zoneLossAt(zone: ZoneShare | undefined, replicas: number): number {
  if (!zone || zone.of <= 0) return 0;
  return Math.ceil((replicas * zone.pods) / zone.of);
}

export function lossAt(model: LossModel, replicas: number): Loss {
  const zoneLoss = zoneLossAt(model.zone, replicas);
  const failures = Math.max(model.tolerate, zoneLoss);
  const rollout = rolloutLossAt(model.rollout, replicas);
  return { failures, zoneDecides: zoneLoss > model.tolerate, rollout, total: failures + rollout };
}

/**
 * The load the replicas carry together at N replicas, in replica-percent:
 * fixedPercent + perReplicaPercent × N.
 * - Static/Metrics: the total is fixed (u × N at today's N); more replicas share it.
 * - HPA: the HPA holds each replica near its target t, so the total grows with N.
 */
export interface Load {
  fixedPercent: number;
  perReplicaPercent: number;
}

/** Static/Metrics: u percent per replica at today's N replicas, a fixed total of u × N. */
export const staticLoad = (peakPercent: number, replicas: number): Load => ({
  fixedPercent: peakPercent * replicas,
  perReplicaPercent: 0,
});

/** HPA: each replica held near the target t. */
export const hpaLoad = (targetPercent: number): Load => ({
  fixedPercent: 0,
  perReplicaPercent: targetPercent,
});

export const totalLoadAt = (load: Load, replicas: number): number =>
  load.fixedPercent + load.perReplicaPercent * replicas;

/** Exactly: at least one survivor and total ≤ c × survivors (u × N ≤ c × (N − k − r)). */
export function carries(load: Load, replicas: number, lost: number, ceilingPercent: number): boolean {
  const survivors = replicas - lost;
  return survivors >= 1 && totalLoadAt(load, replicas) <= ceilingPercent * survivors;
}

/** Load per survivor in percent, u × N / (N − k − r), as a float for display; Infinity without survivors. */
export function loadPerSurvivorPercent(load: Load, replicas: number, lost: number): number {
  const survivors = replicas - lost;
  return survivors >= 1 ? totalLoadAt(load, replicas) / survivors : Number.POSITIVE_INFINITY;
}

/**
 * Load per survivor rounded UP to a whole percent (106.67 → 107), so the figure is above the
 * (whole-percent) ceiling exactly when {@link carries} is false. Undefined without survivors.
 */
export function afterLossPercent(load: Load, replicas: number, lost: number): number | undefined {
  const survivors = replicas - lost;
  return survivors >= 1 ? Math.ceil(totalLoadAt(load, replicas) / survivors) : undefined;
}

/** Whether the load is carried at N replicas after the model's loss at N. */
export function sufficientAt(
  load: Load,
  model: LossModel,
  replicas: number,
  ceilingPercent: number,
): boolean {
  return carries(load, replicas, lossAt(model, replicas).total, ceilingPercent);
}

const ceilDiv = (a: bigint, b: bigint): bigint => (a + b - 1n) / b;

/**
 * A replica count from which on every N is guaranteed sufficient, or undefined when none is
 * (up to {@link REPLICA_SEARCH_LIMIT}).
 *
 * The loss is bounded by a line: failures = max(k, ceil(N·z)) ≤ k + N·z + 1 and
 * r ≤ N·p/100 + m + 1 (a percent rounds down; an integer m is constant; the fencepost rule
 * adds at most 1; Recreate is slope 1). With slope a = z + p/100 and offset B, every N with
 * total(N) ≤ c·(N − a·N − B) and N − a·N − B ≥ 1 is sufficient. When the slope leaves no
 * room (c·(1 − a) ≤ t) the loss outgrows what the survivors can carry and there is no such N
 * (with k ≥ 1; at k = 0 the exact boundary is answered conservatively as none).
 */
function guaranteedFrom(load: Load, model: LossModel, ceilingPercent: number): number | undefined {
  const c = BigInt(ceilingPercent);
  const t = BigInt(load.perReplicaPercent);
  const w = BigInt(load.fixedPercent);
  const zone = model.zone && model.zone.of > 0 ? model.zone : undefined;
  // slope = sn / sd
  const sd = 100n * BigInt(zone?.of ?? 1);
  let sn = zone ? 100n * BigInt(zone.pods) : 0n;
  let b = BigInt(model.tolerate) + (zone ? 1n : 0n);
  const rollout = model.rollout;
  if (rollout?.strategy === "Recreate") {
    sn += sd;
  } else if (rollout) {
    const u = rollout.maxUnavailable;
    if (u.percent) sn += BigInt(u.value) * BigInt(zone?.of ?? 1);
    else b += BigInt(u.value);
    b += 1n;
  }
  const sigma = c * (sd - sn) - t * sd;
  if (sigma <= 0n) return undefined;
  const fromLoad = ceilDiv(sd * (w + c * b), sigma);
  const fromSurvivor = ceilDiv(sd * (b + 1n), sd - sn);
  const from = [fromLoad, fromSurvivor, 1n].reduce((x, y) => (x > y ? x : y));
  return from > BigInt(REPLICA_SEARCH_LIMIT) ? undefined : Number(from);
}

/**
 * The smallest N such that every replica count from N on carries the load after the loss,
 * or undefined when there is none (up to {@link REPLICA_SEARCH_LIMIT}).
 *
 * With a percentage maxUnavailable or a zone share the loss depends on N, so this searches
 * instead of using the closed form ceil(u × N / c) + k + r. Sufficiency need not be monotone
 * in N (with a per-replica load, 3 replicas at maxUnavailable 25% lose 0 and 4 lose 1; a zone
 * share and a percentage together can dip too), hence "every N from there on": the advice
 * "run at least N" must hold for N + 1 as well, and an HPA may run at any count above
 * minReplicas. With a fixed total and only k or only one of (r, zone) it is simply the
 * smallest sufficient N.
 */
export function smallestSafeReplicas(
  load: Load,
  model: LossModel,
  ceilingPercent: number,
): number | undefined {
  const from = guaranteedFrom(load, model, ceilingPercent);
  if (from === undefined) return undefined;
  let n = from;
  while (n > 1 && sufficientAt(load, model, n - 1, ceilingPercent)) n--;
  return n;
}

/** Static/Metrics `required`: the fewest replicas that carry today's total (u × N) after the loss. */
export function requiredReplicas(
  peakPercent: number,
  replicas: number,
  model: LossModel,
  ceilingPercent: number,
): number | undefined {
  return smallestSafeReplicas(staticLoad(peakPercent, replicas), model, ceilingPercent);
}

/** HPA: the smallest safe minReplicas at target t — ceil((k + r) × c / (c − t)) when r is fixed; none when t ≥ c. */
export function safeMinReplicas(
  targetPercent: number,
  model: LossModel,
  ceilingPercent: number,
): number | undefined {
  return smallestSafeReplicas(hpaLoad(targetPercent), model, ceilingPercent);
}

/**
 * HPA: the largest safe whole-percent target at minReplicas M, floor(c × (M − k − r) / M);
 * undefined when not even 1% is safe.
 */
export function safeTargetPercent(
  minReplicas: number,
  model: LossModel,
  ceilingPercent: number,
): number | undefined {
  const survivors = minReplicas - lossAt(model, minReplicas).total;
  if (survivors < 1) return undefined;
  const target = Math.floor((ceilingPercent * survivors) / minReplicas);
  return target >= 1 ? target : undefined;
}

/**
 * The largest number of replicas a rolling update may take away at N (resolved maxUnavailable)
 * while the survivors of the loss still carry the load; undefined when even 0 is unsafe.
 * Any rollout in the model is ignored: this is what it may be.
 */
export function maxSafeMaxUnavailable(
  load: Load,
  model: LossModel,
  replicas: number,
  ceilingPercent: number,
): number | undefined {
  const { failures } = lossAt({ ...model, rollout: undefined }, replicas);
  const byLoad = replicas - failures - Math.ceil(totalLoadAt(load, replicas) / ceilingPercent);
  const bySurvivor = replicas - failures - 1;
  const r = Math.min(byLoad, bySurvivor);
  return r >= 0 ? r : undefined;
}

export interface ZoneSpread extends ZoneShare {
  /** Distinct zones among the cluster's nodes. */
  zonesInCluster: number;
}

/**
 * The zone view: which zone holds the most of the given pods (by node name; pods on nodes
 * without a zone count toward `of` but toward no zone). Undefined when the cluster has fewer
 * than two zones — losing the only zone is losing the cluster, which no replica count fixes.
 * Ties go to the zone that sorts first, so the answer is deterministic.
 */
export function zoneSpread(
  podNodeNames: readonly string[],
  nodeZones: Readonly<Record<string, string>>,
): ZoneSpread | undefined {
  const zonesInCluster = new Set(Object.values(nodeZones)).size;
  if (zonesInCluster < 2 || podNodeNames.length === 0) return undefined;
  const perZone = new Map<string, number>();
  for (const node of podNodeNames) {
    const zone = nodeZones[node];
    if (zone !== undefined) perZone.set(zone, (perZone.get(zone) ?? 0) + 1);
  }
  let largest: { zone: string; pods: number } | undefined;
  for (const [zone, pods] of [...perZone].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!largest || pods > largest.pods) largest = { zone, pods };
  }
  return largest && { ...largest, of: podNodeNames.length, zonesInCluster };
}
