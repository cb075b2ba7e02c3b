// Correlated-failure detection (DESIGN.md, "Correlated-failure guard"): when
// many pods go unready together the likely cause is one global signal, not N
// independent deaths. Raised when more than maxUnreadyPercent of the serving
// pods (at least two) went unready within the window, or when every pod of a
// zone holding two or more did; it lasts while the unready pods stay above the
// threshold (or a zone stays wholly unready) and clears only after they have
// stayed below for clearAfter (hysteresis).
import type { PodView } from "./pods.ts";

export interface CorrelatedConfig {
  maxUnreadyPercent: number;
  windowMs: number;
  clearAfterMs: number;
}

/** What raised an episode (the largest burst seen while it lasts). */
export interface Trigger {
  /** Pods that went unready within the window. */
  unready: number;
  /** Serving pods then. */
  serving: number;
  /** More than maxUnreadyPercent went unready together (else a whole zone did). */
  byFraction: boolean;
  /** The zone whose every pod went unready, when that is what (also) raised it. */
  zone?: string;
}

/** An active correlated failure. */
export interface CorrelatedEpisode {
  /** When the pods went unready (the latest of the burst), epoch ms. */
  since: number;
  trigger: Trigger;
  /** Since when the unready pods have been at or below the threshold (clearing), epoch ms. */
  belowSince?: number;
}

/** Ready or Unready: the pods that count. */
export const serving = (pods: readonly PodView[]) =>
  pods.filter((p) => p.state === "Ready" || p.state === "Unready");
const unready = (pods: readonly PodView[]) => pods.filter((p) => p.state === "Unready");

/** More than `percent` of `of`, and at least two pods: one pod is no evidence of a common cause. */
export const overThreshold = (count: number, of: number, percent: number) =>
  count >= 2 && count * 100 > percent * of;

/** The largest set of unready pods that went unready within `windowMs` of each other. */
export function largestBurst(pods: readonly PodView[], windowMs: number): PodView[] {
  const sorted = unready(pods)
    .filter((p) => p.unreadySince !== undefined)
    .sort((a, b) => a.unreadySince! - b.unreadySince!);
  let best: PodView[] = [];
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while (sorted[end]!.unreadySince! - sorted[start]!.unreadySince! > windowMs) start++;
    if (end - start + 1 > best.length) best = sorted.slice(start, end + 1);
  }
  return best;
}

/** Zones (two or more serving pods) whose serving pods are all unready, by name; within `windowMs` when given. */
export function wholeZonesUnready(pods: readonly PodView[], windowMs?: number): string[] {
  const byZone = new Map<string, PodView[]>();
  for (const p of serving(pods)) {
    if (p.zone === undefined) continue;
    byZone.set(p.zone, [...(byZone.get(p.zone) ?? []), p]);
  }
  const zones: string[] = [];
  for (const [zone, members] of byZone) {
    if (members.length < 2 || members.some((p) => p.state !== "Unready")) continue;
    if (windowMs !== undefined) {
      const times = members.map((p) => p.unreadySince ?? Number.NaN);
      if (times.some(Number.isNaN) || Math.max(...times) - Math.min(...times) > windowMs) continue;
    }
    zones.push(zone);
  }
  return zones.sort();
}

/** Whether the unready pods are above the threshold now (no window: an episode lasts while they stay so). */
export function stillAbove(pods: readonly PodView[], config: CorrelatedConfig): boolean {
  return (
    overThreshold(unready(pods).length, serving(pods).length, config.maxUnreadyPercent) ||
    wholeZonesUnready(pods).length > 0
  );
}

/** The episode after looking at the pods at `now`: started, lasting, clearing, or gone (undefined). */
export function stepCorrelated(
  episode: CorrelatedEpisode | undefined,
  pods: readonly PodView[],
  now: number,
  config: CorrelatedConfig,
): CorrelatedEpisode | undefined {
  if (episode) {
    if (stillAbove(pods, config)) {
      const { belowSince: _cleared, ...lasting } = episode;
      // The kubelet ejects pods one probe at a time: a burst seen whole only later is the same event.
      const grown = onset(pods, now, config);
      return grown && larger(grown.trigger, episode.trigger)
        ? { ...lasting, trigger: { ...grown.trigger, ...zoneOf(grown.trigger, episode.trigger) } }
        : lasting;
    }
    const belowSince = episode.belowSince ?? now;
    return now - belowSince >= config.clearAfterMs ? undefined : { ...episode, belowSince };
  }
  return onset(pods, now, config);
}

/** A new episode, when the pods show one now. */
function onset(
  pods: readonly PodView[],
  now: number,
  config: CorrelatedConfig,
): CorrelatedEpisode | undefined {
  const burst = largestBurst(pods, config.windowMs);
  const zone = wholeZonesUnready(pods, config.windowMs)[0];
  const total = serving(pods).length;
  const byFraction = overThreshold(burst.length, total, config.maxUnreadyPercent);
  if (!byFraction && zone === undefined) return undefined;
  const members = byFraction ? burst : unready(pods).filter((p) => p.zone === zone);
  const since = Math.min(now, Math.max(...members.map((p) => p.unreadySince ?? now)));
  return {
    since,
    trigger: { unready: members.length, serving: total, byFraction, ...(zone !== undefined ? { zone } : {}) },
  };
}

/** Whether `a` says more than `b`: a fraction over a zone, then more pods. */
const larger = (a: Trigger, b: Trigger) =>
  a.byFraction !== b.byFraction ? a.byFraction : a.unready > b.unready;

const zoneOf = (a: Trigger, b: Trigger) => {
  const zone = a.zone ?? b.zone;
  return zone !== undefined ? { zone } : {};
};
