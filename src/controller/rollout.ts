// Rollout gating's I/O, thin: keeps the deep-check assessments the prober reports, feeds them
// with the cached pods to the pure rollout decision (src/policy/rollout/gating.ts), and makes its
// writes — the pods' healthgate.io/deep-check gates (on transitions only, through writeGate) and
// the record's status.rollout (server-side apply under healthgate-rollout, that field only) —
// and gives the prober the pods to check.
import type { Pod } from "../api/k8s.ts";
import type { HealthPolicy, RolloutState } from "../api/v1alpha1/index.ts";
import { resources, statusCodeOf, type KubeClient, type KubeObject } from "../kube/client.ts";
import { writeGate } from "../kube/podGate.ts";
import type { Logger } from "../observability/logger.ts";
import type { TargetSnapshot } from "../policy/seam.ts";
import { sameJson } from "../policy/decide.ts";
import {
  assessDeepCheck,
  countStandings,
  NO_ASSESSMENT,
  podStanding,
  type PodAssessment,
} from "../policy/rollout/deepCheck.ts";
import {
  decideRollout,
  needsTemplateWriter,
  type RollbackIntent,
  type RolloutOutcome,
} from "../policy/rollout/gating.ts";
import {
  differences,
  disownTemplateOps,
  healthgateTemplateOwners,
  restoredTemplate,
  templateWriter,
  type ManagedFieldsEntry,
} from "../policy/rollout/rollback.ts";
import type { Deployment, ReplicaSet } from "../api/k8s.ts";
import { applyCommand, ROLLOUT_COMMAND_ANNOTATION, type CommandOutcome } from "../policy/rollout/commands.ts";
import { eventFor } from "../kube/events.ts";
import {
  fullyAvailable,
  gatePod,
  newestRevision,
  POD_TEMPLATE_HASH,
  servingFloor,
} from "../policy/rollout/revisions.ts";
import type { ProberHandle } from "../prober/handle.ts";
import { deepCheckTarget } from "../prober/targets.ts";
import type { TargetVerdict, UncheckedReason } from "../prober/targets.ts";
import type { DeepCheckReport, PodDeepCheck } from "./deepCheckReport.ts";
import type { Cohort, DeepCheckResult, ProbeTarget } from "../prober/types.ts";
import type { CachedTarget } from "./world.ts";
import { capacityShrinkHold } from "../policy/guard/hold.ts";

/** The field manager of status.rollout on the record (that field only). */
export const ROLLOUT_FIELD_MANAGER = "healthgate-rollout";
/** The field manager of onFailure Rollback's restore of the template (disowned right after). */
export const ROLLBACK_FIELD_MANAGER = "healthgate-rollback";
/** Restores whose dry run admission changed, before healthgate says it cannot roll back (the index may lag). */
const MAX_ROLLBACK_ATTEMPTS = 8;

export interface RolloutGatingOptions {
  client: KubeClient;
  logger: Logger;
  /** The running prober, if any. */
  prober: () => ProberHandle | undefined;
  /** Requeue a Deployment (namespace, name). */
  enqueue: (namespace: string, name: string) => void;
  /** Who records the Events of rollout commands (reportingInstance). */
  identity?: string;
  /** Whether the policy's Enforce can act (onFailure Rollback restores templates only then). */
  enforcing?: (policy: HealthPolicy) => boolean;
}

interface Checked {
  namespace: string;
  deployment: string;
  pod: string;
  cohort: Cohort;
  assessment: PodAssessment;
  thresholds: { successThreshold: number; failureLimit: number };
}

export class RolloutGating {
  private readonly o: RolloutGatingOptions;
  /** Pod uid → its deep checks since it became a target. */
  private readonly checked = new Map<string, Checked>();
  /** Deployment key → the pods handed to the prober that it cannot check, by cohort. */
  private readonly uncheckedOf = new Map<
    string,
    { pod: string; cohort: Cohort; reason: UncheckedReason }[]
  >();
  /** Deployment key → the pod uids it has the prober check. */
  private readonly targetsOf = new Map<string, Set<string>>();
  /** Deployment key → the state last decided (the record in the cache may lag behind it). */
  private readonly states = new Map<string, RolloutState | undefined>();
  /** Deployment key → pod uid → the gate status healthgate last wrote (the pod cache may lag behind it). */
  private readonly gatesWritten = new Map<string, Map<string, "True" | "False">>();
  /** Deployment key → the rollout command decide() consumed, for act() to record and remove. */
  private readonly commands = new Map<string, { value: string; outcome: CommandOutcome }>();
  /** Deployment key → restores tried for a rollback, and why the last one could not be made. */
  private readonly restores = new Map<string, { failed: string; attempts: number; blocked?: string }>();

  constructor(options: RolloutGatingOptions) {
    this.o = options;
  }

  /** Prober results: assess them; a pod whose standing or last outcome changed requeues its Deployment. */
  receive(results: readonly DeepCheckResult[]): void {
    const touched = new Set<string>();
    for (const r of results) {
      const entry = this.checked.get(r.key);
      if (!entry) continue;
      const before = entry.assessment;
      entry.assessment = assessDeepCheck(before, r.outcome);
      if (
        before.last !== entry.assessment.last ||
        podStanding(before, entry.thresholds) !== podStanding(entry.assessment, entry.thresholds)
      )
        touched.add(`${entry.namespace}/${entry.deployment}`);
    }
    for (const key of touched) {
      const [ns, name] = key.split("/") as [string, string];
      this.o.enqueue(ns, name);
    }
  }

  /** The state to show for a Deployment: the last decided one, else the record's. */
  stateOf(namespace: string, name: string, record: CachedTarget | undefined): RolloutState | undefined {
    const key = `${namespace}/${name}`;
    return this.states.has(key) ? this.states.get(key) : record?.status?.rollout;
  }

  /** Pods deep-checked now per cohort, by standing (the policy status's rollout.deepChecks). */
  deepCheckCounts(namespace: string, name: string): ReturnType<typeof countStandings> {
    const key = `${namespace}/${name}`;
    const checked = [...(this.targetsOf.get(key) ?? [])].flatMap((uid) => {
      const entry = this.checked.get(uid);
      return entry
        ? [{ cohort: entry.cohort, standing: podStanding(entry.assessment, entry.thresholds) }]
        : [];
    });
    return countStandings(checked, this.uncheckedOf.get(key) ?? []);
  }

  /**
   * Each pod checked for the Deployment now, with its standing and latest result, and the pods it
   * cannot check (served to `healthgate rollout status`: deepCheckReport.ts says what may show).
   */
  deepCheckReport(namespace: string, name: string): Pick<DeepCheckReport, "pods" | "unchecked"> {
    const key = `${namespace}/${name}`;
    const prober = this.o.prober();
    const pods = [...(this.targetsOf.get(key) ?? [])].flatMap((uid): PodDeepCheck[] => {
      const entry = this.checked.get(uid);
      if (!entry) return [];
      const r = prober?.latest(uid);
      const a = entry.assessment;
      return [
        {
          pod: entry.pod,
          cohort: entry.cohort,
          standing: podStanding(a, entry.thresholds),
          consecutivePasses: a.consecutivePasses,
          consecutiveFailures: a.consecutiveFailures,
          consecutiveErrors: a.consecutiveErrors,
          ...(r
            ? {
                latest: {
                  revision: r.revision,
                  outcome: r.outcome,
                  ...(r.statusCode !== undefined ? { statusCode: r.statusCode } : {}),
                  durationMs: Math.round(r.durationMs),
                  bytesRead: r.bytesRead,
                  truncated: r.truncated,
                  ...(r.errorClass ? { errorClass: r.errorClass } : {}),
                  at: new Date(r.startedAt).toISOString(),
                },
              }
            : {}),
        },
      ];
    });
    pods.sort((a, b) => (a.pod < b.pod ? -1 : 1));
    return { pods, unchecked: [...(this.uncheckedOf.get(key) ?? [])] };
  }

  /** The pure decision for one governed Deployment (after the look-ups it needs). */
  async decide(
    policy: HealthPolicy,
    snapshot: TargetSnapshot,
    record: CachedTarget | undefined,
    signal: AbortSignal,
  ): Promise<RolloutOutcome> {
    const { deployment } = snapshot;
    const ns = deployment.metadata.namespace ?? "";
    const kept = this.stateOf(ns, deployment.metadata.name, record);
    const key = `${ns}/${deployment.metadata.name}`;
    const value = record?.metadata.annotations?.[ROLLOUT_COMMAND_ANNOTATION];
    const command =
      value !== undefined && policy.spec.rollout
        ? applyCommand(kept, value, snapshot.now.getTime(), deployment.metadata.name)
        : undefined;
    if (command && value !== undefined) this.commands.set(key, { value, outcome: command });
    else this.commands.delete(key);
    const previous = command ? command.state : kept;
    const revision = newestRevision(deployment, snapshot.replicaSets);
    const hold = capacityShrinkHold(snapshot);
    // After a rollback, the failed revision newest again: who wrote it (the cache keeps no managedFields).
    const writer = needsTemplateWriter(previous, revision)
      ? await this.templateWriterOf(deployment, signal)
      : undefined;
    const restore = this.restores.get(key);
    const blocked =
      restore && previous?.rollback?.failedRevision === restore.failed ? restore.blocked : undefined;
    return decideRollout({
      deployment: {
        name: deployment.metadata.name,
        generation: deployment.metadata.generation ?? 0,
        observedGeneration: deployment.status?.observedGeneration ?? 0,
        replicas: deployment.spec.replicas ?? 1,
        ...(deployment.spec.progressDeadlineSeconds !== undefined
          ? { progressDeadlineSeconds: deployment.spec.progressDeadlineSeconds }
          : {}),
      },
      newestRevision: revision,
      complete: revision !== undefined && fullyAvailable(deployment, snapshot.replicaSets, revision),
      pods: snapshot.pods.map((pod) => {
        const uid = pod.metadata.uid ?? "";
        const entry = this.checked.get(uid);
        return gatePod(pod, entry && this.isReadyContainers(pod) ? entry.assessment : undefined);
      }),
      rollout: policy.spec.rollout,
      floor: servingFloor(snapshot, policy.spec.headroom),
      previous,
      now: snapshot.now.getTime(),
      ...(hold ? { hold } : {}),
      ...(command?.abort ? { abortRequested: command.abort } : {}),
      enforcing: this.o.enforcing?.(policy) ?? false,
      ...(writer ? { templateWriter: writer } : {}),
      ...(blocked ? { rollbackBlocked: blocked } : {}),
    });
  }

  /** The live Deployment's managedFields (a list by name: the list grant covers it): its template's last writer. */
  private async templateWriterOf(deployment: Deployment, signal: AbortSignal): Promise<string | undefined> {
    const found = await this.o.client.list(
      resources.deployments,
      deployment.metadata.namespace ?? "",
      { fieldSelector: `metadata.name=${deployment.metadata.name}` },
      signal,
    );
    const live = found.items[0] as KubeObject | undefined;
    return templateWriter((live?.metadata.managedFields ?? []) as ManagedFieldsEntry[]);
  }

  /**
   * onFailure Rollback: the stable ReplicaSet's template, minus its pod-template-hash label, written
   * into the Deployment by a JSON patch (as `kubectl rollout undo` does), conditional on the
   * generation healthgate saw. A dry run first: if admission would change the restored template
   * (a decision other than the stable revision's), the Deployment controller would make a new
   * ReplicaSet — healthgate retries while the index catches up, then says it cannot. Afterwards no
   * healthgate field manager owns a template field: its managedFields entries are rewritten.
   */
  private async restore(
    deployment: Deployment,
    replicaSets: readonly ReplicaSet[],
    intent: RollbackIntent,
    signal: AbortSignal,
  ): Promise<void> {
    const ns = deployment.metadata.namespace ?? "";
    const name = deployment.metadata.name;
    const key = `${ns}/${name}`;
    const tries = this.restores.get(key);
    const restore =
      tries?.failed === intent.failedRevision ? tries : { failed: intent.failedRevision, attempts: 0 };
    this.restores.set(key, restore);
    if (restore.blocked) return;
    const block = (why: string) => {
      restore.blocked = why;
      this.o.logger.warn({ namespace: ns, name, kind: "Deployment", reason: "RollbackBlocked" }, why);
      this.o.enqueue(ns, name);
    };
    const rs = replicaSets.find((r) => r.metadata.labels?.[POD_TEMPLATE_HASH] === intent.toRevision);
    if (!rs)
      return block(`the ReplicaSet of revision ${intent.toRevision} is gone (spec.revisionHistoryLimit)`);
    // A list by name: the list grant the informer needs covers it (the cache keeps no templates).
    const found = await this.o.client.list(
      resources.replicaSets,
      ns,
      { fieldSelector: `metadata.name=${rs.metadata.name}` },
      signal,
    );
    const live = found.items[0] as
      (KubeObject & { spec?: { template?: Deployment["spec"]["template"] } }) | undefined;
    if (!live?.spec?.template) return block(`ReplicaSet ${rs.metadata.name} is gone`);
    const template = restoredTemplate(live.spec.template);
    const target = { namespace: ns, name };
    const operations = [
      { op: "test" as const, path: "/metadata/generation", value: deployment.metadata.generation ?? 0 },
      { op: "replace" as const, path: "/spec/template", value: template },
    ];
    const options = { fieldManager: ROLLBACK_FIELD_MANAGER, signal };
    let dry: Deployment;
    try {
      dry = await this.o.client.jsonPatch<Deployment & KubeObject>(
        resources.deployments,
        target,
        operations,
        {
          ...options,
          dryRun: true,
        },
      );
    } catch (err) {
      // 422: the Deployment moved on since the cache saw it; the next reconcile decides again.
      if (statusCodeOf(err) === 422 || statusCodeOf(err) === 409) return this.o.enqueue(ns, name);
      throw err;
    }
    const changed = differences(template, dry.spec.template);
    if (changed.length > 0) {
      restore.attempts++;
      if (restore.attempts >= MAX_ROLLBACK_ATTEMPTS)
        return block(
          `admission would change the restored template (${changed.slice(0, 4).join(", ")}), so the Deployment ` +
            `controller would create a new ReplicaSet (does the record keep the stable revision's decision?)`,
        );
      this.o.logger.info(
        { namespace: ns, name, kind: "Deployment", changed: changed.slice(0, 4), attempt: restore.attempts },
        "rollback: admission still changes the restored template; retrying",
      );
      return;
    }
    let written: KubeObject;
    try {
      written = await this.o.client.jsonPatch(resources.deployments, target, operations, options);
    } catch (err) {
      if (statusCodeOf(err) === 422 || statusCodeOf(err) === 409) return this.o.enqueue(ns, name);
      throw err;
    }
    this.o.logger.info(
      { namespace: ns, name, kind: "Deployment", from: intent.failedRevision, to: intent.toRevision },
      "rolled back: restored the stable revision's template",
    );
    await this.disownTemplate(
      ns,
      name,
      (written.metadata.managedFields ?? []) as ManagedFieldsEntry[],
      signal,
    );
    this.restores.delete(key);
  }

  /** Leaves no healthgate field manager owning a template field (a co-owned container breaks a GitOps rename). */
  private async disownTemplate(
    namespace: string,
    name: string,
    entries: readonly ManagedFieldsEntry[],
    signal: AbortSignal,
  ): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const ops = disownTemplateOps(entries);
      if (ops.length === 0) return;
      try {
        const after = await this.o.client.jsonPatch(resources.deployments, { namespace, name }, ops, {
          fieldManager: ROLLBACK_FIELD_MANAGER,
          signal,
        });
        const owners = healthgateTemplateOwners((after.metadata.managedFields ?? []) as ManagedFieldsEntry[]);
        if (owners.length === 0) return;
        entries = (after.metadata.managedFields ?? []) as ManagedFieldsEntry[];
      } catch (err) {
        // 422: the entries moved on (a test failed): read them again.
        if (statusCodeOf(err) !== 422) throw err;
        const found = await this.o.client.list(
          resources.deployments,
          namespace,
          { fieldSelector: `metadata.name=${name}` },
          signal,
        );
        entries = ((found.items[0] as KubeObject | undefined)?.metadata.managedFields ??
          []) as ManagedFieldsEntry[];
      }
    }
    this.o.logger.warn(
      { namespace, name, kind: "Deployment" },
      "rollback: a healthgate field manager still owns template fields",
    );
  }

  /** The outcome's writes: gates (transitions only), the record's status.rollout, the prober's targets. */
  async act(
    policy: HealthPolicy,
    snapshot: TargetSnapshot,
    record: CachedTarget | undefined,
    outcome: RolloutOutcome,
    signal: AbortSignal,
  ): Promise<void> {
    const { deployment } = snapshot;
    const ns = deployment.metadata.namespace ?? "";
    const name = deployment.metadata.name;
    const key = `${ns}/${name}`;
    const pods = new Map(snapshot.pods.map((p) => [p.metadata.name, p]));
    const uids = new Set(snapshot.pods.map((p) => p.metadata.uid));
    const written = this.gatesWritten.get(key) ?? new Map<string, "True" | "False">();
    for (const uid of written.keys()) if (!uids.has(uid)) written.delete(uid);
    this.gatesWritten.set(key, written);
    for (const gate of outcome.gates) {
      const pod = pods.get(gate.pod);
      if (!pod || written.get(gate.uid) === gate.status) continue;
      await writeGate(
        this.o.client,
        pod,
        { status: gate.status, reason: gate.reason, message: gate.message },
        snapshot.now,
        signal,
      );
      written.set(gate.uid, gate.status);
      this.o.logger.info(
        {
          namespace: ns,
          name: gate.pod,
          kind: "Pod",
          deployment: name,
          reason: gate.reason,
          status: gate.status,
        },
        "deep-check gate written",
      );
    }
    this.states.set(key, outcome.state);
    if (outcome.rollback) await this.restore(deployment, snapshot.replicaSets, outcome.rollback, signal);
    const live = record?.status?.rollout;
    if (record && !sameJson(live ?? null, outcome.state ?? null)) {
      await this.o.client.applyObject(
        {
          apiVersion: `${resources.healthTargets.group}/${resources.healthTargets.version}`,
          kind: "HealthTarget",
          metadata: { name, namespace: ns },
          status: outcome.state ? { rollout: outcome.state } : {},
        } as KubeObject,
        { fieldManager: ROLLOUT_FIELD_MANAGER, force: true, subresource: "status", signal },
      );
    }
    await this.consumeCommand(deployment, signal);
    this.probe(policy, key, snapshot.pods, outcome.probe);
  }

  /**
   * After its effect is in the record: the command's Event, then the annotation removed — only if
   * it still holds that command (a newer one written meanwhile stays for the next reconcile).
   */
  private async consumeCommand(deployment: TargetSnapshot["deployment"], signal: AbortSignal): Promise<void> {
    const ns = deployment.metadata.namespace ?? "";
    const name = deployment.metadata.name;
    const command = this.commands.get(`${ns}/${name}`);
    if (!command) return;
    this.commands.delete(`${ns}/${name}`);
    const { event } = command.outcome;
    if (event) {
      const source = { identity: this.o.identity ?? "healthgate", now: new Date(), random: Math.random() };
      await this.o.client
        .create(eventFor(deployment, event.type, event.reason, event.message, source), signal)
        .catch((err: unknown) =>
          this.o.logger.warn(
            { namespace: ns, name, kind: "Deployment", reason: event.reason, err: String(err) },
            "could not record event",
          ),
        );
    }
    const path = `/metadata/annotations/${ROLLOUT_COMMAND_ANNOTATION.replaceAll("~", "~0").replaceAll("/", "~1")}`;
    try {
      await this.o.client.jsonPatch(
        resources.healthTargets,
        { namespace: ns, name },
        [
          { op: "test", path, value: command.value },
          { op: "remove", path },
        ],
        { fieldManager: ROLLOUT_FIELD_MANAGER, signal },
      );
    } catch (err) {
      // 422: the annotation changed or went meanwhile (a newer command, or already removed).
      const code = statusCodeOf(err);
      if (code !== 422 && code !== 404 && code !== 409) throw err;
    }
    this.o.logger.info(
      { namespace: ns, name, kind: "HealthTarget", command: command.value, reason: event?.reason },
      "rollout command consumed",
    );
  }

  /** A Deployment that is gone or no longer governed: stop checking its pods, forget its state. */
  forget(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    this.states.delete(key);
    this.gatesWritten.delete(key);
    this.restores.delete(key);
    this.probe(undefined, key, [], { new: [], stable: [] });
  }

  private isReadyContainers(pod: Pod): boolean {
    return pod.status?.conditions?.some((c) => c.type === "ContainersReady" && c.status === "True") ?? false;
  }

  /**
   * Makes the prober check exactly these pods of the Deployment. A pod not ready any more starts
   * afresh. A pod it cannot check (hostNetwork, no pod IP, …) is handed over too, with the reason:
   * the prober keeps it in `unchecked()` and the healthgate_deep_check_unchecked_pods metric.
   */
  private probe(
    policy: HealthPolicy | undefined,
    key: string,
    pods: readonly Pod[],
    wanted: RolloutOutcome["probe"],
  ): void {
    const [namespace, deployment] = key.split("/") as [string, string];
    const targets: ProbeTarget[] = [];
    const uncheckable: { who: Parameters<ProberHandle["track"]>[0]; verdict: TargetVerdict }[] = [];
    if (policy?.spec.rollout) {
      const { successThreshold, failureLimit } = policy.spec.rollout.deepCheck;
      for (const [cohort, names] of [
        ["new", wanted.new],
        ["stable", wanted.stable],
      ] as const) {
        for (const podName of names) {
          const pod = pods.find((p) => p.metadata.name === podName);
          if (!pod) continue;
          const verdict = deepCheckTarget(policy.spec, pod, cohort);
          if (!("target" in verdict)) {
            const uid = pod.metadata.uid ?? `${namespace}/${podName}`;
            this.checked.delete(uid);
            uncheckable.push({ who: { key: uid, namespace, pod: podName, cohort }, verdict });
            continue;
          }
          targets.push(verdict.target);
          if (!this.checked.has(verdict.target.key)) {
            this.checked.set(verdict.target.key, {
              namespace,
              deployment,
              pod: podName,
              cohort,
              assessment: NO_ASSESSMENT,
              thresholds: { successThreshold, failureLimit },
            });
          }
        }
      }
    }
    const keys = new Set([...targets.map((t) => t.key), ...uncheckable.map((u) => u.who.key)]);
    const before = this.targetsOf.get(key) ?? new Set<string>();
    const gone = [...before].filter((k) => !keys.has(k));
    for (const k of gone) this.checked.delete(k);
    if (keys.size > 0) this.targetsOf.set(key, keys);
    else this.targetsOf.delete(key);
    if (uncheckable.length > 0)
      this.uncheckedOf.set(
        key,
        uncheckable.map(({ who, verdict }) => ({
          pod: who.pod,
          cohort: who.cohort,
          reason: "unchecked" in verdict ? verdict.unchecked.reason : "NoDeepCheck",
        })),
      );
    else this.uncheckedOf.delete(key);
    const prober = this.o.prober();
    if (gone.length > 0) prober?.remove(gone);
    if (targets.length > 0) prober?.upsert(targets);
    for (const { who, verdict } of uncheckable) prober?.track(who, verdict);
  }
}
