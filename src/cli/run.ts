// `healthgate run`: the operator process. Settings come from flags and
// environment (src/cli/config.ts); SIGTERM stops it gracefully within 10 s:
// /readyz fails first, reconciles stop, the Lease is released so a standby
// takes over at once, watches close.
import type { KubeConfig } from "@kubernetes/client-node";
import { Operator, type OperatorOptions } from "../controller/operator.ts";
import { loadKubeConfig } from "../kube/client.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { ConfigError, parseRunConfig, type RunConfig } from "./config.ts";

const SHUTDOWN_BUDGET_MS = 10_000;

export async function runOperator(argv: readonly string[]): Promise<number> {
  let config;
  try {
    config = parseRunConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`healthgate run: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  let kubeConfig;
  try {
    kubeConfig = loadKubeConfig(config.kubeconfig);
  } catch (err) {
    process.stderr.write(`healthgate run: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const operator = new Operator(operatorOptions(config, kubeConfig, logger));

  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  // A SIGTERM before the caches sync (a missing CRD or RBAC keeps them from ever syncing) stops
  // the process as promptly as one after: the kubelet should not have to kill it.
  const first = await Promise.race([stopped, operator.start().then(() => undefined)]);
  if (first === undefined) {
    logger.info({ identity: operator.identity, port: operator.boundPort }, "healthgate running");
  }
  const signal = first ?? (await stopped);
  logger.info({ reason: signal }, "shutting down");
  const timer = setTimeout(() => {
    logger.error({ reason: "ShutdownTimeout" }, "graceful shutdown took too long; exiting");
    process.exit(1);
  }, SHUTDOWN_BUDGET_MS);
  timer.unref();
  await operator.stop();
  clearTimeout(timer);
  return 0;
}

/** Every setting of `healthgate run`, as the operator takes it. */
export function operatorOptions(config: RunConfig, kubeConfig: KubeConfig, logger: Logger): OperatorOptions {
  return {
    kubeConfig,
    logger,
    namespaces: config.namespaces,
    port: config.httpPort,
    concurrency: config.concurrency,
    watchdogMs: config.watchdogSeconds * 1000,
    resyncMs: config.resyncSeconds * 1000,
    pacing: {
      maxConcurrentRollouts: config.maxConcurrentRollouts,
      slotTimeoutMs: config.rolloutSlotTimeoutSeconds * 1000,
    },
    identity: config.leaderElectionIdentity,
    leaderElection: config.leaderElect
      ? {
          enabled: true,
          namespace: config.leaderElectionNamespace ?? "default",
          name: config.leaderElectionId,
        }
      : { enabled: false },
    ...(config.webhookPort > 0 && config.webhookNamespace
      ? {
          gateWebhook: {
            port: config.webhookPort,
            namespace: config.webhookNamespace,
            secretName: config.webhookSecret,
            certificates: config.webhookCertificates,
            configurationName: config.webhookConfiguration,
            dnsNames: config.webhookService
              ? serviceDnsNames(config.webhookService, config.webhookNamespace)
              : [],
          },
        }
      : {}),
  };
}

/** The names a Service answers to inside the cluster: the serving certificate's DNS names. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}
