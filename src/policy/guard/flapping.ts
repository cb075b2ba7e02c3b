// Flap detection: a pod whose readiness changes more than maxTransitions times
// within the window is flapping. It is listed for as long as it flaps, and
// reported (an Event, a metric) at once, then again only after a backoff that
// doubles with each report, up to maxBackoff: a chronic flapper is reported less
// often but stays visible. A pod that stops is forgiven after maxBackoff without
// a report: its next report starts the backoff over.
import type { PodView } from "./pods.ts";

export interface FlapConfig {
  maxTransitions: number;
  windowMs: number;
  backoffMs: number;
  maxBackoffMs: number;
}

/** Per pod (uid): its reports so far. */
export interface FlapRecord {
  reports: number;
  lastReportAt: number;
  nextReportAt: number;
}

export interface FlappingPod {
  pod: string;
  uid: string;
  /** Readiness changes within the window. */
  transitions: number;
  /** Reports so far, this one included when it is reported now. */
  reports: number;
  /** No report before then (epoch ms). */
  nextReportAt: number;
}

export interface FlapStep {
  records: Readonly<Record<string, FlapRecord>>;
  /** Every pod flapping now. */
  flapping: FlappingPod[];
  /** The flapping pods due for a report now (a subset of `flapping`). */
  reports: FlappingPod[];
  /** When the picture changes by time alone: a pod's count leaves the window, or a report falls due (epoch ms). */
  nextChangeAt?: number;
}

/** The wait after the `reports`-th report: backoff × 2^(reports−1), at most maxBackoff. */
export const backoffAfter = (reports: number, config: FlapConfig) =>
  Math.min(config.maxBackoffMs, config.backoffMs * 2 ** Math.max(0, reports - 1));

const within = (transitions: readonly number[], now: number, windowMs: number) =>
  transitions.filter((t) => t > now - windowMs && t <= now);

export function stepFlaps(
  records: Readonly<Record<string, FlapRecord>>,
  pods: readonly PodView[],
  now: number,
  config: FlapConfig,
): FlapStep {
  const next: Record<string, FlapRecord> = {};
  const flapping: FlappingPod[] = [];
  const reports: FlappingPod[] = [];
  const changes: number[] = [];
  for (const pod of pods) {
    const recent = within(pod.transitions, now, config.windowMs);
    const record = records[pod.uid];
    if (recent.length > config.maxTransitions) {
      // The count drops to the limit once the oldest changes above it leave the window.
      changes.push(recent[recent.length - 1 - config.maxTransitions]! + config.windowMs);
      const due = !record || now >= record.nextReportAt;
      const kept: FlapRecord = due
        ? {
            reports: (record?.reports ?? 0) + 1,
            lastReportAt: now,
            nextReportAt: now + backoffAfter((record?.reports ?? 0) + 1, config),
          }
        : record;
      next[pod.uid] = kept;
      changes.push(kept.nextReportAt);
      const entry = {
        pod: pod.name,
        uid: pod.uid,
        transitions: recent.length,
        reports: kept.reports,
        nextReportAt: kept.nextReportAt,
      };
      flapping.push(entry);
      if (due) reports.push(entry);
    } else if (record && now - record.lastReportAt < config.maxBackoffMs) {
      next[pod.uid] = record;
    }
  }
  const future = changes.filter((t) => t > now);
  return {
    records: next,
    flapping,
    reports,
    ...(future.length > 0 ? { nextChangeAt: Math.min(...future) } : {}),
  };
}
