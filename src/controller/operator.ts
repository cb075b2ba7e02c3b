// Assembles the operator: informers (always warm), leader election (only the
// leader reconciles), the reconcile loop, the deep-check prober's thread, and the
// health/metrics server.
import os from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import type { KubeConfig } from "@kubernetes/client-node";
import { DEEP_CHECK_GATE } from "../api/v1alpha1/healthpolicy.ts";
import type {
  Deployment,
  HorizontalPodAutoscaler,
  Pod,
  PodDisruptionBudget,
  ReplicaSet,
} from "../api/k8s.ts";
import { GateWebhook, type GateWebhookOptions } from "../admission/gateWebhook.ts";
import { KubeClient, type KubeObject } from "../kube/client.ts";
import { systemClock, type Clock } from "../kube/clock.ts";
import { LeaderElector } from "../kube/leaderElection.ts";
import { metricsWindowSeconds, PodMetricsHistory } from "../kube/podMetrics.ts";
import type { Logger } from "../observability/logger.ts";
import { createMetrics, type HealthgateMetrics } from "../observability/metrics.ts";
import { HealthServer } from "../observability/server.ts";
import { DEEP_CHECKS_PATH, deepChecksRoute } from "./deepCheckReport.ts";
import { ProberHandle } from "../prober/handle.ts";
import { LivenessWitness } from "./livenessWitness.ts";
import { registerDeepCheckMetrics, type DeepCheckMetrics } from "../prober/metrics.ts";
import { isOwnCondition, ownConditions, sameJson } from "../policy/decide.ts";
import { governingPolicy, policySelects } from "../policy/governance.ts";
import { selectorMatches } from "../policy/selector.ts";
import { guardConcern } from "../policy/guard/concern.ts";
import { headroomConcern } from "../policy/headroom/concern.ts";
import { isManagedPdb, pdbName } from "../policy/headroom/pdb.ts";
import { probesConcern } from "../policy/probes/concern.ts";
import type { Concern } from "../policy/seam.ts";
import type { HealthPolicy } from "../api/v1alpha1/index.ts";
import { runGateSweep } from "./gateSweep.ts";
import { ReconcileLoop } from "./reconcileLoop.ts";
import { deploymentKey, HealthgateReconciler, parseCachedPolicy, policyKey, type Key } from "./reconciler.ts";
import { RolloutGating } from "./rollout.ts";
import { GuardTracker, registerGuardMetrics } from "./guard.ts";
import { registerStatusGauges } from "./statusMetrics.ts";
import { createWorld, type World } from "./world.ts";
import { registerPanicMetrics } from "./panic.ts";
import { registerPacingGauges } from "./pacing.ts";
import type { PacingSettings } from "../policy/pacing.ts";
import type { CachedService } from "./panicServices.ts";

/** Every concern, in the order their contributions merge. Rollout gating and the guard plug in here. */
export const CONCERNS: readonly Concern[] = [probesConcern, headroomConcern, guardConcern];

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  metrics?: HealthgateMetrics;
  /** Namespaces to govern; empty or omitted for all. One namespace scopes the watches too. */
  namespaces?: readonly string[];
  /** Health/metrics port; 0 picks a free one; undefined serves nothing. */
  port?: number | undefined;
  concurrency?: number;
  watchdogMs?: number;
  /** Periodic relist-and-diff of every cache (`--resync-seconds`); 0 or omitted: off. */
  resyncMs?: number;
  leaderElection?:
    | { enabled: false }
    | {
        enabled: true;
        namespace: string;
        name: string;
        leaseDurationMs?: number;
        renewDeadlineMs?: number;
        retryPeriodMs?: number;
      };
  identity?: string;
  clock?: Clock;
  /** How often metrics.k8s.io is polled for namespaces with a Metrics-source policy. Default 30 s. */
  podMetricsIntervalMs?: number;
  /**
   * Whether Enforce can act (the API server serves MutatingAdmissionPolicies). Default: asked
   * of API discovery at start.
   */
  enforceAvailable?: boolean;
  /** The gate webhook (issue 20): served by every replica once the caches synced; omitted: off. */
  gateWebhook?: GateWebhookOptions;
  /** How often the leader opens gates that gating no longer holds (gateSweep.ts). Default 30 s. */
  gateSweepIntervalMs?: number;
  /**
   * Release pacing (`--max-concurrent-rollouts`, `--rollout-slot-timeout-seconds`): at most this
   * many Deployments cluster-wide roll out a release at once. Omitted: DEFAULT_PACING.
   */
  pacing?: PacingSettings;
}

export class Operator {
  readonly world: World;
  readonly metrics: HealthgateMetrics;
  readonly client: KubeClient;
  private readonly options: OperatorOptions;
  private readonly loop: ReconcileLoop;
  readonly reconciler: HealthgateReconciler;
  private readonly server: HealthServer | undefined;
  private readonly podMetrics: PodMetricsHistory;
  private readonly deepCheckMetrics: DeepCheckMetrics;
  /** The out-of-band deep-check prober (its own thread), running while the operator runs; rollout gating gives it targets. */
  prober: ProberHandle | undefined;
  /** The background deep check of stable pods and its liveness witness (spec.rollout.deepCheck.background). */
  readonly liveness: LivenessWitness;
  private readonly rollout: RolloutGating;
  private elector: LeaderElector | undefined;
  private leading: AbortController | undefined;
  private running: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  /** Aborted by stop(): a start still waiting for caches gives up. */
  private readonly stopping = new AbortController();
  /** Set at start from discovery (or the option): MutatingAdmissionPolicies served? */
  private enforceAvailable = true;
  readonly identity: string;
  boundPort: number | undefined;
  /** The gate webhook, when configured; it serves from the caches on every replica. */
  readonly gateWebhook: GateWebhook | undefined;
  private gateServing: Promise<void> | undefined;

  constructor(options: OperatorOptions) {
    this.options = options;
    const { logger } = options;
    this.metrics = options.metrics ?? createMetrics({ processMetrics: true });
    this.client = new KubeClient(options.kubeConfig, { metrics: this.metrics });
    this.identity = options.identity ?? process.env.POD_NAME ?? `${os.hostname()}_${process.pid}`;
    this.world = createWorld({
      client: this.client,
      metrics: this.metrics,
      logger,
      namespace: options.namespaces?.length === 1 ? options.namespaces[0] : undefined,
      ...(options.watchdogMs !== undefined ? { watchdogMs: options.watchdogMs } : {}),
      ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
      keepPod: (pod) => this.needsPod(pod),
    });
    this.podMetrics = new PodMetricsHistory({
      client: this.client,
      targets: () => this.metricsWindows(),
      clock: options.clock ?? systemClock,
      logger,
      onChange: (namespace) => this.metricsChanged(namespace),
      ...(options.podMetricsIntervalMs !== undefined ? { intervalMs: options.podMetricsIntervalMs } : {}),
    });
    this.rollout = new RolloutGating({
      client: this.client,
      logger,
      prober: () => this.prober,
      enqueue: (namespace, name) => this.loop.enqueue(deploymentKey(namespace, name)),
      identity: this.identity,
      enforcing: (policy) => policy.spec.mode === "Enforce" && this.enforceAvailable,
    });
    // The guard's readiness history is fed by the pod cache's events, leader or not.
    const guard = new GuardTracker({
      clock: options.clock ?? systemClock,
      metrics: registerGuardMetrics(this.metrics),
    });
    this.world.pods.addHandlers(guard.podHandlers);
    this.liveness = new LivenessWitness({
      client: this.client,
      clock: options.clock ?? systemClock,
      logger,
      prober: () => this.prober,
      enqueue: (namespace, name) => this.loop.enqueue(deploymentKey(namespace, name)),
    });
    const reconciler = (this.reconciler = new HealthgateReconciler({
      world: this.world,
      client: this.client,
      concerns: CONCERNS,
      clock: options.clock ?? systemClock,
      logger,
      identity: this.identity,
      enqueue: (key) => this.loop.enqueue(key),
      // Low too: while a policy edit's fan-out waits (low), its policy runs once per pass over it,
      // not every interval ahead of it (each run writes a status listing every target).
      enqueuePaced: (key, intervalMs) => this.loop.enqueuePaced(key, intervalMs, { low: true }),
      podMetrics: this.podMetrics,
      metrics: this.metrics,
      enforceAvailable: () => this.enforceAvailable,
      rollout: this.rollout,
      guard,
      liveness: this.liveness,
      panicChanges: registerPanicMetrics(this.metrics),
      ...(options.pacing ? { pacing: options.pacing } : {}),
      ...(options.gateWebhook ? { gateNamespace: options.gateWebhook.namespace } : {}),
    }));
    registerPacingGauges(this.metrics, reconciler.pacer);
    this.loop = new ReconcileLoop(reconciler, {
      name: "healthgate",
      concurrency: options.concurrency ?? 4,
      metrics: this.metrics,
      logger,
      ...(options.clock ? { clock: options.clock } : {}),
    });
    if (options.port !== undefined) {
      this.server = new HealthServer({ port: options.port, metrics: this.metrics, logger });
      this.server.addReadinessCheck("caches", () => this.world.hasSynced() || "informer caches not synced");
      this.server.addJsonRoute(
        DEEP_CHECKS_PATH,
        deepChecksRoute({
          identity: this.identity,
          isLeader: () => this.isLeader(),
          report: (namespace, deployment) => this.rollout.deepCheckReport(namespace, deployment),
        }),
      );
    }
    if (options.gateWebhook) {
      const clock = options.clock ?? systemClock;
      this.gateWebhook = new GateWebhook(options.gateWebhook, {
        client: this.client,
        world: this.world,
        logger: logger.child({ component: "gate-webhook" }),
        metrics: this.metrics,
        clock,
      });
      const webhook = this.gateWebhook;
      this.server?.addReadinessCheck(
        "gate-webhook",
        () => webhook.boundPort !== undefined || "gate webhook not serving",
      );
    }
    registerStatusGauges(this.metrics, this.world);
    this.deepCheckMetrics = registerDeepCheckMetrics(this.metrics);
    this.wireEvents();
  }

  /**
   * Starts caches, the health server and (when elected) reconciling. Resolves once caches
   * synced, or at once when stop() is called first (caches that cannot sync — a missing CRD,
   * missing RBAC — must not keep a SIGTERM waiting).
   */
  start(): Promise<void> {
    this.starting ??= this.startUp();
    return this.starting;
  }

  private async startUp(): Promise<void> {
    const stopping = this.stopping.signal;
    this.boundPort = await this.server?.listen();
    this.prober = ProberHandle.start({ metrics: this.deepCheckMetrics });
    this.prober.subscribe((results) => this.rollout.receive(results));
    this.prober.subscribe((results) => this.liveness.receive(results));
    this.world.start();
    try {
      await this.world.waitForSync(stopping);
      // After the sync: credentials and RBAC work by then, and a stop while discovery waits
      // is not kept waiting either.
      this.enforceAvailable = this.options.enforceAvailable ?? (await this.discoverEnforce(stopping));
    } catch (err) {
      if (stopping.aborted) return;
      throw err;
    }
    if (stopping.aborted) return;
    // Until every cache synced, pods were kept whatever their owner; now drop those no governed
    // Deployment needs.
    this.world.pods.prune();
    this.options.logger.info({ identity: this.identity }, "caches synced");
    // Every replica answers admissions, leader or not: it starts now and serves once its
    // certificates are loaded (it retries until stop()).
    this.gateServing = this.gateWebhook?.start();
    const le = this.options.leaderElection ?? { enabled: false };
    if (!le.enabled) {
      void this.lead(new AbortController().signal);
      return;
    }
    this.elector = new LeaderElector({
      client: this.client,
      namespace: le.namespace,
      name: le.name,
      identity: this.identity,
      ...(le.leaseDurationMs !== undefined ? { leaseDurationMs: le.leaseDurationMs } : {}),
      ...(le.renewDeadlineMs !== undefined ? { renewDeadlineMs: le.renewDeadlineMs } : {}),
      ...(le.retryPeriodMs !== undefined ? { retryPeriodMs: le.retryPeriodMs } : {}),
      onStartedLeading: (signal) => this.lead(signal),
      onStoppedLeading: () => this.running,
      metrics: this.metrics,
      logger: this.options.logger,
    });
    this.elector.start();
  }

  /**
   * Whether the API server serves MutatingAdmissionPolicies (admissionregistration.k8s.io/v1,
   * Kubernetes 1.36+). Discovery errors other than 404 are retried until stop().
   */
  private async discoverEnforce(stopping: AbortSignal): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        const served = await this.client.serves(
          "admissionregistration.k8s.io",
          "v1",
          "mutatingadmissionpolicies",
          stopping,
        );
        if (!served) {
          this.options.logger.warn(
            { reason: "EnforceUnavailable" },
            "the API server serves no MutatingAdmissionPolicies (admissionregistration.k8s.io/v1, Kubernetes 1.36+): " +
              "policies in mode Enforce report EnforceUnavailable and audit only",
          );
        }
        return served;
      } catch (err) {
        if (stopping.aborted) throw err;
        this.options.logger.warn(
          { err, attempt },
          "API discovery of MutatingAdmissionPolicies failed; retrying",
        );
        await delay(Math.min(1_000 * 2 ** attempt, 30_000), undefined, { signal: stopping }).catch(() => {});
      }
    }
  }

  isLeader(): boolean {
    return this.leading !== undefined && !this.leading.signal.aborted;
  }

  private lead(signal: AbortSignal): Promise<void> {
    const previous = this.running;
    const controller = new AbortController();
    signal.addEventListener("abort", () => controller.abort(), { once: true });
    this.leading = controller;
    const term = (async () => {
      // A term starts only once the previous one has fully stopped: its shutdown would
      // otherwise stop this term's metrics poller (the elector already waits; this holds for
      // any caller).
      await previous;
      if (controller.signal.aborted) return;
      this.options.logger.info({ identity: this.identity }, "leading: reconciling");
      // Only the leader reconciles, so only it spends requests on metrics.k8s.io; a new leader
      // starts with an empty history (it is in memory either way).
      this.podMetrics.start(controller.signal);
      const sweep = this.gateSweep(controller.signal);
      try {
        await this.loop.run(controller.signal, this.allKeys());
      } finally {
        await this.podMetrics.stop();
        await sweep;
        // The term's Events still waiting are dropped (their signal aborted), in-flight ones end.
        await this.reconciler.events.drained();
      }
    })();
    this.running = term;
    return term;
  }

  /** The leader opens gates that gating no longer holds, while it leads (only with the gate webhook). */
  private gateSweep(signal: AbortSignal): Promise<void> {
    const webhook = this.options.gateWebhook;
    if (!webhook) return Promise.resolve();
    return runGateSweep(
      {
        client: this.client,
        world: this.world,
        logger: this.options.logger.child({ component: "gate-sweep" }),
        clock: this.options.clock ?? systemClock,
        identity: this.identity,
        namespaces: this.options.namespaces ?? [],
        ownNamespace: webhook.namespace,
        intervalMs: this.options.gateSweepIntervalMs ?? 30_000,
      },
      signal,
    );
  }

  /** Graceful stop: fail /readyz, stop reconciling, release the lease, stop watches. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.server?.markShuttingDown();
    await this.starting?.catch(() => undefined);
    if (this.elector) await this.elector.release();
    this.leading?.abort();
    await this.running;
    await this.prober?.stop();
    await this.gateWebhook?.stop();
    await this.gateServing;
    await this.world.stop();
    await this.server?.close();
  }

  /** Whether a namespace is among those this operator governs. */
  private governs(namespace: string): boolean {
    const only = this.options.namespaces ?? [];
    return only.length === 0 || only.includes(namespace);
  }

  /** Every key worth a first look: all policies and every Deployment some policy selects. */
  private allKeys(): Key[] {
    const keys: Key[] = [];
    for (const p of this.world.policies.list())
      keys.push(policyKey(p.metadata.namespace ?? "", p.metadata.name));
    // A budget healthgate made for a Deployment that nothing governs since it stopped is deleted.
    const managedPdbs = new Set(
      this.world.pdbs
        .list()
        .filter(isManagedPdb)
        .map((pdb) => `${pdb.metadata.namespace}/${pdb.metadata.name}`),
    );
    for (const d of this.world.deployments.list()) {
      const ns = d.metadata.namespace ?? "";
      if (
        this.policiesSelecting(d).length > 0 ||
        (d.status?.conditions ?? []).some(isOwnCondition) ||
        managedPdbs.has(`${ns}/${pdbName(d.metadata.name)}`)
      ) {
        keys.push(deploymentKey(ns, d.metadata.name));
      }
    }
    return keys.filter((key) => this.governs(key.split("/")[1] ?? ""));
  }

  private parsedPolicies(namespace: string): HealthPolicy[] {
    return this.world.policies
      .list()
      .filter((p) => p.metadata.namespace === namespace)
      .flatMap((raw) => {
        const parsed = parseCachedPolicy(raw);
        return parsed.ok ? [parsed.policy] : [];
      });
  }

  /** Namespace → longest window of its Metrics-source policies: what the metrics history polls. */
  private metricsWindows(): Map<string, number> {
    const windows = new Map<string, number>();
    for (const raw of this.world.policies.list()) {
      const ns = raw.metadata.namespace ?? "";
      const parsed = parseCachedPolicy(raw);
      if (!this.governs(ns) || !parsed.ok || parsed.policy.spec.headroom?.source !== "Metrics") continue;
      windows.set(ns, Math.max(windows.get(ns) ?? 0, metricsWindowSeconds(parsed.policy)));
    }
    return windows;
  }

  /** New usage samples: Deployments governed by a Metrics-source policy there look again. */
  private metricsChanged(namespace: string): void {
    const policies = this.parsedPolicies(namespace);
    for (const d of this.world.deployments.list()) {
      if (d.metadata.namespace !== namespace) continue;
      if (governingPolicy(policies, d)?.spec.headroom?.source === "Metrics") {
        this.loop.enqueue(deploymentKey(namespace, d.metadata.name));
      }
    }
  }

  /**
   * Whether a pod belongs to a governed Deployment (through its controlling ReplicaSet): only
   * those are cached. Until the caches synced, and while its ReplicaSet or Deployment is not in
   * the cache yet, a pod is kept: the caches fill in no particular order.
   */
  private needsPod(pod: Pod): boolean {
    if (!this.world.hasSynced()) return true;
    const ns = pod.metadata.namespace ?? "";
    if (!this.governs(ns)) return false;
    // A pod healthgate's gate holds stays cached after its Deployment stops being governed: the
    // gate sweep (gateSweep.ts) finds stranded gates here instead of listing every pod.
    if (pod.spec.readinessGates?.some((g) => g.conditionType === DEEP_CHECK_GATE)) return true;
    const rsRef = pod.metadata.ownerReferences?.find((r) => r.controller && r.kind === "ReplicaSet");
    if (!rsRef) return false;
    const rs = this.world.replicaSets.get(`${ns}/${rsRef.name}`);
    if (!rs) return true;
    const name = rs.metadata.ownerReferences?.find((r) => r.controller && r.kind === "Deployment")?.name;
    if (!name) return false;
    const d = this.world.deployments.get(`${ns}/${name}`);
    return !d || this.policiesSelecting(d).length > 0;
  }

  /** Pods are cached only for governed Deployments: when more become governed, fetch theirs. */
  private governanceWidened(newlyGoverned: boolean): void {
    if (newlyGoverned && this.world.hasSynced()) this.world.pods.refilter();
  }

  private policiesSelecting(d: Deployment): HealthPolicy[] {
    return this.parsedPolicies(d.metadata.namespace ?? "").filter((p) => policySelects(p, d));
  }

  /** Informer events → keys. The handlers only map; reconciles decide. */
  private wireEvents(): void {
    const { world } = this;
    const enqueue = (key: Key) => {
      if (this.governs(key.split("/")[1] ?? "")) this.loop.enqueue(key);
    };
    const deploymentChanged = (d: Deployment, deleted = false) => {
      const ns = d.metadata.namespace ?? "";
      enqueue(deploymentKey(ns, d.metadata.name));
      // The policies that select it are requeued by the Deployment's reconcile, after its
      // writes (requeued now, they would run beside it and again after it). A deleted one has
      // no reconcile; a policy that lists it but selects it no longer (labels changed) must
      // drop it.
      const selecting = new Set(this.policiesSelecting(d).map((p) => p.metadata.name));
      for (const raw of world.policies.list()) {
        if (raw.metadata.namespace !== ns) continue;
        const listed = statusTargetNames(raw).includes(d.metadata.name);
        const selects = selecting.has(raw.metadata.name);
        if (deleted ? listed || selects : listed && !selects) enqueue(policyKey(ns, raw.metadata.name));
      }
    };
    const byDeploymentName = (ns: string, name: string) => {
      const d = world.deployments.get(`${ns}/${name}`);
      if (d) deploymentChanged(d);
    };
    // A policy edit's fan-out to its Deployments queues at low priority: a single change made
    // meanwhile is reconciled first, not after all of them.
    const enqueueLow = (key: Key) => {
      if (this.governs(key.split("/")[1] ?? "")) this.loop.enqueue(key, { low: true });
    };
    const policyChanged = (raw: KubeObject) => {
      const ns = raw.metadata.namespace ?? "";
      enqueue(policyKey(ns, raw.metadata.name));
      for (const name of statusTargetNames(raw)) enqueueLow(deploymentKey(ns, name));
      const parsed = parseCachedPolicy(raw);
      if (!parsed.ok) return;
      for (const d of world.deployments.list()) {
        if (policySelects(parsed.policy, d)) enqueueLow(deploymentKey(ns, d.metadata.name));
      }
    };
    const policyDeleted = (raw: KubeObject) => {
      const ns = raw.metadata.namespace ?? "";
      // Its own key too: that reconcile finds it gone and drops what was remembered of it.
      enqueue(policyKey(ns, raw.metadata.name));
      // Deployments it governed: another policy may govern them now, or none.
      for (const d of world.deployments.list())
        if (d.metadata.namespace === ns) {
          if ((d.status?.conditions ?? []).some(isOwnCondition)) {
            enqueue(deploymentKey(ns, d.metadata.name));
          }
        }
      for (const p of this.parsedPolicies(ns)) enqueue(policyKey(ns, p.metadata.name));
    };
    const ownerDeployment = (rs: ReplicaSet | undefined) =>
      rs?.metadata.ownerReferences?.find((r) => r.controller && r.kind === "Deployment")?.name;

    /** Whether `raw` selects a Deployment that no policy but `raw` (as it was: `before`) selects. */
    const selectsUngoverned = (raw: KubeObject, before?: KubeObject) => {
      const ns = raw.metadata.namespace ?? "";
      const parsed = parseCachedPolicy(raw);
      if (!parsed.ok) return false;
      const prior = before ? parseCachedPolicy(before) : undefined;
      const others = this.parsedPolicies(ns).filter((p) => p.metadata.name !== raw.metadata.name);
      return world.deployments
        .list()
        .some(
          (d) =>
            d.metadata.namespace === ns &&
            policySelects(parsed.policy, d) &&
            !(prior?.ok && policySelects(prior.policy, d)) &&
            !others.some((p) => policySelects(p, d)),
        );
    };
    world.policies.addHandlers({
      add: (raw) => {
        policyChanged(raw);
        this.governanceWidened(selectsUngoverned(raw));
      },
      // Most updates are healthgate's own status writes coming back. Status says what the policy
      // found, not what governs a Deployment: requeue the policy alone, not every target
      // (with N targets, each write would otherwise cost N reconciles).
      update: (o, n) => {
        if (!sameApartFromStatus(o, n)) {
          policyChanged(n);
          this.governanceWidened(selectsUngoverned(n, o));
          return;
        }
        const key = policyKey(n.metadata.namespace ?? "", n.metadata.name);
        if (!this.reconciler.isOwnEcho(key, (n as { status?: unknown }).status)) enqueue(key);
      },
      delete: (raw) => {
        policyDeleted(raw);
        world.pods.prune();
      },
    });
    world.deployments.addHandlers({
      add: deploymentChanged,
      // healthgate's own condition write coming back changes nothing it reads.
      update: (o, n) => {
        const key = deploymentKey(n.metadata.namespace ?? "", n.metadata.name);
        if (sameApartFromOwnConditions(o, n) && this.reconciler.isOwnEcho(key, ownConditions(n))) return;
        // healthgate's own release write coming back: the reconcile that wrote it judged its reply.
        if (!this.reconciler.isReleaseEcho(n)) deploymentChanged(n);
        if (!sameJson(o.metadata.labels, n.metadata.labels)) {
          this.governanceWidened(
            this.policiesSelecting(n).length > 0 && this.policiesSelecting(o).length === 0,
          );
        }
      },
      delete: (d) => deploymentChanged(d, true),
    });
    const rsChanged = (rs: ReplicaSet) => {
      const name = ownerDeployment(rs);
      if (name) byDeploymentName(rs.metadata.namespace ?? "", name);
    };
    world.replicaSets.addHandlers({ add: rsChanged, update: (_o, n) => rsChanged(n), delete: rsChanged });
    const podChanged = (pod: Pod) => {
      const rsRef = pod.metadata.ownerReferences?.find((r) => r.controller && r.kind === "ReplicaSet");
      if (!rsRef) return;
      const ns = pod.metadata.namespace ?? "";
      const name = ownerDeployment(world.replicaSets.get(`${ns}/${rsRef.name}`));
      if (name) byDeploymentName(ns, name);
    };
    // Pod churn matters to headroom (zones) and later to rollout gating; status-only
    // updates of pods that change nothing we cache are filtered by the informer's slim copy.
    world.pods.addHandlers({
      add: podChanged,
      update: (o, n) => {
        if (!sameIgnoringVersion(o, n)) podChanged(n);
      },
      delete: podChanged,
    });
    const hpaChanged = (hpa: HorizontalPodAutoscaler) => {
      if (hpa.spec.scaleTargetRef.kind === "Deployment") {
        byDeploymentName(hpa.metadata.namespace ?? "", hpa.spec.scaleTargetRef.name);
      }
    };
    world.hpas.addHandlers({ add: hpaChanged, update: (_o, n) => hpaChanged(n), delete: hpaChanged });
    // A PDB matters to the governed Deployments whose pods its selector matches, before or after
    // the change (its status moves with every pod readiness change, so nothing wider), and the
    // one healthgate made for a Deployment is that Deployment's business even when nothing
    // governs it any more.
    const pdbChanged = (...versions: PodDisruptionBudget[]) => {
      const ns = versions[0]?.metadata.namespace ?? "";
      let policies: HealthPolicy[] | undefined;
      for (const d of world.deployments.list()) {
        if (d.metadata.namespace !== ns) continue;
        if (versions.some((pdb) => isManagedPdb(pdb) && pdb.metadata.name === pdbName(d.metadata.name))) {
          deploymentChanged(d);
          continue;
        }
        const podLabels = d.spec.template.metadata?.labels ?? {};
        if (!versions.some((pdb) => pdb.spec.selector && selectorMatches(pdb.spec.selector, podLabels)))
          continue;
        policies ??= this.parsedPolicies(ns);
        if (governingPolicy(policies, d)) deploymentChanged(d);
      }
    };
    world.pdbs.addHandlers({ add: pdbChanged, update: (o, n) => pdbChanged(o, n), delete: pdbChanged });
    // Panic mode: a Service matters to the Deployments whose pods it selects, before or after.
    const serviceChanged = (...versions: CachedService[]) => {
      const ns = versions[0]?.metadata.namespace ?? "";
      for (const d of world.deployments.list()) {
        const labels = d.spec.template.metadata?.labels ?? {};
        const selects = (s: CachedService) =>
          Object.keys(s.spec.selector ?? {}).length > 0 &&
          selectorMatches({ matchLabels: s.spec.selector }, labels);
        if (d.metadata.namespace === ns && versions.some(selects))
          enqueue(deploymentKey(ns, d.metadata.name));
      }
    };
    world.services.addHandlers({
      add: serviceChanged,
      update: (o, n) => serviceChanged(o, n),
      delete: serviceChanged,
    });
    // A record deleted or edited by someone else: its Deployment's reconcile restores it.
    // healthgate's own status writes change nothing it reads from there.
    const recordChanged = (t: KubeObject) => byDeploymentName(t.metadata.namespace ?? "", t.metadata.name);
    world.targets.addHandlers({
      add: recordChanged,
      update: (o, n) => {
        if (!sameApartFromStatus(o, n)) recordChanged(n);
      },
      delete: recordChanged,
    });
    // The namespace's release index deleted by someone else: the Deployments it named release again.
    world.releaseIndexes.addHandlers({
      delete: (index) => {
        for (const name of Object.keys(index.status?.deployments ?? {}))
          byDeploymentName(index.metadata.namespace ?? "", name);
      },
    });
  }
}

/** The Deployments a policy's status lists (what it reported on last). */
const statusTargetNames = (raw: KubeObject) =>
  ((raw as { status?: { targets?: { name: string }[] } }).status?.targets ?? []).map((t) => t.name);

/** Whether two cached versions of an object agree once `view` has left out what may differ. */
function sameIn<T extends KubeObject>(a: T, b: T, view: (o: T) => unknown): boolean {
  return sameJson(view(a), view(b));
}
const withoutVersion = <T extends KubeObject>(o: T) => ({
  ...o,
  metadata: { ...o.metadata, resourceVersion: undefined },
});
/** Everything but resourceVersion: the slim cache copies differ in more than that. */
const sameIgnoringVersion = (a: KubeObject, b: KubeObject) => sameIn(a, b, withoutVersion);
/** Everything but status and resourceVersion. */
const sameApartFromStatus = (a: KubeObject, b: KubeObject) =>
  sameIn(a, b, (o) => ({ ...withoutVersion(o), status: undefined }));
/** Everything but healthgate.io/ conditions and resourceVersion. */
const sameApartFromOwnConditions = (a: Deployment, b: Deployment) =>
  sameIn(a, b, (d) => ({
    ...withoutVersion(d),
    status: { ...d.status, conditions: (d.status?.conditions ?? []).filter((c) => !isOwnCondition(c)) },
  }));
