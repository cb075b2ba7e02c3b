// The leader's sweep for stranded gates (issue 20, "a gate is never stranded"): while it leads,
// healthgate periodically finds pods held by a healthgate.io/deep-check gate whose Deployment is
// no longer gated — its policy deleted or without spec.rollout, the Deployment no longer
// selected or now Recreate — and opens their gates. The same pass reports pods of a gated
// revision that were admitted without a gate (failOpen.ts). The webhook stops injecting for such a
// Deployment at once (it reads the same caches), so the sweep never races a new gate.
import { releaseGates, type RolloutRecord } from "../admission/releaseGates.ts";
import type { Pod } from "../api/k8s.ts";
import { POD_TEMPLATE_HASH } from "../policy/gate.ts";
import { reportFailOpen } from "./failOpen.ts";
import { gateWorldOf } from "../admission/gateWebhook.ts";
import type { KubeClient } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { World } from "./world.ts";
import { sleep } from "../kube/clock.ts";

export interface GateSweepOptions {
  client: KubeClient;
  world: World;
  logger: Logger;
  clock: Clock;
  identity: string;
  /** Namespaces governed; empty: all. */
  namespaces: readonly string[];
  /** healthgate's own namespace (never gated). */
  ownNamespace: string;
  intervalMs: number;
}

const inScope = (namespaces: readonly string[], pod: Pod) =>
  namespaces.length === 0 || namespaces.includes(pod.metadata.namespace ?? "");

/** Runs sweeps until `signal` aborts. */
export async function runGateSweep(o: GateSweepOptions, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      // From the pod cache, not a list: it holds every pod of a governed Deployment (the fail-open
      // report's) and every pod a healthgate gate holds (the release's), slimmed. Listing every
      // pod of the cluster each pass held 10,000 whole pods (300 MiB) in bench/memory.ts.
      const pods = o.world.pods
        .list()
        .filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH] !== undefined && inScope(o.namespaces, p));
      await reportFailOpen(pods, { ...o, now: new Date(o.clock.now()), signal });
      const report = await releaseGates({
        pods,
        client: o.client,
        namespaces: o.namespaces,
        allowAborted: false,
        gatingStopped: (held) => {
          if (!held.deployment) return false;
          const world = gateWorldOf(o.world, o.ownNamespace, held.namespace);
          const deployment = world.deployment(held.deployment);
          // A Deployment not in the cache is gone (its pods are going) or out of scope.
          if (!deployment) return false;
          const policy = world.governingPolicy(deployment);
          return !policy?.spec.rollout || deployment.spec.strategy?.type === "Recreate";
        },
        rolloutOf: (namespace, deployment) =>
          o.world.targets.get(`${namespace}/${deployment}`)?.status?.rollout as RolloutRecord | undefined,
        reason: "GatingStopped",
        identity: o.identity,
        now: () => new Date(o.clock.now()),
        signal,
      });
      if (report.released.length > 0) {
        o.logger.info(
          { reason: "GatingStopped", pods: report.released },
          "released stranded readiness gates",
        );
      }
      for (const key of report.abortedKept) {
        o.logger.warn(
          { reason: "AbortedRevision", name: key },
          "gating stopped for an aborted revision: its gates stay closed (release them with healthgate release-gates --allow-aborted)",
        );
      }
      for (const failure of report.failed) o.logger.warn({ err: failure }, "releasing a gate failed");
    } catch (err) {
      if (signal.aborted) return;
      o.logger.warn({ err }, "gate sweep failed; retrying at the next interval");
    }
    await sleep(o.clock, o.intervalMs, signal).catch(() => {});
  }
}
