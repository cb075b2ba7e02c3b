// gather → decide → act. A reconcile never branches on why it runs: it reads
// the world from the caches, computes the whole desired state with pure
// functions (src/policy), and makes only the writes whose result differs from
// what is there (DESIGN.md, "The seam").
//
// Two kinds of keys share the one work queue:
//   Deployment/<ns>/<name>    spec apply (Enforce), healthgate.io/ conditions, owned objects
//   HealthPolicy/<ns>/<name>  the policy's status
import type { Deployment, DeploymentCondition, Pod } from "../api/k8s.ts";
import {
  API_VERSION,
  ConditionType,
  KIND,
  RELEASE_SHARD_LABEL,
  releaseShard,
  TargetConditionType,
  type Decision,
  type HealthPolicy,
  type HealthPolicyStatus,
  type HealthTargetStatus,
  type StrategyDecision,
} from "../api/v1alpha1/index.ts";
import { parseHealthPolicy, type ParseResult } from "../api/v1alpha1/parse.ts";
import { conditionEventType, setPolicyCondition } from "../policy/conditions.ts";
import {
  decideTarget,
  deploymentConditions,
  flippedTypes,
  ownConditions,
  policyStatus,
  sameJson,
  type OverlapReport,
  type TargetDecision,
} from "../policy/decide.ts";
import {
  RELEASED_LABEL,
  carriesDecision,
  decisionOf,
  enforceComplianceIntent,
  enforcedCondition,
  guardProblems,
} from "../policy/enforce.ts";
import { governingPolicy, policySelects } from "../policy/governance.ts";
import { isManagedPdb, pdbName } from "../policy/headroom/pdb.ts";
import { selectorMatches } from "../policy/selector.ts";
import { servingFloor } from "../policy/rollout/revisions.ts";
import { strategyDecision } from "../policy/rollout/strategy.ts";
import type { Concern, ConditionIntent, EventIntent, OwnedObject, TargetSnapshot } from "../policy/seam.ts";
import { failOpenCondition } from "../policy/gate.ts";
import {
  apiErrorMessage,
  isConflict,
  isNotFound,
  isRefused,
  resources,
  retryAfterMs,
  type ApplyOptions,
  type KubeClient,
  type KubeObject,
  type ResourceRef,
} from "../kube/client.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import type { Clock } from "../kube/clock.ts";
import { eventFor } from "../kube/events.ts";
import { EventSink } from "../kube/eventSink.ts";
import { metricsWindowSeconds, type PodMetricsHistory } from "../kube/podMetrics.ts";
import type { World } from "./world.ts";
import type { GuardTracker } from "./guard.ts";
import type { LivenessWitness } from "./livenessWitness.ts";
import { newestRevision } from "../policy/rollout/revisions.ts";
import { capacityShrinkHold, releaseHold, type CapacityHold } from "../policy/guard/hold.ts";
import type { Counter } from "prom-client";
import { PanicMode } from "./panic.ts";
import {
  FIELD_MANAGER,
  RELEASE_FIELD_MANAGER,
  STATUS_FIELD_MANAGER,
  type CachedDeployment,
  type CachedTarget,
} from "./world.ts";
import type { Action, Reconciler } from "./reconcileLoop.ts";
import type { RolloutGating } from "./rollout.ts";
import { rollbackHolds, rolloutView, type RolloutOutcome } from "../policy/rollout/gating.ts";
import { ReleaseIndex, indexNameOf } from "./releaseIndex.ts";
import { ReleasePacer, type PacerVerdict } from "./pacing.ts";
import { DEFAULT_PACING, type PacingSettings } from "../policy/pacing.ts";

const parsedPolicies = new WeakMap<KubeObject, ParseResult>();

/**
 * parseHealthPolicy once per cached version of a policy. Informer caches hold frozen objects that
 * are replaced, never changed, so the object is the version; parsing one with a status listing
 * hundreds of targets takes milliseconds, and every event and reconcile of the namespace asks.
 * The result is frozen too: shared, never to be mutated.
 */
export function parseCachedPolicy(raw: KubeObject): ParseResult {
  let parsed = parsedPolicies.get(raw);
  if (!parsed) {
    parsed = deepFreeze(parseHealthPolicy(raw));
    parsedPolicies.set(raw, parsed);
  }
  return parsed;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export { FIELD_MANAGER, RELEASE_FIELD_MANAGER, STATUS_FIELD_MANAGER } from "./world.ts";

/** At most one reconcile of a policy per this interval while its Deployments' reconciles ask for it. */
export const POLICY_STATUS_INTERVAL_MS = 1_000;

export type Key = `Deployment/${string}` | `HealthPolicy/${string}` | `HealthTarget/${string}`;
export const deploymentKey = (ns: string, name: string): Key => `Deployment/${ns}/${name}`;
export const policyKey = (ns: string, name: string): Key => `HealthPolicy/${ns}/${name}`;
/** Only for remembering healthgate's own record-status writes; never queued. */
const targetKey = (ns: string, name: string): Key => `HealthTarget/${ns}/${name}`;

/**
 * The requests a reconcile makes. Each carries the leadership term's abort signal: the
 * parameters optional on KubeClient are required here, so a request without it does not compile.
 */
export interface TermClient {
  get<T extends KubeObject>(ref: ResourceRef, target: Target, signal: AbortSignal): Promise<T>;
  create<T extends KubeObject>(obj: T, signal: AbortSignal): Promise<T>;
  createDiscardingReply(obj: KubeObject, signal: AbortSignal): Promise<void>;
  delete(
    ref: ResourceRef,
    target: Target,
    signal: AbortSignal,
    preconditions?: Parameters<KubeClient["delete"]>[3],
  ): Promise<void>;
  applyObject<T extends KubeObject>(obj: T, options: ApplyOptions & { signal: AbortSignal }): Promise<T>;
  applyDiscardingReply(obj: KubeObject, options: ApplyOptions & { signal: AbortSignal }): Promise<void>;
  jsonPatch<T extends KubeObject>(
    ref: ResourceRef,
    target: Target,
    operations: Parameters<KubeClient["jsonPatch"]>[2],
    options: { fieldManager?: string; signal: AbortSignal; dryRun?: boolean },
  ): Promise<T>;
  list(
    ref: ResourceRef,
    namespace: string,
    query: Parameters<KubeClient["list"]>[2],
    signal: AbortSignal,
  ): ReturnType<KubeClient["list"]>;
  mergePatchStatus<T extends KubeObject>(
    target: Parameters<KubeClient["mergePatchStatus"]>[0],
    status: unknown,
    options: { fieldManager?: string; resourceVersion?: string; signal: AbortSignal },
  ): Promise<T>;
}
type Target = Parameters<KubeClient["get"]>[1];

export interface ReconcilerOptions {
  world: World;
  client: TermClient;
  concerns: readonly Concern[];
  clock: Clock;
  logger: Logger;
  /** Who we are, for Events' reportingInstance. */
  identity: string;
  /** Requeue a key (the queue's add). */
  enqueue: (key: Key) => void;
  /** Requeue a key at most once per `intervalMs` (the queue's addPaced); omitted: `enqueue`. */
  enqueuePaced?: (key: Key, intervalMs: number) => void;
  /** Usage history for Metrics-source headroom; without it that source is always unavailable. */
  podMetrics?: Pick<PodMetricsHistory, "samples">;
  /** Where refused writes are counted (healthgate_writes_refused_total). */
  metrics?: Pick<HealthgateMetrics, "writesRefused"> &
    Partial<Pick<HealthgateMetrics, "eventsDropped" | "eventsPending">>;
  /** Where Events go (sent in the background); omitted: a sink of this reconciler's own. */
  events?: EventSink;
  /**
   * Whether the API server serves MutatingAdmissionPolicies (Kubernetes 1.36+, or the feature
   * gate on): without them Enforce cannot act, and policies in Enforce report EnforceUnavailable
   * and audit. Default true.
   */
  enforceAvailable?: () => boolean;
  /** Rollout gating (spec.rollout): its decision joins the concerns', its writes follow the conditions'. */
  rollout?: RolloutGating;
  /** The correlated-failure guard's readiness history; without it the guard concern reports nothing. */
  guard?: GuardTracker;
  /** The background deep check and its liveness witness (spec.rollout.deepCheck.background). */
  liveness?: LivenessWitness;
  /** healthgate_panic_changes_total (registerPanicMetrics). */
  panicChanges?: Counter<"change">;
  /** Release pacing (maxConcurrentRollouts, slot timeout); omitted: DEFAULT_PACING. */
  pacing?: PacingSettings;
  /**
   * healthgate's own namespace, when the gate webhook runs: then a Deployment whose live pods
   * include some of a gated revision without the gate reports RolloutGated=False (FailedOpen).
   * Without the webhook no pod is gated at admission, so nothing is reported.
   */
  gateNamespace?: string;
}

export class HealthgateReconciler implements Reconciler {
  private readonly o: ReconcilerOptions;
  /**
   * Release writes re-sent per Deployment for one revision. The admission policy reads the
   * namespace's HealthRelease from the API server's own cache, which may not hold the entry
   * written a moment before: a release write that came too early is re-sent (same label:
   * admission runs again) a few times, with backoff, before the record says EnforceNotApplied.
   */
  private readonly releaseRetries = new Map<
    string,
    { revision: string; attempts: number; notBefore: number }
  >();
  /**
   * The record status write last made per Deployment: the release fields the cache showed
   * before it, what it wrote, and when (withRecordWrite reads it until the cache shows the write).
   * The Deployment events a release write causes (the label's own, the controller's) arrive
   * before the record's echo: read from the cache alone, they wrote most records twice, and a
   * paced release lost the time its slot was granted.
   */
  private readonly recordWrites = new Map<
    string,
    { before: Partial<HealthTargetStatus>; written: HealthTargetStatus; atMs: number }
  >();
  /** Deployments whose new decision a correlated failure holds (the ReleaseHeld Event went out). */
  private readonly heldReleases = new Set<string>();
  /**
   * What healthgate last wrote per key: a Deployment's healthgate.io/ conditions, a policy's
   * status. An update that shows exactly that and nothing else new is our own write coming
   * back (isOwnEcho): it needs no reconcile.
   */
  private readonly lastWritten = new Map<Key, unknown>();
  /**
   * The resourceVersion of the object each Deployment's last release write returned. The
   * reconcile that wrote it judged that very object (conditions, record, retry), so its watch
   * echo needs no reconcile of its own (isReleaseEcho); what follows from the new template (the
   * new ReplicaSet, the Deployment controller's status) brings its own events.
   */
  private readonly releaseReplies = new Map<string, string>();
  /**
   * Writes the API server refused, per Deployment key and condition type (refusalKey): an
   * owned object's (HeadroomSufficient), Enforce's release (ProbesCompliant). The condition that
   * says so overrides what the concern decided, on the Deployment and on the policy, until the
   * write succeeds or is no longer wanted.
   */
  private readonly refusals = new Map<string, ConditionIntent>();

  /** Panic mode (spec.guardrails.panic): its own writes, under its own field manager. */
  private readonly panic: PanicMode;
  /** The namespace's HealthRelease: the released decisions as admission reads them. */
  private readonly releaseIndex: ReleaseIndex;
  /** Rollout slots and the queue of releases waiting for one (maxConcurrentRollouts). */
  readonly pacer: ReleasePacer;
  /** Where reconciles' Events go: created in the background, never in a reconcile's path. */
  readonly events: EventSink;

  constructor(options: ReconcilerOptions) {
    this.o = options;
    this.events =
      options.events ??
      new EventSink({
        create: (event, signal) => options.client.createDiscardingReply(event, signal),
        logger: options.logger,
        refused: () => options.metrics?.writesRefused.inc({ write: "event", resource: "events" }),
        dropped: (reason) => options.metrics?.eventsDropped?.inc({ reason }),
        pending: (count) => options.metrics?.eventsPending?.set(count),
      });
    this.pacer = new ReleasePacer({
      settings: options.pacing ?? DEFAULT_PACING,
      clock: options.clock,
      deployment: (key) => options.world.deployments.get(key),
      applied: (key, revision, deployment) => {
        const released = this.releasedOf(key);
        if (released?.revision !== revision) return false;
        const template = deployment.spec.template;
        return carriesDecision(template, released) || guardProblems(template, released).length > 0;
      },
      records: () => options.world.targets.list(),
      released: (key) => this.releasedOf(key)?.revision,
      wake: (namespace, name) => options.enqueue(deploymentKey(namespace, name)),
    });
    this.releaseIndex = new ReleaseIndex(options);
    this.panic = new PanicMode({
      ...options,
      changes: options.panicChanges,
      event: (regarding, type, reason, note, signal) => this.event(regarding, type, reason, note, signal),
    });
  }

  async reconcile(key: string, signal: AbortSignal): Promise<Action> {
    const [kind, namespace, name] = key.split("/") as [string, string, string];
    if (kind === "Deployment") return this.reconcileDeployment(namespace, name, signal);
    if (kind === "HealthPolicy") return this.reconcilePolicy(namespace, name, signal);
    this.o.logger.warn({ key }, "unknown work queue key");
    return {};
  }

  /**
   * A failed reconcile retries after the queue's per-key backoff, but never sooner than the API
   * server asked with Retry-After (a 429 from priority and fairness, some 5xx): client-go's REST
   * client waits that long by itself, ours leaves it to this policy.
   */
  errorPolicy(_key: string, err: unknown, backoffMs: number): Action {
    return { requeueAfterMs: Math.max(backoffMs, retryAfterMs(err, this.o.clock.now()) ?? 0) };
  }

  // ---- gather -------------------------------------------------------------------------------

  /** Valid policies of a namespace; invalid ones report themselves through their own status. */
  private policiesIn(namespace: string): HealthPolicy[] {
    return this.o.world.policies
      .list()
      .filter((p) => p.metadata.namespace === namespace && !p.metadata.deletionTimestamp)
      .flatMap((raw) => {
        const parsed = parseCachedPolicy(raw);
        return parsed.ok ? [parsed.policy] : [];
      });
  }

  /** `commit`: the Deployment's own reconcile, whose look the guard keeps (see GuardTracker.assess). */
  private snapshot(policy: HealthPolicy, deployment: Deployment, commit = false): TargetSnapshot {
    const { world } = this.o;
    const ns = deployment.metadata.namespace ?? "";
    const replicaSets = world.replicaSets.byIndex("owner", deployment.metadata.uid ?? "");
    const pods = replicaSets.flatMap((rs) => world.pods.byIndex("owner", rs.metadata.uid ?? ""));
    const podLabels = deployment.spec.template.metadata?.labels ?? {};
    const pdbs = world.pdbs
      .list()
      .filter(
        (pdb) =>
          pdb.metadata.namespace === ns && pdb.spec.selector && selectorMatches(pdb.spec.selector, podLabels),
      );
    const nodeZones = world.nodeZones();
    const hpa = world.hpas.byIndex("target", `${ns}/${deployment.metadata.name}`)[0];
    const now = new Date(this.o.clock.now());
    const key = { namespace: ns, name: deployment.metadata.name };
    const guard = this.o.guard?.assess(key, policy, pods, nodeZones, commit);
    const livenessWitness = this.o.liveness?.finding(ns, deployment.metadata.name);
    return {
      policy,
      deployment,
      replicaSets,
      pods,
      ...(guard ? { guard } : {}),
      ...(livenessWitness ? { livenessWitness } : {}),
      ...(hpa ? { hpa } : {}),
      pdbs,
      nodeZones,
      ...(policy.spec.headroom?.source === "Metrics" ? { usage: this.usage(policy, ns, pods, now) } : {}),
      now,
    };
  }

  /** The pods' metrics.k8s.io samples over the policy's window. */
  private usage(policy: HealthPolicy, ns: string, pods: readonly Pod[], now: Date) {
    const names = pods.map((p) => p.metadata.name);
    const windowSeconds = metricsWindowSeconds(policy);
    return this.o.podMetrics?.samples(ns, names, windowSeconds, now) ?? ("unavailable" as const);
  }

  // ---- Deployment: spec, conditions, owned objects ------------------------------------------

  private async reconcileDeployment(namespace: string, name: string, signal: AbortSignal): Promise<Action> {
    const deployment = this.o.world.deployments.get(`${namespace}/${name}`);
    if (!deployment || deployment.metadata.deletionTimestamp) {
      // Its PodDisruptionBudget and its record carry an ownerReference to it: the garbage
      // collector deletes them.
      this.lastWritten.delete(deploymentKey(namespace, name));
      this.lastWritten.delete(targetKey(namespace, name));
      for (const type of REFUSABLE) this.refusals.delete(refusalKey(deploymentKey(namespace, name), type));
      this.releaseRetries.delete(`${namespace}/${name}`);
      this.releaseReplies.delete(`${namespace}/${name}`);
      this.recordWrites.delete(`${namespace}/${name}`);
      this.pacer.forget(`${namespace}/${name}`);
      this.o.rollout?.forget(namespace, name);
      this.heldReleases.delete(`${namespace}/${name}`);
      this.o.guard?.forget({ namespace, name });
      this.o.liveness?.forget(namespace, name);
      await this.panic.forget(namespace, name, signal);
      await this.releaseIndex.withdraw(namespace, name, signal);
      return {};
    }
    await this.migrateFromV01(deployment, signal);
    // A slot whose rollout completed (this Deployment's, perhaps) goes to the next in line.
    this.pacer.tick();
    const now = new Date(this.o.clock.now());
    const policies = this.policiesIn(namespace);
    const policy = governingPolicy(policies, deployment);
    if (!policy) {
      // No longer governed: remove what healthgate made for it (its budget, its record), and take
      // our conditions off (SSA drops what the manager stops sending). The template keeps what it
      // has: leaving Enforce writes nothing there.
      await this.applyOwnedObjects(deployment, [], signal);
      await this.writeDeploymentConditions(deployment, [], now, signal);
      await this.panic.reconcile(undefined, deployment, [], signal);
      await this.deleteRecord(namespace, name, signal);
      this.recordWrites.delete(`${namespace}/${name}`);
      this.pacer.forget(`${namespace}/${name}`);
      this.heldReleases.delete(`${namespace}/${name}`);
      this.o.rollout?.forget(namespace, name);
      this.o.guard?.forget({ namespace, name });
      this.o.liveness?.forget(namespace, name);
      await this.releaseIndex.withdraw(namespace, name, signal);
      return {};
    }
    const witnessRequeueMs = await this.observeLiveness(policy, deployment, signal);
    const snapshot = this.snapshot(policy, deployment, true);
    const decision = decideTarget(snapshot, this.o.concerns);
    const strategy = strategyDecision(
      policy.spec.rollout,
      servingFloor(snapshot, policy.spec.headroom),
      deployment.spec.replicas ?? 1,
    );
    const release = await this.release(
      policy,
      deployment,
      decision,
      now,
      signal,
      capacityShrinkHold(snapshot),
      strategy,
    );
    const panicRequeueMs = await this.panic.reconcile(policy, deployment, snapshot.pods, signal);
    const key = deploymentKey(namespace, name);
    const refused =
      (await this.applyOwnedObjects(deployment, decision.ownedObjects, signal)) ?? release.refused;
    const record = this.o.world.targets.get(`${namespace}/${name}`);
    const gating = await this.o.rollout?.decide(policy, snapshot, record, signal);
    const decided = this.withFailOpen(
      withRollout(
        this.withRefusal(
          key,
          release.released ? withEnforceCompliance(decision, release.live, release.released) : decision,
        ),
        gating,
      ),
      policy,
      snapshot,
      gating?.state?.stableRevision,
    );
    // Events about the Deployment: one that explains a condition goes out when that condition
    // flips (below); the others (LivenessDeepReplaced) go out with the release they announce.
    const aboutDeployment = decided.events.filter((e) => e.regarding === "Deployment" && !e.immediate);
    const reasons = new Set(decided.conditions.map((c) => c.reason));
    if (release.wrote) {
      for (const e of aboutDeployment.filter((e) => !reasons.has(e.reason)))
        await this.event(deployment, e.type, e.reason, e.message, signal);
    }
    // Judged from the release write's reply when there was one: the template admission left.
    await this.writeDeploymentConditions(release.live, decided.conditions, now, signal, aboutDeployment);
    // RolloutHealthy (NewRevision first) is written before any gate and before the record says
    // which generation it is about.
    if (gating) await this.o.rollout?.act(policy, snapshot, record, gating, signal);
    for (const e of decided.events.filter((e) => e.immediate))
      await this.event(deployment, e.type, e.reason, e.message, signal);
    // Every policy selecting it reports on it: the governing one, and any other as overlapping.
    // Paced: a policy's reconcile decides all its Deployments again, so while they churn (a policy
    // edit over 1,000) it runs once per interval, not once per Deployment (O(N²) otherwise).
    for (const p of policies) {
      if (!policySelects(p, deployment)) continue;
      const key = policyKey(namespace, p.metadata.name);
      if (this.o.enqueuePaced) this.o.enqueuePaced(key, POLICY_STATUS_INTERVAL_MS);
      else this.o.enqueue(key);
    }
    const requeueMs = [
      decided.requeueAfterSeconds !== undefined ? decided.requeueAfterSeconds * 1000 : undefined,
      release.retryAfterMs,
      release.recheckMs,
      panicRequeueMs,
      witnessRequeueMs,
    ].filter((v): v is number => v !== undefined && v > 0);
    // A refused write backs off like any failed reconcile, after saying so in status.
    if (refused) throw refused;
    return requeueMs.length > 0 ? { requeueAfterMs: Math.min(...requeueMs) } : {};
  }

  /** The background deep check of a sample of stable pods, and what their liveness did (before the snapshot reads it). */
  private observeLiveness(policy: HealthPolicy, deployment: Deployment, signal: AbortSignal) {
    if (!this.o.liveness) return undefined;
    const { world } = this.o;
    const replicaSets = world.replicaSets.byIndex("owner", deployment.metadata.uid ?? "");
    const pods = replicaSets.flatMap((rs) => world.pods.byIndex("owner", rs.metadata.uid ?? ""));
    const ns = deployment.metadata.namespace ?? "";
    const revision = newestRevision(deployment, replicaSets);
    return this.o.liveness.observe(policy, ns, deployment.metadata.name, pods, revision, signal);
  }

  /** The decision released for Deployment `namespace/name` (the index holds it). */
  private releasedOf(key: string): Decision | undefined {
    const slash = key.indexOf("/");
    return this.releaseIndex.released(key.slice(0, slash), key.slice(slash + 1));
  }

  /** Whether this policy's Enforce can act: mode Enforce on a cluster that serves MutatingAdmissionPolicies. */
  private enforcing(policy: HealthPolicy): boolean {
    return policy.spec.mode === "Enforce" && (this.o.enforceAvailable?.() ?? true);
  }

  /**
   * Enforce: the record (HealthTarget, named after the Deployment) and the release. Puts the
   * released decision into the namespace's index, then — when the Deployment's release label
   * does not name it yet — makes healthgate's release write: the label alone, under its own
   * field manager, so the MutatingAdmissionPolicy runs and writes the decision into the
   * template; then writes the record's status, judged from the write's reply, when it changed.
   * The index alone holds the released decision: the record says whether the template carries
   * it (Enforced), what is stable, what a guard keeps out and what pacing waits for, none of
   * which a policy edit that rolls out changes, so such a release writes no record. Outside
   * Enforce nothing is released and nothing is written to the Deployment. Returns the
   * released decision, if any, and the Deployment as the server last returned it.
   */
  private async release(
    policy: HealthPolicy,
    deployment: Deployment,
    decision: TargetDecision,
    now: Date,
    signal: AbortSignal,
    capacityHold?: CapacityHold,
    strategy?: StrategyDecision,
  ): Promise<{
    released?: Decision;
    wrote: boolean;
    /** The release write's reply, else the cached Deployment. */
    live: Deployment;
    retryAfterMs?: number;
    recheckMs?: number;
    refused?: unknown;
  }> {
    const namespace = deployment.metadata.namespace ?? "";
    const name = deployment.metadata.name;
    const nowMs = now.getTime();
    const record = this.withRecordWrite(
      `${namespace}/${name}`,
      this.o.world.targets.get(`${namespace}/${name}`),
      nowMs,
    );
    const enforce = this.enforcing(policy) && decision.ownedSpec !== undefined;
    const wanted = enforce && decision.ownedSpec ? decisionOf(decision.ownedSpec, strategy) : undefined;
    // onFailure Rollback: while the rollback holds, admission applies the decision the stable
    // revision carries (the record keeps it), not a newer one, until a human asks (docs/rollouts.md).
    // It is neither held nor paced: it waits for no slot and holds none.
    const rollout = this.o.rollout?.stateOf(namespace, name, record);
    const pinned =
      wanted && policy.spec.rollout?.onFailure === "Rollback" && rollbackHolds(rollout)
        ? record?.status?.stable
        : undefined;
    // Until the restore is written, no release write: admission would put the stable decision into
    // the failed template (one more ReplicaSet). The restore's own write runs admission.
    const restoring = pinned !== undefined && rollout?.rollback?.phase === "Pending";
    // A correlated failure holds a new decision (releasing it rolls the Deployment): the one
    // released before stays, the record says what waits and why, and it takes no rollout slot.
    // What was released before: the index holds it (the record does not).
    const before = this.releaseIndex.released(namespace, name);
    const held = pinned ? undefined : releaseHold(capacityHold, before, wanted);
    // Pacing: a new decision that would roll the Deployment waits for a rollout slot; meanwhile
    // the index keeps releasing the previous one (or none), so no write of the Deployment,
    // healthgate's or anyone's, carries the new one before its turn.
    const paced =
      wanted && !held && !pinned
        ? this.paceRelease(`${namespace}/${name}`, wanted, deployment, record, before, now)
        : undefined;
    // Out of Enforce (or nothing to decide), or rolled back: it neither waits nor rolls for healthgate.
    if (!wanted || pinned) this.pacer.forget(`${namespace}/${name}`);
    const released = pinned ?? (held ? before : paced?.released);
    const refusal = refusalKey(deploymentKey(namespace, name), ConditionType.ProbesCompliant);
    // What is being written, for the condition that says so when the API server refuses it.
    let writing = `HealthTarget ${namespace}/${name}`;
    try {
      await this.applyRecordSpec(policy, deployment, record, signal);
      writing = `HealthRelease ${namespace}/${indexNameOf(name)}`;
      if (released) {
        const others =
          !this.releaseIndex.carries(namespace, name, released) && paced !== undefined
            ? this.shardReleases(namespace, name, now)
            : undefined;
        await this.releaseIndex.publish(namespace, name, released, signal, others);
      } else if (!held) await this.releaseIndex.withdraw(namespace, name, signal);
      if (held && wanted && !this.heldReleases.has(`${namespace}/${name}`)) {
        this.heldReleases.add(`${namespace}/${name}`);
        this.o.logger.info(
          { namespace, name, kind: "Deployment", revision: wanted.revision },
          "holding the Enforce decision: correlated failure",
        );
        await this.event(deployment, "Warning", "ReleaseHeld", heldMessage(held, wanted, released), signal);
      } else if (!held) this.heldReleases.delete(`${namespace}/${name}`);
      const labels = released && {
        [RELEASED_LABEL]: released.revision,
        [RELEASE_SHARD_LABEL]: releaseShard(name),
      };
      const current =
        labels !== undefined &&
        Object.entries(labels).every(([k, v]) => deployment.metadata.labels?.[k] === v);
      let retry =
        released && current ? this.retryRelease(namespace, name, deployment, released, nowMs) : undefined;
      // The Deployment the status is judged from: the release write's reply when there is one
      // (the object the server holds, the template as admission left it), else the cache's.
      let live: Deployment = deployment;
      let wrote = false;
      if (released && !restoring && (!current || retry?.resend === true)) {
        wrote = true;
        writing = `the label ${RELEASED_LABEL} of Deployment ${namespace}/${name}`;
        live = (await this.o.client.applyObject(
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name, namespace, labels },
          },
          { fieldManager: RELEASE_FIELD_MANAGER, force: true, signal },
        )) as unknown as Deployment;
        const replied = live.metadata.resourceVersion;
        if (replied !== undefined) this.releaseReplies.set(`${namespace}/${name}`, replied);
        this.o.logger.info(
          { namespace, name, kind: "Deployment", revision: released.revision },
          "released the Enforce decision",
        );
        // A release write admission did not apply: its view of the index lags the entry just
        // written. Re-sent shortly (retryRelease), not reported as EnforceNotApplied yet.
        retry = this.releaseLanded(namespace, name, live, released)
          ? undefined
          : (retry ?? this.firstReleaseMissed(namespace, name, released, nowMs));
      }
      // Still releasing while re-sends are under way: judged as not yet written, so neither the
      // record nor the conditions flip to EnforceNotApplied and back for a lagging cache.
      const releasing = released !== undefined && retry !== undefined;
      if (releasing) live = withoutReleaseLabel(live);
      // The record's status after the release write, so that one write says both what is
      // released and whether the live template carries it (written before, it said "not yet"
      // and needed a second write once the template did).
      const status: HealthTargetStatus = {
        ...recordStatus(record?.status, released, live, now, held && wanted && { hold: held, wanted }),
        ...(paced
          ? { pacing: paced.pacing }
          : held && record?.status?.pacing
            ? { pacing: record.status.pacing }
            : {}),
      };
      writing = `the status of HealthTarget ${namespace}/${name}`;
      // Only the release's own fields: status.rollout and the other parts' fields are not its own.
      const releaseFields = releaseFieldsOf(record?.status);
      const pacing = record?.status?.pacing;
      if (!wanted && Object.values(releaseFields).some((v) => v !== undefined)) {
        // Leaving Enforce: withdraw the decision (a merge patch of nulls; admission then has
        // nothing to apply). The Deployment keeps what it has: leaving writes nothing there.
        await this.o.client.mergePatchStatus(
          { apiVersion: API_VERSION_TARGET, kind: "HealthTarget", namespace, name },
          { stable: null, guard: null, conditions: null, pacing: null },
          { fieldManager: STATUS_FIELD_MANAGER, signal },
        );
      } else if (
        wanted &&
        !sameJson(releaseFields, status) &&
        !(releasing && sameJson(pacing, status.pacing))
      ) {
        // (While releasing, the write waits for the outcome: one write, not "releasing" then "enforced".)
        await this.applyStatus(
          targetKey(namespace, name),
          { metadata: { name, namespace } },
          API_VERSION_TARGET,
          status,
          status,
          signal,
        );
        this.recordWrites.set(`${namespace}/${name}`, {
          before: releaseFieldsOf(this.o.world.targets.get(`${namespace}/${name}`)?.status),
          written: status,
          atMs: nowMs,
        });
      }
      this.refusals.delete(refusal);
      return {
        ...(released ? { released } : {}),
        wrote,
        live,
        ...(retry !== undefined ? { retryAfterMs: retry.recheckMs } : {}),
        ...(paced?.recheckMs !== undefined ? { recheckMs: paced.recheckMs } : {}),
      };
    } catch (err) {
      if (!isRefused(err)) throw err;
      this.pacer.refused(`${namespace}/${name}`);
      await this.refused(deployment, err, signal, {
        type: ConditionType.ProbesCompliant,
        what: writing,
        write: "release",
        resource: writing.startsWith("the label") ? resources.deployments.plural : writing.split(" ")[0]!,
        consequence:
          "The template does not carry healthgate's decision until this is fixed: lift the refusal (an " +
          "admission policy or RBAC), or set the HealthPolicy's spec.mode to Audit.",
      });
      return { ...(released ? { released } : {}), wrote: false, live: deployment, refused: err };
    }
  }

  /**
   * With pacing off, the new decisions the other Deployments of `name`'s index shard would
   * release in their own reconciles now, decided as those would decide them: released before
   * (a policy edit, not a first enforcement), neither held by a correlated failure nor pinned by
   * a rollback. Their entries go into the index with this release: one patch for the shard, and
   * there by the time their own release writes come. Each release write stays its own.
   */
  private shardReleases(namespace: string, name: string, now: Date): Map<string, Decision> {
    const others = new Map<string, Decision>();
    if (this.pacer.settings.maxConcurrentRollouts > 0) return others;
    const shard = releaseShard(name);
    const policies = this.policiesIn(namespace);
    for (const deployment of this.o.world.deployments.list()) {
      const other = deployment.metadata.name;
      if (
        deployment.metadata.namespace !== namespace ||
        other === name ||
        deployment.metadata.deletionTimestamp ||
        releaseShard(other) !== shard
      )
        continue;
      const policy = governingPolicy(policies, deployment);
      if (!policy || !this.enforcing(policy)) continue;
      const key = `${namespace}/${other}`;
      const record = this.withRecordWrite(key, this.o.world.targets.get(key), now.getTime());
      const before = this.releaseIndex.released(namespace, other);
      if (!before) continue;
      const snapshot = this.snapshot(policy, deployment);
      const ownedSpec = decideTarget(snapshot, this.o.concerns).ownedSpec;
      if (!ownedSpec) continue;
      const wanted = decisionOf(
        ownedSpec,
        strategyDecision(
          policy.spec.rollout,
          servingFloor(snapshot, policy.spec.headroom),
          deployment.spec.replicas ?? 1,
        ),
      );
      if (wanted.revision === before.revision) continue;
      const rollout = this.o.rollout?.stateOf(namespace, other, record);
      if (policy.spec.rollout?.onFailure === "Rollback" && rollbackHolds(rollout)) continue;
      if (releaseHold(capacityShrinkHold(snapshot), before, wanted)) continue;
      others.set(other, wanted);
    }
    return others;
  }

  /**
   * The decision to release now, and the record's status.pacing: `wanted` when it needs no slot
   * or gets one, else the previously released decision (if any) while `wanted` waits in the queue.
   */
  private paceRelease(
    key: string,
    wanted: Decision,
    deployment: Deployment,
    record: CachedTarget | undefined,
    previous: Decision | undefined,
    now: Date,
  ): { released?: Decision; pacing: NonNullable<HealthTargetStatus["pacing"]>; recheckMs?: number } {
    const before = record?.status?.pacing;
    if (previous?.revision === wanted.revision) {
      // Released already: whatever waited before (a newer decision that is wanted no more) waits no more.
      this.pacer.settled(key);
      return {
        released: wanted,
        pacing: before?.state === "Released" ? before : { state: "Released" },
      };
    }
    const verdict: PacerVerdict = this.pacer.decide(
      key,
      wanted.revision,
      !carriesDecision(deployment.spec.template, wanted),
    );
    if (verdict.release) {
      if (verdict.reason !== "NoTemplateChange" && verdict.reason !== "Unpaced") {
        this.o.logger.info(
          {
            namespace: deployment.metadata.namespace,
            name: deployment.metadata.name,
            kind: "Deployment",
            revision: wanted.revision,
            reason: verdict.reason,
          },
          "releasing the Enforce decision (pacing)",
        );
      }
      return {
        released: wanted,
        pacing: {
          state: "Released",
          ...(verdict.slot ? { since: new Date(verdict.slot.since).toISOString() } : {}),
        },
      };
    }
    const since = new Date(verdict.queuedSince ?? now.getTime()).toISOString();
    return {
      ...(previous ? { released: previous } : {}),
      pacing: { state: "Queued", pendingRevision: wanted.revision, since },
      ...(verdict.recheckMs !== undefined ? { recheckMs: verdict.recheckMs } : {}),
    };
  }

  /**
   * Whether to re-send a release the template does not show yet, and after how long to look
   * again: undefined when there is nothing to re-send (it landed, a guard keeps it out) or the
   * re-sends ran out (the record then says EnforceNotApplied). A re-send waits for its backoff
   * (250 ms · 2^attempt): the reconciles its own write triggers do not spend the attempts.
   */
  private retryRelease(
    namespace: string,
    name: string,
    deployment: Deployment,
    released: Decision,
    nowMs: number,
  ): { resend: boolean; recheckMs: number } | undefined {
    const key = `${namespace}/${name}`;
    if (
      carriesDecision(deployment.spec.template, released, deployment.spec) ||
      guardProblems(deployment.spec.template, released, deployment.spec).length > 0
    ) {
      this.releaseRetries.delete(key);
      return undefined;
    }
    const previous = this.releaseRetries.get(key);
    const same = previous?.revision === released.revision;
    if (same && previous.attempts <= MAX_RELEASE_RETRIES && nowMs < previous.notBefore)
      return { resend: false, recheckMs: previous.notBefore - nowMs };
    const attempts = same ? previous.attempts + 1 : 1;
    if (attempts > MAX_RELEASE_RETRIES) return undefined;
    const recheckMs = RELEASE_RETRY_BASE_MS * 2 ** attempts;
    this.releaseRetries.set(key, { revision: released.revision, attempts, notBefore: nowMs + recheckMs });
    return { resend: true, recheckMs };
  }

  /**
   * The record as this process last wrote its release fields while the cache has not shown that
   * write yet (it still shows the fields from before it, for at most RECORD_ECHO_MS); else the
   * cached record. Decisions read from it (pacing's slot, what is released) then follow the
   * newest write, as the Deployment events that a release write causes arrive before the
   * record's own echo; and the same status is not written twice.
   */
  private withRecordWrite(key: string, cached: CachedTarget | undefined, nowMs: number) {
    const last = this.recordWrites.get(key);
    if (!last) return cached;
    if (nowMs - last.atMs >= RECORD_ECHO_MS || !sameJson(releaseFieldsOf(cached?.status), last.before)) {
      this.recordWrites.delete(key);
      return cached;
    }
    if (!cached) return cached;
    return { ...cached, status: { ...withoutReleaseFields(cached.status), ...last.written } };
  }

  /** Whether the release write's reply carries the decision (or a guard keeps it out): nothing to re-send. */
  private releaseLanded(namespace: string, name: string, reply: Deployment, released: Decision): boolean {
    const landed =
      carriesDecision(reply.spec.template, released, reply.spec) ||
      guardProblems(reply.spec.template, released, reply.spec).length > 0;
    if (landed) this.releaseRetries.delete(`${namespace}/${name}`);
    return landed;
  }

  /** The first release write's reply lacks the decision: attempt 0, re-sent after the base backoff. */
  private firstReleaseMissed(
    namespace: string,
    name: string,
    released: Decision,
    nowMs: number,
  ): { resend: boolean; recheckMs: number } {
    this.releaseRetries.set(`${namespace}/${name}`, {
      revision: released.revision,
      attempts: 0,
      notBefore: nowMs + RELEASE_RETRY_BASE_MS,
    });
    return { resend: false, recheckMs: RELEASE_RETRY_BASE_MS };
  }

  /** The record's spec and ownerReference (the Deployment: the record goes when it goes). */
  private async applyRecordSpec(
    policy: HealthPolicy,
    deployment: Deployment,
    record: CachedTarget | undefined,
    signal: AbortSignal,
  ) {
    const uid = deployment.metadata.uid ?? "";
    const spec = { deployment: deployment.metadata.name, policy: policy.metadata.name };
    if (
      record &&
      sameJson(record.spec, spec) &&
      record.metadata.ownerReferences?.some((r) => r.uid === uid)
    ) {
      return;
    }
    await this.o.client.applyObject(
      {
        apiVersion: API_VERSION_TARGET,
        kind: "HealthTarget",
        metadata: {
          name: deployment.metadata.name,
          namespace: deployment.metadata.namespace ?? "",
          ownerReferences: [
            {
              apiVersion: "apps/v1",
              kind: "Deployment",
              name: deployment.metadata.name,
              uid,
              controller: true,
            },
          ],
        },
        spec,
      } as KubeObject,
      { fieldManager: FIELD_MANAGER, force: true, signal },
    );
  }

  private async deleteRecord(namespace: string, name: string, signal: AbortSignal) {
    if (!this.o.world.targets.get(`${namespace}/${name}`)) return;
    try {
      await this.o.client.delete(resources.healthTargets, { namespace, name }, signal);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Upgrade from v0.1, whose Enforce was a forced server-side apply as field manager
   * `healthgate`: that entry co-owns container items (a GitOps rename then fails validation).
   * Remove the entry, and nothing else: every value stays. A JSON patch of managedFields alone,
   * guarded by "test" so an entry list that moved on fails the patch instead.
   */
  private async migrateFromV01(deployment: CachedDeployment, signal: AbortSignal) {
    const index = deployment.v01ManagedFieldsIndex;
    if (index === undefined) return;
    const path = `/metadata/managedFields/${index}`;
    await this.o.client.jsonPatch(
      resources.deployments,
      { namespace: deployment.metadata.namespace, name: deployment.metadata.name },
      [
        { op: "test", path: `${path}/manager`, value: FIELD_MANAGER },
        { op: "test", path: `${path}/operation`, value: "Apply" },
        { op: "remove", path },
      ],
      { signal },
    );
    this.o.logger.info(
      { namespace: deployment.metadata.namespace, name: deployment.metadata.name, kind: "Deployment" },
      "removed v0.1's healthgate field manager entry (values unchanged)",
    );
  }

  /**
   * The one status write: a forced server-side apply of `status` on `of`'s status subresource
   * as healthgate-status. `written` (what isOwnEcho will compare) is recorded before the
   * request, because the watch may deliver the write before its response arrives.
   */
  private async applyStatus(
    key: Key,
    of: KubeObject,
    apiVersion: string,
    status: unknown,
    written: unknown,
    signal: AbortSignal,
  ): Promise<void> {
    this.lastWritten.set(key, written);
    try {
      await this.o.client.applyDiscardingReply(
        {
          apiVersion,
          kind: key.slice(0, key.indexOf("/")),
          metadata: { name: of.metadata.name, namespace: of.metadata.namespace ?? "" },
          status,
        } as KubeObject,
        { fieldManager: STATUS_FIELD_MANAGER, force: true, subresource: "status", signal },
      );
    } catch (err) {
      this.lastWritten.delete(key);
      // A refused status write cannot report itself in status: a metric and a log line do.
      if (isRefused(err)) {
        const kind = key.slice(0, key.indexOf("/"));
        this.o.metrics?.writesRefused.inc({ write: "status", resource: `${kind}/status` });
        this.o.logger.warn(
          {
            namespace: of.metadata.namespace,
            name: of.metadata.name,
            kind,
            reason: "StatusWriteRefused",
            err: apiErrorMessage(err),
          },
          "the API server refused healthgate's status write",
        );
      }
      throw err;
    }
  }

  /**
   * Whether `written` (a Deployment's healthgate.io/ conditions sorted by type, or a policy's
   * status) is exactly what healthgate last wrote for `key`. The caller has checked that
   * nothing else changed. Anything else — a user who deleted our conditions, a status another
   * replica wrote — is no echo and gets its reconcile.
   */
  isOwnEcho(key: Key, written: unknown): boolean {
    return this.lastWritten.has(key) && sameJson(this.lastWritten.get(key), written);
  }

  /**
   * Whether `d` is the version of the Deployment that healthgate's own release write returned:
   * the reconcile that made the write judged that object already. Told once per write.
   */
  isReleaseEcho(d: Deployment): boolean {
    const key = `${d.metadata.namespace ?? ""}/${d.metadata.name}`;
    if (
      d.metadata.resourceVersion === undefined ||
      this.releaseReplies.get(key) !== d.metadata.resourceVersion
    )
      return false;
    this.releaseReplies.delete(key);
    return true;
  }

  /** Whether healthgate still keeps what it last wrote for `key` (dropped once the object is gone). */
  remembersWrite(key: Key): boolean {
    return this.lastWritten.has(key);
  }
  /**
   * RolloutGated=False (FailedOpen) while live pods of a gated revision carry no gate (issue 20):
   * judged from the Deployment's pods in the cache, against the stable revision the rollout
   * logic holds now — the same judgement the webhook makes at admission.
   */
  private withFailOpen(
    decision: TargetDecision,
    policy: HealthPolicy,
    snapshot: TargetSnapshot,
    stableRevision: string | undefined,
  ): TargetDecision {
    const ownNamespace = this.o.gateNamespace;
    if (ownNamespace === undefined) return decision;
    const { deployment } = snapshot;
    const intent = failOpenCondition(
      deployment.metadata.name,
      snapshot.pods.map((pod) => ({
        name: pod.metadata.name,
        namespace: pod.metadata.namespace ?? "",
        labels: pod.metadata.labels,
        ownerReferences: pod.metadata.ownerReferences,
        hostNetwork: pod.spec.hostNetwork,
        readinessGates: pod.spec.readinessGates,
        deleting: pod.metadata.deletionTimestamp !== undefined,
      })),
      {
        excludedNamespaces: new Set(["kube-system", ownNamespace]),
        deployment: (name) => (name === deployment.metadata.name ? deployment : undefined),
        governingPolicy: () => policy,
        stableRevision: () => stableRevision,
      },
    );
    if (!intent) return decision;
    return { ...decision, conditions: [...decision.conditions, intent] };
  }

  /** A refused write overrides the condition it affects (see `refusals`). */
  private withRefusal(key: string, decision: TargetDecision): TargetDecision {
    const refusals = REFUSABLE.flatMap((type) => this.refusals.get(refusalKey(key, type)) ?? []);
    if (refusals.length === 0) return decision;
    return {
      ...decision,
      conditions: [
        ...decision.conditions.filter((c) => !refusals.some((r) => r.type === c.type)),
        ...refusals,
      ],
    };
  }

  private async writeDeploymentConditions(
    deployment: Deployment,
    intents: readonly ConditionIntent[],
    now: Date,
    signal: AbortSignal,
    explained: readonly EventIntent[] = [],
  ) {
    const { conditions, changed } = deploymentConditions(deployment, intents, now);
    if (!changed) return;
    const key = deploymentKey(deployment.metadata.namespace ?? "", deployment.metadata.name);
    await this.applyStatus(key, deployment, "apps/v1", { conditions }, conditions, signal);
    for (const type of flippedTypes(ownConditions(deployment), conditions)) {
      const c = conditions.find((x) => x.type === type) as DeploymentCondition;
      // A concern's own Event for this reason says more than the condition's message.
      const own = explained.find((e) => e.reason === c.reason);
      await this.event(
        deployment,
        own?.type ?? conditionEventType(type, c.status),
        c.reason ?? "Changed",
        `${type}=${c.status}: ${own?.message ?? c.message ?? ""}`,
        signal,
      );
    }
  }

  /**
   * One apply per owned object (the optional PodDisruptionBudget), and the deletion of the one
   * healthgate made for this Deployment when it is no longer wanted — whichever policy asked for
   * it: governance ended, another policy governs now, or the policy stopped asking. The PDB is
   * owned by the Deployment (not by a policy), so the garbage collector deletes it with the
   * Deployment even while healthgate is stopped or uninstalled; blockOwnerDeletion makes a
   * foreground deletion of the Deployment finish only once the PDB is gone.
   *
   * Returns the error when the API server refused an apply (after recording the condition and
   * an Event that say so), so that the reconcile backs off; undefined otherwise.
   */
  private async applyOwnedObjects(
    deployment: Deployment,
    objects: readonly OwnedObject[],
    signal: AbortSignal,
  ): Promise<unknown> {
    const ns = deployment.metadata.namespace ?? "";
    const key = refusalKey(deploymentKey(ns, deployment.metadata.name), ConditionType.HeadroomSufficient);
    const uid = deployment.metadata.uid ?? "";
    const ownerRef = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: deployment.metadata.name,
      uid,
      blockOwnerDeletion: true,
    };
    const wanted = new Set<string>();
    for (const obj of objects) {
      wanted.add(obj.metadata.name);
      const body = {
        ...obj,
        metadata: { ...obj.metadata, namespace: ns, ownerReferences: [ownerRef] },
      } as KubeObject & { spec: unknown };
      const live = this.o.world.pdbs.get(`${ns}/${obj.metadata.name}`);
      const owners = live?.metadata.ownerReferences ?? [];
      if (live && owners.length === 1 && owners[0]?.uid === uid && sameSubset(obj.spec, live.spec)) {
        this.refusals.delete(key);
        continue;
      }
      try {
        await this.o.client.applyObject(body, { fieldManager: FIELD_MANAGER, force: true, signal });
        this.refusals.delete(key);
      } catch (err) {
        if (!isRefused(err)) throw err;
        await this.refused(deployment, err, signal, {
          type: ConditionType.HeadroomSufficient,
          what: `${obj.kind} ${obj.metadata.name}`,
          write: "owned-object",
          resource: resources.podDisruptionBudgets.plural,
          consequence:
            "Drains are not protected by it until this is fixed: lift the refusal (an admission policy or " +
            "RBAC), or unset spec.headroom.managePodDisruptionBudget.",
        });
        return err;
      }
    }
    if (wanted.size === 0) this.refusals.delete(key);
    // The one healthgate made for this Deployment (owned by it, or by a HealthPolicy: v0.1 made
    // the policy its owner), when no longer wanted.
    const name = pdbName(deployment.metadata.name);
    const own = this.o.world.pdbs.get(`${ns}/${name}`);
    const ours =
      own !== undefined &&
      isManagedPdb(own) &&
      (own.metadata.ownerReferences ?? []).some(
        (r) => r.uid === uid || (r.kind === KIND && r.apiVersion === API_VERSION),
      );
    if (own && ours && !wanted.has(name)) {
      try {
        await this.o.client.delete(
          resources.podDisruptionBudgets,
          { namespace: ns, name },
          signal,
          own.metadata.uid !== undefined ? { uid: own.metadata.uid } : undefined,
        );
        this.o.logger.info(
          { namespace: ns, name, kind: "PodDisruptionBudget", deployment: deployment.metadata.name },
          "deleted the PodDisruptionBudget healthgate managed: no longer wanted for this Deployment",
        );
      } catch (err) {
        // Gone already, or replaced by another object of that name (uid precondition: 409).
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
    }
    return undefined;
  }

  /**
   * The API server refused a write: the condition of the concern that wants it goes False with
   * reason ApplyRejected and the server's own message, which names the field; an Event says the
   * same once per distinct message; healthgate_writes_refused_total counts it.
   */
  private async refused(
    deployment: Deployment,
    err: unknown,
    signal: AbortSignal,
    refusal: { type: ConditionType; what: string; write: string; resource: string; consequence: string },
  ) {
    const key = refusalKey(
      deploymentKey(deployment.metadata.namespace ?? "", deployment.metadata.name),
      refusal.type,
    );
    const message =
      `healthgate could not apply ${refusal.what} for Deployment ${deployment.metadata.name}: the API server ` +
      `refused it (${apiErrorMessage(err)}). ${refusal.consequence}`;
    const before = this.refusals.get(key);
    this.refusals.set(key, { type: refusal.type, status: "False", reason: "ApplyRejected", message });
    this.o.metrics?.writesRefused.inc({ write: refusal.write, resource: refusal.resource });
    this.o.logger.warn(
      {
        namespace: deployment.metadata.namespace,
        name: deployment.metadata.name,
        kind: "Deployment",
        reason: "ApplyRejected",
        err: apiErrorMessage(err),
      },
      `the API server refused ${refusal.what}`,
    );
    if (before?.message !== message)
      await this.event(deployment, "Warning", "ApplyRejected", message, signal);
  }

  // ---- HealthPolicy: status -----------------------------------------------------------------

  private async reconcilePolicy(namespace: string, name: string, signal: AbortSignal): Promise<Action> {
    const raw = this.o.world.policies.get(`${namespace}/${name}`);
    if (!raw || raw.metadata.deletionTimestamp) {
      this.lastWritten.delete(policyKey(namespace, name));
      return {};
    }
    const now = new Date(this.o.clock.now());
    const parsed = parseCachedPolicy(raw);
    const previous = (raw as { status?: HealthPolicyStatus }).status;
    if (!parsed.ok) {
      // Permanent until the user edits the spec: say so in status, do not spin in backoff.
      const conditions = setPolicyCondition(
        previous?.conditions ?? [],
        parsed.condition,
        raw.metadata.generation,
        now,
      );
      const generation = raw.metadata.generation;
      await this.writePolicyStatus(raw, previous, signal, {
        ...previous,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
        conditions,
      });
      return {};
    }
    const policy = parsed.policy;
    const all = this.policiesIn(namespace);
    const decisions: TargetDecision[] = [];
    const overlaps: OverlapReport[] = [];
    for (const deployment of this.o.world.deployments.list()) {
      if (deployment.metadata.namespace !== namespace || !policySelects(policy, deployment)) continue;
      const governing = governingPolicy(all, deployment);
      if (governing && governing.metadata.name !== policy.metadata.name) {
        overlaps.push({ deployment: deployment.metadata.name, governedBy: governing.metadata.name });
        continue;
      }
      const snapshot = this.snapshot(policy, deployment);
      const decided = decideTarget(snapshot, this.o.concerns);
      const record = this.o.world.targets.get(`${namespace}/${deployment.metadata.name}`);
      const released = this.releaseIndex.released(namespace, deployment.metadata.name);
      const pacing = this.enforcing(policy) ? record?.status?.pacing : undefined;
      const decision = pacing ? { ...decided, status: { ...decided.status, pacing } } : decided;
      const rollout = policy.spec.rollout
        ? this.o.rollout?.stateOf(namespace, deployment.metadata.name, record)
        : undefined;
      decisions.push(
        this.withFailOpen(
          withRollout(
            this.withRefusal(
              deploymentKey(namespace, deployment.metadata.name),
              this.enforcing(policy) && released
                ? withEnforceCompliance(decision, deployment, released)
                : decision,
            ),
            rolloutView(rollout, this.o.rollout?.deepCheckCounts(namespace, deployment.metadata.name)),
          ),
          policy,
          snapshot,
          rollout?.stableRevision,
        ),
      );
    }
    const status = policyStatus(policy, decisions, overlaps, now, this.o.enforceAvailable?.() ?? true);
    const wrote = await this.writePolicyStatus(raw, previous, signal, status);
    if (wrote) await this.policyEvents(raw, previous, status, decisions, signal);
    const requeues = decisions.flatMap((d) =>
      d.requeueAfterSeconds !== undefined ? [d.requeueAfterSeconds * 1000] : [],
    );
    return requeues.length > 0 ? { requeueAfterMs: Math.min(...requeues) } : {};
  }

  private async writePolicyStatus(
    raw: KubeObject,
    previous: HealthPolicyStatus | undefined,
    signal: AbortSignal,
    status: HealthPolicyStatus,
  ) {
    if (previous && sameJson(previous, status)) return false;
    const key = policyKey(raw.metadata.namespace ?? "", raw.metadata.name);
    await this.applyStatus(key, raw, "healthgate.io/v1alpha1", status, status, signal);
    return true;
  }

  private async policyEvents(
    raw: KubeObject,
    previous: HealthPolicyStatus | undefined,
    status: HealthPolicyStatus,
    decisions: readonly TargetDecision[],
    signal: AbortSignal,
  ) {
    for (const type of flippedTypes(previous?.conditions ?? [], status.conditions ?? [])) {
      const c = status.conditions?.find((x) => x.type === type);
      if (!c) continue;
      await this.event(
        raw,
        conditionEventType(type, c.status),
        c.reason,
        `${type}=${c.status}: ${c.message}`,
        signal,
      );
    }
    for (const decision of decisions) {
      const before = previous?.targets?.find((t) => t.name === decision.deployment)?.findings ?? [];
      const summary = (fs: readonly { rule: string; container?: string }[]) =>
        fs
          .map((f) => `${f.rule}/${f.container ?? ""}`)
          .sort()
          .join(",");
      if (summary(before) === summary(decision.findings)) continue;
      const worst = decision.findings[0];
      await this.event(
        raw,
        worst && (worst.severity === "error" || worst.severity === "critical") ? "Warning" : "Normal",
        "FindingsChanged",
        `Deployment ${decision.deployment}: ${decision.findings.length} finding(s)` +
          (worst ? `; worst: ${worst.rule} (${worst.severity}) ${worst.message}` : ""),
        signal,
      );
    }
    for (const decision of decisions) {
      for (const intent of decision.events.filter((e) => e.regarding === "Policy")) {
        const cond = status.conditions?.find((c) => c.reason === intent.reason);
        if (cond && flippedTypes(previous?.conditions ?? [], [cond]).length > 0) {
          await this.event(raw, intent.type, intent.reason, intent.message, signal);
        }
      }
    }
  }

  // ---- events -------------------------------------------------------------------------------

  /**
   * Events are best effort and leave the reconcile: this queues one (stamped now) for the sink's
   * background senders and returns; a failure is logged there, never fails the reconcile.
   */
  private event(
    regarding: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    note: string,
    signal: AbortSignal,
  ): Promise<void> {
    const source = { identity: this.o.identity, now: new Date(this.o.clock.now()), random: Math.random() };
    this.events.record(eventFor(regarding, type, reason, note, source), signal);
    return Promise.resolve();
  }
}

const MAX_RELEASE_RETRIES = 4;
/** Backoff of release re-sends: 500 ms, 1 s, 2 s, 4 s after the first miss's 250 ms. */
const RELEASE_RETRY_BASE_MS = 250;
/** The record status fields the release writes (status.rollout, panic and the rest are other parts'). */
const RELEASE_FIELDS = ["stable", "guard", "conditions", "pacing"] as const;
function releaseFieldsOf(status: HealthTargetStatus | undefined): Partial<HealthTargetStatus> {
  return Object.fromEntries(
    RELEASE_FIELDS.flatMap((k) => (status?.[k] !== undefined ? [[k, status[k]]] : [])),
  ) as Partial<HealthTargetStatus>;
}
function withoutReleaseFields(status: HealthTargetStatus | undefined): HealthTargetStatus {
  const rest: Record<string, unknown> = { ...status };
  for (const k of RELEASE_FIELDS) delete rest[k];
  return rest as HealthTargetStatus;
}

/** How long a record status write is taken as not yet seen by the cache (recordWrites). */
const RECORD_ECHO_MS = 5_000;

/** The Deployment as if the release label named nothing yet: Enforced judges it Releasing. */
function withoutReleaseLabel(deployment: Deployment): Deployment {
  const { [RELEASED_LABEL]: _released, ...labels } = deployment.metadata.labels ?? {};
  return { ...deployment, metadata: { ...deployment.metadata, labels } };
}

/** The conditions a refused write can override, and the key of one such refusal. */
const REFUSABLE = [ConditionType.HeadroomSufficient, ConditionType.ProbesCompliant] as const;
const refusalKey = (key: string, type: ConditionType) => `${key}|${type}`;

const API_VERSION_TARGET = `${resources.healthTargets.group}/${resources.healthTargets.version}`;

/** ProbesCompliant says so when Enforce's decision stays out of the live template for a lasting reason. */
function withEnforceCompliance(
  decision: TargetDecision,
  deployment: Deployment,
  released: Decision,
): TargetDecision {
  const intent = enforceComplianceIntent({
    decision: released,
    template: deployment.spec.template,
    releasedLabel: deployment.metadata.labels?.[RELEASED_LABEL],
  });
  if (!intent) return decision;
  return {
    ...decision,
    conditions: [...decision.conditions.filter((c) => c.type !== ConditionType.ProbesCompliant), intent],
  };
}

/**
 * The record's status: the stable decision (the released one once the live template carries it
 * and the rollout completed, else the previous stable); the guards that keep parts of the
 * released decision out; and Enforced, judged from the live template. The released decision
 * itself is the index's (ReleaseIndex): it is not copied here, so releasing a new decision
 * changes the record only where one of these changes.
 */
function recordStatus(
  previous: HealthTargetStatus | undefined,
  released: Decision | undefined,
  deployment: Deployment,
  now: Date,
  held?: { hold: CapacityHold; wanted: Decision },
): HealthTargetStatus {
  const heldCondition = (conditions: HealthTargetStatus["conditions"]) =>
    held
      ? setPolicyCondition(
          conditions ?? [],
          {
            type: TargetConditionType.ReleaseHeld,
            status: "True",
            reason: held.hold.reason,
            message: heldMessage(held.hold, held.wanted, released),
          },
          undefined,
          now,
        )
      : (conditions ?? []).filter((c) => c.type !== TargetConditionType.ReleaseHeld);
  if (!released) return held ? { conditions: heldCondition(previous?.conditions) } : {};
  const template = deployment.spec.template;
  const rolledOut =
    carriesDecision(template, released) &&
    (deployment.status?.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0) &&
    (deployment.status?.updatedReplicas ?? 0) === (deployment.spec.replicas ?? 1) &&
    (deployment.status?.replicas ?? 0) === (deployment.spec.replicas ?? 1);
  const stable = rolledOut ? released : previous?.stable;
  const guard = guardProblems(template, released, deployment.spec);
  const enforced = enforcedCondition({
    decision: released,
    template,
    releasedLabel: deployment.metadata.labels?.[RELEASED_LABEL],
    spec: deployment.spec,
  });
  const conditions = setPolicyCondition(
    heldCondition(previous?.conditions),
    { type: TargetConditionType.Enforced, ...enforced },
    undefined,
    now,
  );
  return {
    ...(stable ? { stable } : {}),
    ...(guard.length > 0 ? { guard } : {}),
    conditions,
  };
}

/** What the record's ReleaseHeld condition and the ReleaseHeld Event say. */
const heldMessage = (hold: CapacityHold, wanted: Decision, released: Decision | undefined) =>
  `decision ${wanted.revision} is not released: ${hold.message}, and releasing it would roll the Deployment. ` +
  (released ? `Decision ${released.revision} stays released. ` : "Nothing is released yet. ") +
  "It is released once CorrelatedFailure clears.";

/** The rollout's condition, figures, events and requeue join the concerns' decision. */
function withRollout(
  decision: TargetDecision,
  rollout:
    Partial<Pick<RolloutOutcome, "condition" | "figures" | "events" | "requeueAfterSeconds">> | undefined,
): TargetDecision {
  if (!rollout) return decision;
  const requeues = [decision.requeueAfterSeconds, rollout.requeueAfterSeconds].filter(
    (v): v is number => v !== undefined,
  );
  return {
    ...decision,
    conditions: [
      ...decision.conditions.filter((c) => c.type !== ConditionType.RolloutHealthy),
      ...(rollout.condition ? [rollout.condition] : []),
    ],
    status: { ...decision.status, ...(rollout.figures ? { rollout: rollout.figures } : {}) },
    events: [...decision.events, ...(rollout.events ?? [])],
    ...(requeues.length > 0 ? { requeueAfterSeconds: Math.min(...requeues) } : {}),
  };
}

/** Whether every field of `want` has the same value in `have` (fields the server adds are ignored). */
function sameSubset(want: unknown, have: unknown): boolean {
  if (want === null || typeof want !== "object") return want === have;
  if (have === null || typeof have !== "object") return false;
  if (Array.isArray(want)) return sameJson(want, have);
  return Object.entries(want as Record<string, unknown>).every(([k, v]) =>
    sameSubset(v, (have as Record<string, unknown>)[k]),
  );
}
