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
  DEPLOYMENT_CONDITION_PREFIX,
  KIND,
  type HealthPolicy,
  type HealthPolicyStatus,
} from "../api/v1alpha1/index.ts";
import { parseHealthPolicy, type ParseResult } from "../api/v1alpha1/parse.ts";
import { setPolicyCondition } from "../policy/conditions.ts";
import {
  decideTarget,
  deploymentConditions,
  flippedTypes,
  ownConditions,
  ownedSpecApplyBody,
  policyStatus,
  sameJson,
  type OverlapReport,
  type TargetDecision,
} from "../policy/decide.ts";
import {
  emptyHistory,
  holding,
  otherProbeManager,
  recordFlip,
  resumedHold,
  type FlipHistory,
} from "../policy/enforceConflict.ts";
import { governingPolicy, policySelects } from "../policy/governance.ts";
import { isManagedPdb, pdbName } from "../policy/headroom/pdb.ts";
import { conflictingHandlers, ownedFieldsDiffer } from "../policy/probes/concern.ts";
import { selectorMatches } from "../policy/selector.ts";
import type {
  Concern,
  ConditionIntent,
  EventIntent,
  OwnedObject,
  OwnedSpec,
  TargetSnapshot,
} from "../policy/seam.ts";
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
import { metricsWindowSeconds, type PodMetricsHistory } from "../kube/podMetrics.ts";
import type { World } from "./world.ts";
import { FIELD_MANAGER, STATUS_FIELD_MANAGER, type CachedDeployment } from "./world.ts";
import type { Action, Reconciler } from "./reconcileLoop.ts";

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

export { FIELD_MANAGER, STATUS_FIELD_MANAGER } from "./world.ts";

export type Key = `Deployment/${string}` | `HealthPolicy/${string}`;
export const deploymentKey = (ns: string, name: string): Key => `Deployment/${ns}/${name}`;
export const policyKey = (ns: string, name: string): Key => `HealthPolicy/${ns}/${name}`;

/**
 * The requests a reconcile makes. Each carries the leadership term's abort signal: the
 * parameters optional on KubeClient are required here, so a request without it does not compile.
 */
export interface TermClient {
  get<T extends KubeObject>(ref: ResourceRef, target: Target, signal: AbortSignal): Promise<T>;
  create<T extends KubeObject>(obj: T, signal: AbortSignal): Promise<T>;
  delete(
    ref: ResourceRef,
    target: Target,
    signal: AbortSignal,
    preconditions?: Parameters<KubeClient["delete"]>[3],
  ): Promise<void>;
  applyObject<T extends KubeObject>(obj: T, options: ApplyOptions & { signal: AbortSignal }): Promise<T>;
  jsonPatch<T extends KubeObject>(
    ref: ResourceRef,
    target: Target,
    operations: Parameters<KubeClient["jsonPatch"]>[2],
    options: { fieldManager?: string; signal: AbortSignal },
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
  /** Usage history for Metrics-source headroom; without it that source is always unavailable. */
  podMetrics?: Pick<PodMetricsHistory, "samples">;
  /** Where refused writes are counted (healthgate_writes_refused_total). */
  metrics?: Pick<HealthgateMetrics, "writesRefused">;
}

/** Enforce bookkeeping for one Deployment: the flips, and what we last applied. */
interface EnforceState extends FlipHistory {
  applied?: string;
  /** metadata.generation our last apply produced: a cached copy at or below it predates that apply. */
  appliedGeneration?: number;
  manager?: string | undefined;
}

export class HealthgateReconciler implements Reconciler {
  private readonly o: ReconcilerOptions;
  /** Enforce-conflict bookkeeping per Deployment key (in memory: a new leader starts afresh). */
  private readonly flips = new Map<string, EnforceState>();
  /**
   * What healthgate last wrote per key: a Deployment's healthgate.io/ conditions, a policy's
   * status. An update that shows exactly that and nothing else new is our own write coming
   * back (isOwnEcho): it needs no reconcile.
   */
  private readonly lastWritten = new Map<Key, unknown>();
  /**
   * Owned-object writes the API server refused, per Deployment key: the condition that says so
   * overrides what the concern decided, on the Deployment and on the policy, until an apply of
   * that object succeeds or it is no longer wanted.
   */
  private readonly refusals = new Map<string, ConditionIntent>();

  constructor(options: ReconcilerOptions) {
    this.o = options;
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

  private snapshot(policy: HealthPolicy, deployment: Deployment): TargetSnapshot {
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
    return {
      policy,
      deployment,
      replicaSets,
      pods,
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
      // Its PodDisruptionBudget carries an ownerReference to it: the garbage collector deletes it.
      this.flips.delete(deploymentKey(namespace, name));
      this.lastWritten.delete(deploymentKey(namespace, name));
      this.refusals.delete(deploymentKey(namespace, name));
      return {};
    }
    const now = new Date(this.o.clock.now());
    const policies = this.policiesIn(namespace);
    const policy = governingPolicy(policies, deployment);
    if (!policy) {
      // No longer governed: remove what healthgate made for it, and take our conditions off
      // (SSA drops what the manager stops sending).
      await this.applyOwnedObjects(deployment, [], signal);
      await this.writeDeploymentConditions(deployment, [], now, signal);
      return {};
    }
    await this.resumeConflict(policy, deployment, signal);
    const decision = decideTarget(this.snapshot(policy, deployment), this.o.concerns);
    const applied = await this.applyOwnedSpec(policy, deployment, decision, signal);
    const key = deploymentKey(namespace, name);
    const refused = await this.applyOwnedObjects(deployment, decision.ownedObjects, signal);
    const decided = this.withRefusal(key, this.withConflict(key, decision));
    // Events about the Deployment: one that explains a condition goes out when that condition
    // flips (below); the others (LivenessDeepReplaced) go out with the apply they announce.
    const aboutDeployment = decided.events.filter((e) => e.regarding === "Deployment");
    const reasons = new Set(decided.conditions.map((c) => c.reason));
    if (applied) {
      for (const e of aboutDeployment.filter((e) => !reasons.has(e.reason)))
        await this.event(deployment, e.type, e.reason, e.message, signal);
    }
    await this.writeDeploymentConditions(deployment, decided.conditions, now, signal, aboutDeployment);
    // Every policy selecting it reports on it: the governing one, and any other as overlapping.
    for (const p of policies) {
      if (policySelects(p, deployment)) this.o.enqueue(policyKey(namespace, p.metadata.name));
    }
    const conflict = this.flips.get(deploymentKey(namespace, name));
    const holdMs =
      conflict?.holdUntil !== undefined ? Math.max(0, conflict.holdUntil - this.o.clock.now()) : undefined;
    const requeueMs = [
      decided.requeueAfterSeconds !== undefined ? decided.requeueAfterSeconds * 1000 : undefined,
      holdMs,
    ].filter((v): v is number => v !== undefined && v > 0);
    // A refused write backs off like any failed reconcile, after saying so in status.
    if (refused) throw refused;
    return requeueMs.length > 0 ? { requeueAfterMs: Math.min(...requeueMs) } : {};
  }

  /**
   * Enforce: ONE forced apply of every owned field, only when the live template lacks them.
   * True when it applied.
   */
  private async applyOwnedSpec(
    policy: HealthPolicy,
    deployment: Deployment,
    decision: TargetDecision,
    signal: AbortSignal,
  ): Promise<boolean> {
    if (policy.spec.mode !== "Enforce" || !decision.ownedSpec) return false;
    const liveOwned = (deployment as CachedDeployment).healthgateOwned ?? [];
    if (!ownedFieldsDiffer(deployment.spec.template, decision.ownedSpec, liveOwned)) return false;
    const key = deploymentKey(deployment.metadata.namespace ?? "", deployment.metadata.name);
    const nowMs = this.o.clock.now();
    let history: EnforceState = this.flips.get(key) ?? emptyHistory();
    if (holding(history, nowMs)) return false;
    const body = ownedSpecApplyBody(deployment, decision.ownedSpec);
    const bodyJson = JSON.stringify(body);
    // The cache has not caught up with our own apply yet (a ReplicaSet or status event arrived
    // first): that copy shows the template as it was before the apply, which is no flip. The
    // watch event of the apply requeues the key.
    if (
      history.applied === bodyJson &&
      history.appliedGeneration !== undefined &&
      (deployment.metadata.generation ?? 0) <= history.appliedGeneration
    ) {
      return false;
    }
    // The same fields we applied before are gone again: somebody took them back (a policy
    // edit changes the body, and a change of ours is no flip).
    if (history.applied === bodyJson) {
      const { history: next, conflicted } = recordFlip(history, nowMs);
      history = { ...history, ...next };
      if (conflicted) {
        const manager = await this.otherManager(deployment, signal);
        this.flips.set(key, { ...history, manager });
        await this.event(deployment, "Warning", "EnforceConflict", conflictMessage(manager), signal);
        return false;
      }
    }
    const stored = await this.o.client.applyObject(body, {
      fieldManager: FIELD_MANAGER,
      force: true,
      signal,
    });
    const appliedGeneration = stored.metadata.generation;
    this.flips.set(key, {
      ...history,
      applied: bodyJson,
      ...(appliedGeneration !== undefined ? { appliedGeneration } : {}),
    });
    this.o.logger.info(
      { namespace: deployment.metadata.namespace, name: deployment.metadata.name, kind: "Deployment" },
      "applied owned probe fields",
    );
    return true;
  }

  /**
   * A probe has exactly one handler: applying httpGet where the live probe has exec would be
   * refused (422), and SSA cannot drop a field another manager owns. Remove those handlers
   * first, guarded by "test" so a template that moved on meanwhile fails the patch instead.
   */
  private async removeConflictingHandlers(deployment: Deployment, owned: OwnedSpec, signal: AbortSignal) {
    const conflicts = conflictingHandlers(deployment.spec.template, owned);
    if (conflicts.length === 0) return;
    const containers = deployment.spec.template.spec.containers;
    const operations = conflicts.flatMap(({ container, field }) => {
      const index = containers.findIndex((c) => c.name === container);
      const base = `/spec/template/spec/containers/${index}`;
      return [
        { op: "test" as const, path: `${base}/name`, value: container },
        { op: "remove" as const, path: `${base}/${field.replaceAll(".", "/")}` },
      ];
    });
    await this.o.client.jsonPatch(
      resources.deployments,
      { namespace: deployment.metadata.namespace, name: deployment.metadata.name },
      operations,
      { fieldManager: FIELD_MANAGER, signal },
    );
  }

  private async otherManager(deployment: Deployment, signal: AbortSignal): Promise<string | undefined> {
    try {
      const live = await this.o.client.get<Deployment>(
        resources.deployments,
        { namespace: deployment.metadata.namespace, name: deployment.metadata.name },
        signal,
      );
      return otherProbeManager(live.metadata.managedFields ?? [], FIELD_MANAGER);
    } catch (err) {
      this.o.logger.warn({ err: apiErrorMessage(err) }, "could not read managedFields");
      return undefined;
    }
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
      await this.o.client.applyObject(
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

  /** Whether healthgate still keeps what it last wrote for `key` (dropped once the object is gone). */
  remembersWrite(key: Key): boolean {
    return this.lastWritten.has(key);
  }

  /** A conflict an earlier replica reported on the Deployment holds here too (see resumedHold). */
  private async resumeConflict(policy: HealthPolicy, deployment: Deployment, signal: AbortSignal) {
    const key = deploymentKey(deployment.metadata.namespace ?? "", deployment.metadata.name);
    if (policy.spec.mode !== "Enforce" || this.flips.has(key)) return;
    const type = DEPLOYMENT_CONDITION_PREFIX + ConditionType.ProbesCompliant;
    const resumed = resumedHold(deployment.status?.conditions, type, this.o.clock.now());
    if (!resumed) return;
    const manager = await this.otherManager(deployment, signal);
    this.flips.set(key, { ...resumed, ...(manager !== undefined ? { manager } : {}) });
    this.o.logger.info(
      {
        namespace: deployment.metadata.namespace,
        name: deployment.metadata.name,
        kind: "Deployment",
        manager,
      },
      "resuming the EnforceConflict hold an earlier replica reported",
    );
  }

  /** While a conflict holds, ProbesCompliant says so, whatever the audit found. */
  private withConflict(key: string, decision: TargetDecision): TargetDecision {
    const history = this.flips.get(key);
    if (!history || !holding(history, this.o.clock.now())) return decision;
    const conflict: ConditionIntent = {
      type: ConditionType.ProbesCompliant,
      status: "False",
      reason: "EnforceConflict",
      message: conflictMessage(history.manager),
    };
    return {
      ...decision,
      conditions: [...decision.conditions.filter((c) => c.type !== ConditionType.ProbesCompliant), conflict],
    };
  }

  /** A refused owned-object write overrides the condition it affects (see `refusals`). */
  private withRefusal(key: string, decision: TargetDecision): TargetDecision {
    const refusal = this.refusals.get(key);
    if (!refusal) return decision;
    return {
      ...decision,
      conditions: [...decision.conditions.filter((c) => c.type !== refusal.type), refusal],
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
        own?.type ?? (c.status === "True" ? "Normal" : "Warning"),
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
    const key = deploymentKey(ns, deployment.metadata.name);
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
        await this.refused(deployment, `${obj.kind} ${obj.metadata.name}`, err, signal);
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
   * The API server refused an owned-object write: HeadroomSufficient (the concern that wants the
   * object) goes False with reason ApplyRejected and the server's own message, which names the
   * field; an Event says the same once per distinct message.
   */
  private async refused(deployment: Deployment, what: string, err: unknown, signal: AbortSignal) {
    const key = deploymentKey(deployment.metadata.namespace ?? "", deployment.metadata.name);
    const message =
      `healthgate could not apply ${what} for Deployment ${deployment.metadata.name}: the API server refused it ` +
      `(${apiErrorMessage(err)}). Drains are not protected by it until this is fixed: lift the refusal ` +
      `(an admission policy or RBAC), or unset spec.headroom.managePodDisruptionBudget.`;
    const before = this.refusals.get(key);
    this.refusals.set(key, {
      type: ConditionType.HeadroomSufficient,
      status: "False",
      reason: "ApplyRejected",
      message,
    });
    this.o.metrics?.writesRefused.inc({
      write: "owned-object",
      resource: resources.podDisruptionBudgets.plural,
    });
    this.o.logger.warn(
      {
        namespace: deployment.metadata.namespace,
        name: deployment.metadata.name,
        kind: "Deployment",
        reason: "ApplyRejected",
        err: apiErrorMessage(err),
      },
      `the API server refused ${what}`,
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
      const key = deploymentKey(namespace, deployment.metadata.name);
      decisions.push(
        this.withRefusal(
          key,
          this.withConflict(key, decideTarget(this.snapshot(policy, deployment), this.o.concerns)),
        ),
      );
    }
    const status = policyStatus(policy, decisions, overlaps, now);
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
        c.status === "True" ? "Normal" : "Warning",
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

  /** Events are best effort: a failure is logged, never fails the reconcile. */
  private async event(
    regarding: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    note: string,
    signal: AbortSignal,
  ) {
    const source = { identity: this.o.identity, now: new Date(this.o.clock.now()), random: Math.random() };
    try {
      await this.o.client.create(eventFor(regarding, type, reason, note, source), signal);
    } catch (err) {
      if (isRefused(err)) this.o.metrics?.writesRefused.inc({ write: "event", resource: "events" });
      this.o.logger.warn(
        {
          namespace: regarding.metadata.namespace,
          name: regarding.metadata.name,
          kind: regarding.kind,
          reason,
          err: apiErrorMessage(err),
        },
        "could not record event",
      );
    }
  }
}

function conflictMessage(manager: string | undefined): string {
  const who = manager ? `field manager "${manager}"` : "another field manager";
  return (
    `${who} keeps reverting the probe fields healthgate enforces (3 flips within 10 minutes); healthgate stopped ` +
    `applying and retries with backoff. Fix the probes at their source (e.g. the manifest in Git), or use ` +
    `spec.deny.deepLiveness to refuse bad probes at admission.`
  );
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
