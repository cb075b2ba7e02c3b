// Panic mode's I/O (docs/panic.md): gathers the workload's readiness and the Services over its
// pods, runs the pure decision (src/policy/panic/decide.ts), and makes its writes — each under
// field manager healthgate-panic, which owns publishNotReadyAddresses only while panicking:
//   1. the record's status.panic (the Services changed and their original values), first;
//   2. a forced server-side apply of publishNotReadyAddresses: true on each Service to publish;
//   3. an apply without the field on each Service to give back: healthgate's ownership goes, and
//      with no other owner the field goes too — the original false (measured:
//      test/integration/panic/ssa.test.ts). Should the value stay (someone else owns it), the
//      recorded original is written and released again.
// State lives in the record, so a restarted operator keeps or restores the setting.
import { Counter } from "prom-client";
import type { Deployment, Pod } from "../api/k8s.ts";
import { durationSeconds, type HealthPolicy, type PanicState } from "../api/v1alpha1/index.ts";
import { isHeldByGate } from "../kube/podGate.ts";
import { isConflict, resources, type KubeObject } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import { sameJson } from "../policy/decide.ts";
import { decidePanic, type PanicService } from "../policy/panic/decide.ts";
import { selectorMatches } from "../policy/selector.ts";
import { PANIC_FIELD_MANAGER, publishOwners } from "./panicServices.ts";
import type { TermClient } from "./reconciler.ts";
import type { World } from "./world.ts";

export { PANIC_FIELD_MANAGER } from "./panicServices.ts";

export interface PanicModeOptions {
  world: World;
  client: TermClient;
  clock: Clock;
  logger: Logger;
  /** healthgate_panic_changes_total (registerPanicMetrics); default: counted nowhere. */
  changes?: Counter<"change"> | undefined;
  /** Records an Event (best effort). */
  event: (
    regarding: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    note: string,
    signal: AbortSignal,
  ) => Promise<void>;
}

/** healthgate_panic_changes_total: one count per change panic mode makes. */
export function registerPanicMetrics(metrics: HealthgateMetrics): Counter<"change"> {
  const existing = metrics.registry.getSingleMetric("healthgate_panic_changes_total");
  if (existing) return existing as Counter<"change">;
  return new Counter({
    name: "healthgate_panic_changes_total",
    help:
      "Changes panic mode made, by change: enter, leave, refuse, stop (another field manager took " +
      "publishNotReadyAddresses back), publish and restore (one Service's publishNotReadyAddresses).",
    labelNames: ["change"],
    registers: [metrics.registry],
  });
}

const API_VERSION_TARGET = `${resources.healthTargets.group}/${resources.healthTargets.version}`;

/** Pods that serve: running (a Pending pod has not started), not terminating. */
const serving = (p: Pod) => !p.metadata.deletionTimestamp && p.status?.phase === "Running";
const ready = (p: Pod) =>
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** Phases of the record's status.rollout in which a gated step is under way or about to begin. */
const GATED_STEP = new Set(["Progressing", "Baking", "Holding", "Inconclusive"]);

/** A rollout is under way: the controller has not caught up, or not every replica runs the new template. */
function rollingOut(d: Deployment): boolean {
  const want = d.spec.replicas ?? 1;
  return (
    (d.status?.observedGeneration ?? 0) < (d.metadata.generation ?? 0) ||
    (d.status?.updatedReplicas ?? 0) < want ||
    (d.status?.replicas ?? 0) > want
  );
}

export class PanicMode {
  private readonly o: PanicModeOptions;
  private readonly changes: Counter<"change">;
  /**
   * Services healthgate published (namespace/name): a revert seen there is a conflict even when
   * managedFields name nobody. Added on a publish's reply, and also when the cache shows the field
   * held by healthgate-panic on a Service the Panicking record lists: a publish whose reply was
   * lost (timeout, leadership lost mid-request) or an earlier process's publish is healthgate's too.
   */
  private readonly published = new Set<string>();
  /**
   * Services whose publish the server refused (the cache was behind) and that this process has
   * not published since: another manager's ownership of the field there is no revert of ours.
   */
  private readonly refusedPublish = new Set<string>();
  /**
   * status.panic as this process last wrote it, per Deployment (namespace/name), until the cache
   * shows it. Only healthgate-panic writes that field, so this is newer than a cache that has
   * not seen the write come back yet; after a restart the cache alone is the truth.
   */
  private readonly written = new Map<string, PanicState>();

  constructor(options: PanicModeOptions) {
    this.o = options;
    this.changes =
      options.changes ??
      new Counter({
        name: "healthgate_panic_changes_total",
        help: "-",
        labelNames: ["change"],
        registers: [],
      });
  }

  /**
   * Keeps panic mode of one Deployment where its readiness wants it; `policy` undefined when the
   * Deployment is no longer governed (panic ends). Returns after how many ms to look again.
   */
  async reconcile(
    policy: HealthPolicy | undefined,
    deployment: Deployment,
    pods: readonly Pod[],
    signal: AbortSignal,
  ): Promise<number | undefined> {
    const ns = deployment.metadata.namespace ?? "";
    const name = deployment.metadata.name;
    const key = `${ns}/${name}`;
    const cached = this.o.world.targets.get(key)?.status?.panic;
    // Kept only until the cache shows the write: a later leadership term starts from the cache.
    if (this.written.has(key) && sameJson(this.written.get(key), cached)) this.written.delete(key);
    const previous = this.written.get(key) ?? cached;
    const spec = policy?.spec.guardrails.panic;
    if (!spec && (!previous || previous.phase === "Inactive")) return undefined;
    const live = pods.filter(serving);
    const readyPods = live.filter(ready).length;
    const settings = spec && {
      floorPercent: spec.floorPercent,
      holdSeconds: durationSeconds(spec.hold) ?? 0,
    };
    const engaged =
      previous?.phase === "Panicking" ||
      (settings !== undefined && readyPods * 100 < settings.floorPercent * live.length);
    const recorded =
      previous?.phase === "Panicking" ? new Set(previous.services?.map((s) => s.name)) : new Set<string>();
    /** Service name → the resourceVersion of the cached version the decision reads. */
    const read = new Map<string, string | undefined>();
    const services = engaged ? await this.services(deployment, recorded, read, signal) : [];
    const decision = decidePanic({
      settings,
      servingPods: live.length,
      desiredReplicas: deployment.spec.replicas ?? 1,
      readyPods,
      heldPods: pods.filter((p) => serving(p) && isHeldByGate(p)).map((p) => p.metadata.name),
      terminatingPods: pods.filter((p) => p.metadata.deletionTimestamp).map((p) => p.metadata.name),
      gatedRollout:
        policy?.spec.rollout !== undefined &&
        (rollingOut(deployment) ||
          GATED_STEP.has(this.o.world.targets.get(key)?.status?.rollout?.phase ?? "")),
      services,
      previous,
      now: new Date(this.o.clock.now()),
    });
    const { state } = decision;
    // A revert seen in the cache is confirmed on the live object before healthgate stops.
    if (state?.phase === "Stopped" && previous?.phase === "Panicking" && state.conflict) {
      // A list by name: the list grant the informer needs already covers it.
      const found = await this.o.client.list(
        resources.services,
        ns,
        { fieldSelector: `metadata.name=${state.conflict.service}` },
        signal,
      );
      if (found.items.some((svc) => publishOwners(svc).includes(PANIC_FIELD_MANAGER))) return 1_000;
      // The decision read an older version than the server's: who took the field is named from
      // the version that shows it (an older one may name nobody). Compared with the version the
      // decision read, not the cache now: it may have moved on meanwhile.
      const decidedOn = read.get(state.conflict.service);
      if (found.items.some((svc) => svc.metadata.resourceVersion !== decidedOn)) return 1_000;
    }
    if (state && !sameJson(state, previous)) await this.writeState(ns, name, state, signal);
    // Theirs now: the next incident starts from what the Service says, not from this process's
    // memory. Forgotten only once Stopped is written: should that write fail, the retry must
    // still see the revert, not publish over it.
    if (state?.phase === "Stopped" && previous?.phase === "Panicking" && state.conflict)
      this.published.delete(`${ns}/${state.conflict.service}`);
    for (const svc of decision.publish) {
      // Refused: the Service moved on since the cache's version; decide again on the newer one.
      if (!(await this.publish(ns, svc, signal))) return 1_000;
    }
    for (const { name: svc, original } of decision.restore) await this.restore(ns, svc, original, signal);
    if (state && state.phase !== previous?.phase) {
      const change = { Panicking: "enter", Inactive: "leave", Refused: "refuse", Stopped: "stop" }[
        state.phase
      ];
      if (previous?.phase === "Panicking" || state.phase !== "Inactive") this.changes.inc({ change });
      this.o.logger.info(
        { namespace: ns, name, kind: "Deployment", reason: state.reason, phase: state.phase },
        `panic mode: ${state.message}`,
      );
    }
    for (const e of decision.events) {
      await this.o.event(
        { apiVersion: "apps/v1", kind: "Deployment", metadata: deployment.metadata },
        e.type,
        e.reason,
        e.message,
        signal,
      );
    }
    return decision.requeueAfterSeconds !== undefined ? decision.requeueAfterSeconds * 1000 : undefined;
  }

  /** The Deployment is gone: give back what its record says healthgate still holds. */
  async forget(namespace: string, name: string, signal: AbortSignal): Promise<void> {
    const panic =
      this.written.get(`${namespace}/${name}`) ??
      this.o.world.targets.get(`${namespace}/${name}`)?.status?.panic;
    this.written.delete(`${namespace}/${name}`);
    for (const { name: svc, original } of panic?.services ?? []) {
      const cached = this.o.world.services.get(`${namespace}/${svc}`);
      if (cached?.publishOwners.includes(PANIC_FIELD_MANAGER))
        await this.restore(namespace, svc, original, signal);
    }
  }

  /**
   * The Services whose selector selects the Deployment's pods, each with what the decision
   * needs. Shared: another Deployment's template matches the selector (from the cache), or a
   * live pod it selects is not this Deployment's (a list by the selector: the pod cache holds
   * only governed workloads' pods).
   */
  private async services(
    deployment: Deployment,
    recorded: ReadonlySet<string>,
    read: Map<string, string | undefined>,
    signal: AbortSignal,
  ): Promise<PanicService[]> {
    const ns = deployment.metadata.namespace ?? "";
    const labels = deployment.spec.template.metadata?.labels ?? {};
    const ours = new Set(
      this.o.world.replicaSets.byIndex("owner", deployment.metadata.uid ?? "").map((rs) => rs.metadata.uid),
    );
    const result: PanicService[] = [];
    for (const svc of this.o.world.services.list()) {
      const selector = svc.spec.selector ?? {};
      if (
        svc.metadata.namespace !== ns ||
        svc.spec.type === "ExternalName" ||
        Object.keys(selector).length === 0
      )
        continue;
      if (!selectorMatches({ matchLabels: selector }, labels)) continue;
      const key = `${ns}/${svc.metadata.name}`;
      const otherDeployment = this.o.world.deployments
        .list()
        .find(
          (d) =>
            d.metadata.namespace === ns &&
            d.metadata.uid !== deployment.metadata.uid &&
            selectorMatches({ matchLabels: selector }, d.spec.template.metadata?.labels ?? {}),
        );
      let sharedWith = otherDeployment && `Deployment ${otherDeployment.metadata.name}`;
      if (!sharedWith) {
        const labelSelector = Object.entries(selector)
          .map(([k, v]) => `${k}=${v}`)
          .join(",");
        const pods = await this.o.client.list(resources.pods, ns, { labelSelector }, signal);
        // Finished pods are never endpoints; terminating ones soon will not be.
        const foreign = (pods.items as unknown as Pod[]).find(
          (p) =>
            !(p.metadata.ownerReferences ?? []).some((r) => r.controller && ours.has(r.uid)) && serving(p),
        );
        if (foreign) sharedWith = `pod ${foreign.metadata.name}`;
      }
      const ownedByPanic = svc.publishOwners.includes(PANIC_FIELD_MANAGER);
      read.set(svc.metadata.name, svc.metadata.resourceVersion);
      // A hold from before healthgate let go cannot show here: it lets go only of a hold its cache
      // shows, and a Panicking record lists only Services its cache showed not publishing after.
      if (ownedByPanic && svc.spec.publishNotReadyAddresses && recorded.has(svc.metadata.name))
        this.published.add(key);
      // The cache shows healthgate's hold: a refusal before it was about a version older than
      // that hold (its own earlier publish, say), and another manager taking the field from now
      // on is a revert of it.
      if (ownedByPanic) this.refusedPublish.delete(key);
      const other = svc.publishOwners.find((m) => m !== PANIC_FIELD_MANAGER);
      result.push({
        name: svc.metadata.name,
        publishes: svc.spec.publishNotReadyAddresses === true,
        ownedByPanic,
        ...(sharedWith ? { sharedWith } : {}),
        ...(other !== undefined && !this.refusedPublish.has(key) ? { otherManager: other } : {}),
        ...(this.published.has(key) && !ownedByPanic ? { takenBack: true } : {}),
      });
    }
    return result;
  }

  private async writeState(namespace: string, name: string, panic: PanicState, signal: AbortSignal) {
    this.written.delete(`${namespace}/${name}`);
    await this.o.client.applyObject(
      {
        apiVersion: API_VERSION_TARGET,
        kind: "HealthTarget",
        metadata: { name, namespace },
        status: { panic },
      } as KubeObject,
      { fieldManager: PANIC_FIELD_MANAGER, force: true, subresource: "status", signal },
    );
    this.written.set(`${namespace}/${name}`, panic);
  }

  /**
   * Takes publishNotReadyAddresses: true, on condition that the Service is still the version the
   * decision read (its resourceVersion in the apply): a cache behind the server would otherwise
   * have healthgate force the field back over an edit it has not seen yet. False when refused.
   */
  private async publish(namespace: string, name: string, signal: AbortSignal): Promise<boolean> {
    const key = `${namespace}/${name}`;
    const cached = this.o.world.services.get(key);
    if (cached?.spec.publishNotReadyAddresses && cached.publishOwners.includes(PANIC_FIELD_MANAGER))
      return true;
    try {
      await this.applyPublish(namespace, name, true, signal, cached?.metadata.resourceVersion);
    } catch (err) {
      if (!isConflict(err)) throw err;
      this.refusedPublish.add(key);
      return false;
    }
    this.refusedPublish.delete(key);
    this.published.add(key);
    this.changes.inc({ change: "publish" });
    await this.serviceEvent(
      namespace,
      name,
      "PanicPublished",
      "publishes every pod (publishNotReadyAddresses: true) during panic",
      signal,
    );
    return true;
  }

  private async restore(namespace: string, name: string, original: boolean, signal: AbortSignal) {
    let svc = await this.applyPublish(namespace, name, undefined, signal);
    if ((svc.spec.publishNotReadyAddresses ?? false) !== original) {
      // Someone else owns the value healthgate set: write the original, then let go of it.
      await this.applyPublish(namespace, name, original, signal);
      svc = await this.applyPublish(namespace, name, undefined, signal);
    }
    this.published.delete(`${namespace}/${name}`);
    this.refusedPublish.delete(`${namespace}/${name}`);
    this.changes.inc({ change: "restore" });
    await this.serviceEvent(
      namespace,
      name,
      "PanicRestored",
      `publishNotReadyAddresses is back to ${svc.spec.publishNotReadyAddresses ?? false} after panic`,
      signal,
    );
  }

  /**
   * Applies publishNotReadyAddresses as healthgate-panic; `undefined` sends no field (lets go of
   * it). With `resourceVersion`, the server refuses it (409) unless the Service is that version.
   */
  private applyPublish(
    namespace: string,
    name: string,
    value: boolean | undefined,
    signal: AbortSignal,
    resourceVersion?: string,
  ) {
    return this.o.client.applyObject(
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, namespace, ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
        ...(value !== undefined ? { spec: { publishNotReadyAddresses: value } } : {}),
      } as KubeObject & { spec: { publishNotReadyAddresses?: boolean } },
      { fieldManager: PANIC_FIELD_MANAGER, force: true, signal },
    );
  }

  private serviceEvent(namespace: string, name: string, reason: string, note: string, signal: AbortSignal) {
    return this.o.event(
      { apiVersion: "v1", kind: "Service", metadata: { name, namespace } },
      reason === "PanicPublished" ? "Warning" : "Normal",
      reason,
      `Service ${name} ${note}`,
      signal,
    );
  }
}
