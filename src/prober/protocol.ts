// Messages between the ProberHandle (main thread) and the prober worker. Pure.
import type { Cohort, DeepCheckResult, ProbeTarget } from "./types.ts";

export interface WorkerConfig {
  /** Probes in flight at most. */
  concurrency: number;
  /** Results are sent in batches at most this often. */
  batchMs: number;
}

export type ToWorker =
  { type: "upsert"; targets: ProbeTarget[] } | { type: "remove"; keys: string[] } | { type: "stop" };

export type FromWorker =
  | {
      type: "results";
      results: DeepCheckResult[];
      /** Probes started since the last batch, by cohort. */
      sent: Record<Cohort, number>;
      /** Checks skipped since the last batch: the previous one of the same target still ran or waited for a slot. */
      overruns: number;
      inFlight: number;
    }
  | { type: "stopped" };
