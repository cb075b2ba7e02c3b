// The gate webhook (issue 20): HTTPS served by every replica, leader or not, answering
// AdmissionReview v1 for Pod CREATE from the operator's warm caches. It never refuses a pod:
// it adds the `healthgate.io/deep-check` readiness gate or leaves the pod alone. The API
// server calls it with `failurePolicy: Ignore` and a short timeout, so when no replica
// answers, pods are created ungated (fail-open) — visible, never blocking.
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { X509Certificate } from "node:crypto";
import { Worker } from "node:worker_threads";
import { Counter } from "prom-client";
import type { Deployment } from "../api/k8s.ts";
import { type KubeClient, isConflict, isNotFound, resources, type KubeObject } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import { governingPolicy } from "../policy/governance.ts";
import {
  gateDeploymentOf,
  gatePolicyOf,
  sameGateDeployment,
  type GatePolicy,
  type GateWorld,
} from "../policy/gate.ts";
import type { FromGateWorker, GateWorkerConfig, ToGateWorker } from "./gateProtocol.ts";
import { parseCachedPolicy } from "../controller/reconciler.ts";
import type { World } from "../controller/world.ts";
import {
  certStateData,
  DEFAULT_CERT_SETTINGS,
  planCertificates,
  readCertState,
  TRUSTED_SINCE_ANNOTATION,
  type CertSettings,
  type CertState,
} from "./certs.ts";
import { splitPem } from "./x509.ts";

/** The path the MutatingWebhookConfiguration calls. */
export const GATE_WEBHOOK_PATH = "/gate";
/** The webhook's name inside the configuration. */
export const GATE_WEBHOOK_NAME = "gate.healthgate.io";
/** Keeps the worker's file type: gateWorker.ts under Node's type stripping and vitest, .js when built. */
const workerUrl = new URL(`./gateWorker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
/** At most this many CAs in the caBundle (a Secret reset many times must not grow it forever). */
const MAX_BUNDLE_CAS = 8;

export interface GateWebhookOptions {
  port: number;
  host?: string;
  /** healthgate's own namespace: the Secret's, and never gated. */
  namespace: string;
  secretName: string;
  /**
   * `self`: healthgate issues and rotates the certificates in the Secret and keeps the
   * configuration's caBundle current. `external`: something else (cert-manager) writes the
   * Secret's tls.crt/tls.key and the caBundle; healthgate only serves them.
   */
  certificates: "self" | "external";
  /** The MutatingWebhookConfiguration whose caBundle healthgate keeps current (self only). */
  configurationName?: string | undefined;
  dnsNames: readonly string[];
  ipAddresses?: readonly string[];
  /** How often the Secret is read (and due rotations made). Default 30 s. */
  refreshMs?: number;
  cert?: Partial<Pick<CertSettings, "caValidityMs" | "servingValidityMs" | "overlapMs">>;
}

interface Deps {
  client: KubeClient;
  world: World;
  logger: Logger;
  metrics: HealthgateMetrics;
  clock: Clock;
}

/** The caches as the pure decision reads them. */
export function gateWorldOf(world: World, ownNamespace: string, namespace: string): GateWorld {
  return {
    excludedNamespaces: new Set(["kube-system", ownNamespace]),
    deployment: (name) => world.deployments.get(`${namespace}/${name}`),
    governingPolicy: (d: Deployment) =>
      governingPolicy(
        world.policies
          .list()
          .filter((p) => p.metadata.namespace === namespace)
          .flatMap((raw) => {
            const parsed = parseCachedPolicy(raw);
            return parsed.ok ? [parsed.policy] : [];
          }),
        d,
      ),
    stableRevision: (d: Deployment) => {
      const rollout = world.targets.get(`${namespace}/${d.metadata.name}`)?.status?.rollout as
        { stableRevision?: unknown } | undefined;
      return typeof rollout?.stableRevision === "string" ? rollout.stableRevision : undefined;
    },
  };
}

export class GateWebhook {
  /** The thread that serves the webhook (gateWorker.ts), apart from the main thread's relists and reconciles. */
  private worker: Worker | undefined;
  private exited: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void)[] = [];
  private state: CertState | undefined;
  private readonly admissions: Counter<"result">;
  private readonly threadRestarts: Counter;
  private readonly stopping = new AbortController();
  private refreshing: Promise<void> | undefined;
  readonly options: GateWebhookOptions;
  private readonly deps: Deps;
  boundPort: number | undefined;

  constructor(options: GateWebhookOptions, deps: Deps) {
    this.options = options;
    this.deps = deps;
    const registers = [deps.metrics.registry];
    this.admissions =
      (deps.metrics.registry.getSingleMetric("healthgate_gate_admissions_total") as Counter<"result">) ??
      new Counter({
        name: "healthgate_gate_admissions_total",
        help: "Pod CREATE admissions answered by the gate webhook, by result (gated, ungated, error).",
        labelNames: ["result"],
        registers,
      });
    this.threadRestarts =
      (deps.metrics.registry.getSingleMetric("healthgate_gate_webhook_thread_restarts_total") as Counter) ??
      new Counter({
        name: "healthgate_gate_webhook_thread_restarts_total",
        help: "Times the gate webhook's serving thread exited unasked and was started again.",
        registers,
      });
  }

  private get settings(): CertSettings {
    const o = this.options;
    return {
      ...DEFAULT_CERT_SETTINGS,
      ...o.cert,
      dnsNames: o.dnsNames,
      ipAddresses: o.ipAddresses ?? [],
      commonName: o.dnsNames[0] ?? o.ipAddresses?.[0] ?? "healthgate-webhook",
    };
  }

  /** Loads (or makes) the certificates, then serves. Retries until stop(). */
  async start(): Promise<void> {
    const signal = this.stopping.signal;
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        await this.refresh();
        if (this.state) break;
      } catch (err) {
        this.deps.logger.warn(
          { err, attempt, secret: this.secretRef() },
          "gate webhook: certificates not ready",
        );
      }
      await delay(Math.min(500 * 2 ** attempt, 10_000), undefined, { signal }).catch(() => {});
    }
    if (signal.aborted || !this.state) return;
    await this.serve();
    void this.refreshLoop();
  }

  /** Starts the serving thread and waits until it listens. */
  private async serve(): Promise<void> {
    const worker = this.startWorker(this.state!);
    this.boundPort = await new Promise<number>((resolve, reject) => {
      worker.on("message", (message: FromGateWorker) => {
        if (message.type === "listening") resolve(message.port);
        else if (message.type === "failed") reject(new Error(`gate webhook: cannot serve: ${message.error}`));
        else this.counted(message);
      });
      worker.once("exit", () => reject(new Error("gate webhook: its thread exited before serving")));
    });
    this.deps.logger.info({ port: this.boundPort }, "gate webhook serving");
  }

  /**
   * The serving thread ended without stop(): /readyz fails at once (boundPort unset, so the
   * Service stops sending this replica admissions), and a new thread starts, with backoff.
   */
  private async restartAfterExit(code: number): Promise<void> {
    const signal = this.stopping.signal;
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    this.unsubscribe = [];
    this.worker = undefined;
    this.boundPort = undefined;
    this.threadRestarts.inc();
    this.deps.logger.error(
      { code },
      "gate webhook: its thread exited; not ready until a new one serves (pods created meanwhile are admitted ungated by the other replicas or fail open)",
    );
    for (let attempt = 0; !signal.aborted; attempt++) {
      await delay(Math.min(1_000 * 2 ** attempt, 30_000), undefined, { signal }).catch(() => {});
      if (signal.aborted) return;
      try {
        await this.serve();
        return;
      } catch (err) {
        this.deps.logger.error({ err, attempt }, "gate webhook: restarting its thread failed");
      }
    }
  }

  /** Stops the serving thread as a crash would (tests: the restart path). */
  async crashThreadForTest(): Promise<void> {
    await this.worker?.terminate();
  }

  /**
   * Starts the serving thread with a snapshot of what the decision reads, and forwards every
   * later change of those caches to it (in the same tick: nothing falls between).
   */
  private startWorker(state: CertState): Worker {
    const { world } = this.deps;
    const own = this.options.namespace;
    const stableOf = (t: KubeObject & { status?: { rollout?: unknown } }) => {
      const rollout = t.status?.rollout as { stableRevision?: unknown } | undefined;
      return typeof rollout?.stableRevision === "string" ? rollout.stableRevision : undefined;
    };
    const policyOf = (raw: KubeObject) => {
      const parsed = parseCachedPolicy(raw);
      return parsed.ok ? gatePolicyOf(parsed.policy) : undefined;
    };
    const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    const config: GateWorkerConfig = {
      port: this.options.port,
      host: this.options.host ?? "0.0.0.0",
      path: GATE_WEBHOOK_PATH,
      ownNamespace: own,
      cert: state.cert,
      key: state.key,
      deployments: world.deployments.list().map((d) => [keyOf(d), gateDeploymentOf(d)]),
      policies: world.policies.list().flatMap((p): [string, GatePolicy][] => {
        const policy = policyOf(p);
        return policy ? [[keyOf(p), policy]] : [];
      }),
      stable: world.targets.list().flatMap((t): [string, string][] => {
        const revision = stableOf(t);
        return revision ? [[keyOf(t), revision]] : [];
      }),
    };
    const worker = new Worker(workerUrl, { workerData: config, name: "healthgate-gate-webhook" });
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    worker.once("exit", (code) => {
      // Only a thread that was serving is restarted here; one that never listened fails serve().
      if (this.stopping.signal.aborted || this.worker !== worker || this.boundPort === undefined) return;
      void this.restartAfterExit(code);
    });
    worker.on("error", (err) => {
      this.deps.logger.error(
        { err },
        "gate webhook: its thread failed; pods are admitted ungated (fail-open)",
      );
    });
    const send = (message: ToGateWorker) => worker.postMessage(message);
    this.unsubscribe = [
      // Only what the decision reads crosses, and only when it changed: most Deployment updates
      // are status writes (healthgate's own conditions among them), which the thread never needs.
      world.deployments.addHandlers({
        add: (d) => send({ type: "deployment", key: keyOf(d), value: gateDeploymentOf(d) }),
        update: (before, d) => {
          const view = gateDeploymentOf(d);
          if (!sameGateDeployment(gateDeploymentOf(before), view))
            send({ type: "deployment", key: keyOf(d), value: view });
        },
        delete: (d) => send({ type: "deployment", key: keyOf(d), value: undefined }),
      }),
      world.policies.addHandlers({
        add: (p) => send({ type: "policy", key: keyOf(p), value: policyOf(p) }),
        update: (_, p) => send({ type: "policy", key: keyOf(p), value: policyOf(p) }),
        delete: (p) => send({ type: "policy", key: keyOf(p), value: undefined }),
      }),
      world.targets.addHandlers({
        add: (t) => send({ type: "stable", key: keyOf(t), value: stableOf(t) }),
        update: (before, t) => {
          const revision = stableOf(t);
          if (revision !== stableOf(before)) send({ type: "stable", key: keyOf(t), value: revision });
        },
        delete: (t) => send({ type: "stable", key: keyOf(t), value: undefined }),
      }),
    ];
    return worker;
  }

  /** healthgate_gate_admissions_total and the decision's debug line, from the thread's report. */
  private counted(message: Extract<FromGateWorker, { type: "admission" }>): void {
    this.admissions.inc({ result: message.result });
    if (message.result === "error") {
      this.deps.logger.error(
        { err: message.error, namespace: message.namespace },
        "gate webhook: decision failed; pod admitted ungated",
      );
    } else {
      this.deps.logger.debug(
        { namespace: message.namespace, name: message.deployment, reason: message.reason },
        "gate decision",
      );
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.refreshing;
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    this.unsubscribe = [];
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    worker.postMessage({ type: "stop" } satisfies ToGateWorker);
    const timer = setTimeout(() => void worker.terminate(), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** The CA bundle the API server should trust (PEM), once loaded. */
  caBundle(): string | undefined {
    return this.state?.bundle;
  }

  private secretRef() {
    return `${this.options.namespace}/${this.options.secretName}`;
  }

  private async refreshLoop(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      await delay(this.options.refreshMs ?? 30_000, undefined, { signal }).catch(() => {});
      if (signal.aborted) return;
      this.refreshing = this.refresh().catch((err: unknown) => {
        this.deps.logger.warn({ err, secret: this.secretRef() }, "gate webhook: certificate refresh failed");
      });
      await this.refreshing;
    }
  }

  /** Reads the Secret, makes a due rotation step, serves what it holds and syncs the caBundle. */
  async refresh(): Promise<void> {
    const { client, logger, clock } = this.deps;
    const { namespace, secretName: name } = this.options;
    const signal = this.stopping.signal;
    let secret: KubeObject & { data?: Record<string, string> };
    try {
      secret = await client.get(resources.secrets, { namespace, name }, signal);
    } catch (err) {
      if (isNotFound(err)) {
        throw new Error(
          `Secret ${namespace}/${name} not found: the chart creates it (empty) for healthgate to fill; ` +
            "re-install the chart or create it with `kubectl create secret generic`",
          { cause: err },
        );
      }
      throw err;
    }
    let state = readCertState(secret.data, secret.metadata.annotations);
    if (this.options.certificates === "self") {
      const plan = planCertificates(state, this.settings, clock.now());
      if (plan) {
        try {
          secret = await client.replace(
            {
              ...secret,
              apiVersion: "v1",
              kind: "Secret",
              metadata: {
                ...secret.metadata,
                annotations: {
                  ...secret.metadata.annotations,
                  [TRUSTED_SINCE_ANNOTATION]: plan.state.caTrustedSince,
                },
              },
              data: { ...secret.data, ...certStateData(plan.state) },
            },
            signal,
          );
          state = plan.state;
          logger.info({ secret: this.secretRef(), reason: plan.step }, "gate webhook: certificates updated");
        } catch (err) {
          // Another replica wrote first: its state is read on the next refresh.
          if (!isConflict(err)) throw err;
        }
      }
    } else if (!state) {
      state = externalState(secret.data);
    }
    if (!state) throw new Error(`Secret ${this.secretRef()} holds no tls.crt and tls.key yet`);
    const changed = state.cert !== this.state?.cert || state.key !== this.state?.key;
    this.state = state;
    if (changed && this.worker) {
      this.worker.postMessage({ type: "cert", cert: state.cert, key: state.key } satisfies ToGateWorker);
    }
    if (this.options.certificates === "self" && this.options.configurationName)
      await this.syncCaBundle(state);
  }

  /**
   * Keeps the configuration's caBundle current. It only ever adds the Secret's CAs and drops
   * expired ones: a replica that has not read the newest Secret yet never takes a new CA out.
   */
  private async syncCaBundle(state: CertState): Promise<void> {
    const name = this.options.configurationName!;
    const { client } = this.deps;
    const signal = this.stopping.signal;
    const config = await client.get<
      KubeObject & { webhooks?: { name: string; clientConfig?: { caBundle?: string } }[] }
    >(resources.mutatingWebhookConfigurations, { name }, signal);
    const now = this.deps.clock.now();
    const operations = (config.webhooks ?? []).flatMap((w, i) => {
      const live = w.clientConfig?.caBundle ? Buffer.from(w.clientConfig.caBundle, "base64").toString() : "";
      const wanted = mergeBundles(state.bundle, live, now);
      if (wanted === live) return [];
      return [
        { op: "test" as const, path: `/webhooks/${i}/name`, value: w.name },
        {
          op: "add" as const,
          path: `/webhooks/${i}/clientConfig/caBundle`,
          value: Buffer.from(wanted).toString("base64"),
        },
      ];
    });
    if (operations.length === 0) return;
    await client.jsonPatch(resources.mutatingWebhookConfigurations, { name }, operations, {
      fieldManager: "healthgate-webhook",
      signal,
    });
    this.deps.logger.info({ name, kind: "MutatingWebhookConfiguration" }, "gate webhook: caBundle updated");
  }
}

/** cert-manager's Secret: tls.crt, tls.key and ca.crt, no CA key. */
function externalState(data: Readonly<Record<string, string>> | undefined): CertState | undefined {
  const get = (k: string) => (data?.[k] ? Buffer.from(data[k], "base64").toString("utf8") : "");
  const cert = get("tls.crt");
  const key = get("tls.key");
  if (!cert || !key) return undefined;
  const ca = get("ca.crt");
  return { cert, key, caCert: ca, caKey: "", bundle: ca, caTrustedSince: "" };
}

/** The Secret's CAs first, then live CAs it no longer lists that are still valid; at most MAX_BUNDLE_CAS. */
export function mergeBundles(secretBundle: string, live: string, nowMs: number): string {
  const wanted = splitPem(secretBundle);
  const normal = (pem: string) => pem.replace(/\s+/g, "");
  const known = new Set(wanted.map(normal));
  for (const pem of splitPem(live)) {
    if (known.has(normal(pem))) continue;
    try {
      if (new X509Certificate(pem).validToDate.getTime() > nowMs) wanted.push(pem);
    } catch {
      // Not a certificate: drop it.
    }
    known.add(normal(pem));
  }
  const merged = wanted.slice(0, MAX_BUNDLE_CAS).join("");
  return normal(merged) === normal(live) ? live : merged;
}
