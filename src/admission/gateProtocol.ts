// Messages between GateWebhook (main thread) and the gate webhook's thread (gateWorker.ts).
import type { GateDeployment, GatePolicy } from "../policy/gate.ts";

export interface GateWorkerConfig {
  port: number;
  host: string;
  path: string;
  /** healthgate's own namespace: never gated. */
  ownNamespace: string;
  cert: string;
  key: string;
  /** The caches when the thread starts (`namespace/name` → value); changes follow as messages. */
  deployments: [string, GateDeployment][];
  policies: [string, GatePolicy][];
  stable: [string, string][];
}

/** Cache changes (`value` undefined: gone), the serving certificate, stop. Keys are `namespace/name`. */
export type ToGateWorker =
  | { type: "deployment"; key: string; value: GateDeployment | undefined }
  | { type: "policy"; key: string; value: GatePolicy | undefined }
  | { type: "stable"; key: string; value: string | undefined }
  | { type: "cert"; cert: string; key: string }
  | { type: "stop" };

export type FromGateWorker =
  | { type: "listening"; port: number }
  | { type: "failed"; error: string }
  | {
      type: "admission";
      result: "gated" | "ungated" | "error";
      namespace: string;
      deployment?: string;
      reason?: string;
      error?: string;
    };
