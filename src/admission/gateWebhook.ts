// The gate webhook (issue 20): HTTPS served by every replica, leader or not, answering
// AdmissionReview v1 for Pod CREATE from the operator's warm caches. It never refuses a pod:
// it adds the `healthgate.io/deep-check` readiness gate or leaves the pod alone. The API
// server calls it with `failurePolicy: Ignore` and a short timeout, so when no replica
// answers, pods are created ungated (fail-open) — visible, never blocking.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { X509Certificate } from "node:crypto";
import { Counter } from "prom-client";
import type { Deployment, Pod } from "../api/k8s.ts";
import { type KubeClient, isConflict, isNotFound, resources, type KubeObject } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import { governingPolicy } from "../policy/governance.ts";
import { decideGate, gatePatch, type GateWorld } from "../policy/gate.ts";
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
const MAX_REVIEW_BYTES = 8 << 20;
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

interface AdmissionRequest {
  uid: string;
  operation?: string;
  namespace?: string;
  object?: Pod;
}

export class GateWebhook {
  private server: Server | undefined;
  private state: CertState | undefined;
  private readonly admissions: Counter<"result">;
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
    const server = createServer(
      { cert: this.state.cert, key: this.state.key, minVersion: "TLSv1.2" },
      (req, res) => this.handle(req, res),
    );
    server.requestTimeout = 10_000;
    server.headersTimeout = 10_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host ?? "0.0.0.0", () => resolve());
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.deps.logger.info({ port: this.boundPort }, "gate webhook serving");
    void this.refreshLoop();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.refreshing;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
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
    if (changed && this.server) this.server.setSecureContext({ cert: state.cert, key: state.key });
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

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "POST" || req.url?.split("?")[0] !== GATE_WEBHOOK_PATH) {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REVIEW_BYTES) req.destroy();
      else chunks.push(chunk);
    });
    req.on("end", () => {
      let review: { request?: AdmissionRequest };
      try {
        review = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { request?: AdmissionRequest };
      } catch {
        res.writeHead(400).end();
        return;
      }
      const request = review.request;
      if (!request?.uid) {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          response: this.answer(request),
        }),
      );
    });
  }

  /** The admission response: always allowed; with the gate's patch when the pod is gated. */
  answer(request: AdmissionRequest): Record<string, unknown> {
    const allowed = { uid: request.uid, allowed: true };
    const pod = request.object;
    if (request.operation !== "CREATE" || !pod?.spec) return allowed;
    const namespace = request.namespace ?? pod.metadata?.namespace ?? "";
    try {
      const decision = decideGate(
        {
          namespace,
          labels: pod.metadata?.labels,
          ownerReferences: pod.metadata?.ownerReferences,
          hostNetwork: pod.spec.hostNetwork,
          readinessGates: pod.spec.readinessGates,
        },
        gateWorldOf(this.deps.world, this.options.namespace, namespace),
      );
      this.deps.logger.debug(
        { namespace, name: decision.deployment, reason: decision.reason },
        "gate decision",
      );
      this.admissions.inc({ result: decision.gate ? "gated" : "ungated" });
      if (!decision.gate) return allowed;
      return {
        ...allowed,
        patchType: "JSONPatch",
        patch: Buffer.from(JSON.stringify(gatePatch(pod.spec))).toString("base64"),
      };
    } catch (err) {
      this.admissions.inc({ result: "error" });
      this.deps.logger.error({ err, namespace }, "gate webhook: decision failed; pod admitted ungated");
      return allowed;
    }
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
