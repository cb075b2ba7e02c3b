// Rollout gating (DESIGN.md, "Rollout gating"): pure. From the Deployment's revisions, its pods'
// standing, the deep-check assessments and the state the record kept, decide which gates open or
// close, the RolloutHealthy condition, the figures and the next state. The caller writes the
// gates (on transitions only), the condition and the record, and requeues as asked.
//
// The rules, in the order they are applied on a gated revision:
//   1. first sight of a revision: RolloutHealthy Unknown (NewRevision), nothing else;
//   2. crash loops and image pulls that fail count against the revision: abort;
//   3. deep checks (only of pods whose ContainersReady is True), judged against the stable pods
//      as a control group: new failing while stable passed throughout → abort; stable failing
//      too → DependencyDegraded (hold); transport errors on both → DeepCheckUnreachable (hold);
//   4. unschedulable new pods → hold (cluster capacity, not the revision);
//   5. newPodDeadline: a new pod neither admitted nor passing by then → abort (flapping never
//      resets it: the clock runs from the pod's creation);
//   6. the serving floor: a controller allowed to take serving pods below F → hold before the step;
//   7. the step budget: admit passing pods while admitted < ceil(weight × replicas); bake from the
//      moment the budget is filled; then the next step; after the last, the revision is stable.
// An abort closes admitted gates only while Ready pods stay at or above F.
import type { RollbackState, RolloutState } from "../../api/v1alpha1/healthtarget.ts";
import {
  ConditionType,
  durationSeconds,
  type RolloutFigures,
  type RolloutPhase,
  type RolloutSpec,
} from "../../api/v1alpha1/index.ts";
import type { CapacityHold } from "../guard/hold.ts";
import type { ConditionIntent, EventIntent } from "../seam.ts";
import type { GatePod, ServingFloor } from "./revisions.ts";

export interface RolloutInput {
  deployment: {
    name: string;
    generation: number;
    /** status.observedGeneration: the controller has seen `generation` when this is at least that. */
    observedGeneration: number;
    /** spec.replicas (an HPA changes it: budgets follow). */
    replicas: number;
    /** spec.progressDeadlineSeconds (the API server defaults it to 600). */
    progressDeadlineSeconds?: number;
  };
  /** The newest ReplicaSet's pod-template-hash; undefined while the controller has not caught up. */
  newestRevision: string | undefined;
  /** The Deployment runs only its newest revision, every replica updated and available. */
  complete: boolean;
  pods: readonly GatePod[];
  /** spec.rollout; undefined: the Deployment is not gated (every gate opens at once). */
  rollout: RolloutSpec | undefined;
  floor: ServingFloor;
  /** What the record kept (status.rollout). */
  previous: RolloutState | undefined;
  /** Epoch ms. */
  now: number;
  /** The correlated-failure guard's capacityShrinkHold: while set, the rollout holds. */
  hold?: CapacityHold;
  /** A human's abort (healthgate.io/rollout-command): the message it aborts with. */
  abortRequested?: string;
  /** The policy's Enforce can act (mode Enforce, served): only then does onFailure Rollback restore a template. */
  enforcing?: boolean;
  /**
   * The field manager that last wrote the Deployment's template (from managedFields), when another
   * one wrote the failed template back after a rollback (see needsTemplateWriter).
   */
  templateWriter?: string;
  /** Why the controller could not restore the stable template without a new ReplicaSet (it stops trying). */
  rollbackBlocked?: string;
}

/** The controller's restore of a stable template (onFailure Rollback). */
export interface RollbackIntent {
  failedRevision: string;
  toRevision: string;
}

export interface GateDecision {
  pod: string;
  uid: string;
  status: "True" | "False";
  reason: string;
  message: string;
}

export interface RolloutOutcome {
  /** Gates to write (only where the pod's gate differs). */
  gates: GateDecision[];
  /** The record's status.rollout; undefined: none (no spec.rollout). */
  state: RolloutState | undefined;
  condition?: ConditionIntent;
  figures?: RolloutFigures;
  events: EventIntent[];
  requeueAfterSeconds?: number;
  /** Pods to deep-check now: new pods, and the sample of stable ones. */
  probe: { new: string[]; stable: string[] };
  /** onFailure Rollback: restore `toRevision`'s template (as kubectl rollout undo does). */
  rollback?: RollbackIntent;
}

export const RolloutReason = {
  NewRevision: "NewRevision",
  FirstRevision: "FirstRevision",
  Progressing: "Progressing",
  Baking: "Baking",
  RolloutComplete: "RolloutComplete",
  DependencyDegraded: "DependencyDegraded",
  DeepCheckUnreachable: "DeepCheckUnreachable",
  Unschedulable: "Unschedulable",
  ServingFloor: "ServingFloor",
  DeepCheckFailed: "DeepCheckFailed",
  CrashLoop: "CrashLoop",
  ImagePullFailed: "ImagePullFailed",
  NewPodDeadlineExceeded: "NewPodDeadlineExceeded",
  CorrelatedFailure: "CorrelatedFailure",
  AbortRequested: "AbortRequested",
  RolledBack: "RolledBack",
  RollbackOverridden: "RollbackOverridden",
  RollbackBlocked: "RollbackBlocked",
  /** Gate reasons. */
  Admitted: "Admitted",
  NotGated: "NotGated",
  StableRevision: "StableRevision",
  RolloutAborted: "RolloutAborted",
} as const;

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const names = (pods: readonly GatePod[]) => pods.map((p) => p.name).join(", ");
const byAge = (a: GatePod, b: GatePod) => a.createdAt - b.createdAt || (a.name < b.name ? -1 : 1);

/** ceil(weight × replicas / 100): new pods a step admits. */
export function stepBudget(weight: number, replicas: number): number {
  return Math.ceil((weight * replicas) / 100);
}

const open = (pod: GatePod, reason: string, message: string): GateDecision => ({
  pod: pod.name,
  uid: pod.uid,
  status: "True",
  reason,
  message,
});

/** Gated pods not held by this rollout: their gates open at once. */
function openAll(pods: readonly GatePod[], reason: string, message: string): GateDecision[] {
  return pods.filter((p) => p.gated && !p.deleting && p.gate !== "True").map((p) => open(p, reason, message));
}

const phaseStatus = (phase: RolloutPhase): ConditionIntent["status"] =>
  phase === "Completed" ? "True" : phase === "Aborted" ? "False" : "Unknown";

function conditionOf(state: RolloutState): ConditionIntent | undefined {
  if (!state.reason || !state.message) return undefined;
  return {
    type: ConditionType.RolloutHealthy,
    status: phaseStatus(state.phase),
    reason: state.reason,
    message: state.message,
  };
}

/** The policy's per-target figures from the record's state. */
export function rolloutFigures(state: RolloutState): RolloutFigures {
  return {
    phase: state.phase,
    ...(state.step !== undefined ? { step: state.step } : {}),
    ...(state.weight !== undefined ? { weight: state.weight } : {}),
    ...(state.stableRevision ? { stableRevision: state.stableRevision } : {}),
    ...(state.revision && state.revision !== state.stableRevision ? { canaryRevision: state.revision } : {}),
    ...(state.admitted ? { admittedCanaryPods: state.admitted.length } : {}),
    ...(state.bakeStartedAt ? { stepStartedAt: state.bakeStartedAt } : {}),
  };
}

/**
 * The condition and figures a record's state stands for (the policy's status reads them from
 * there), with the deep-check counts of the pods checked now, if any.
 */
export function rolloutView(state: RolloutState | undefined, deepChecks?: RolloutFigures["deepChecks"]) {
  if (!state) return undefined;
  const condition = conditionOf(state);
  return {
    figures: { ...rolloutFigures(state), ...(deepChecks ? { deepChecks } : {}) },
    ...(condition ? { condition } : {}),
  };
}

function finish(
  state: RolloutState,
  gates: GateDecision[],
  extra: Partial<Pick<RolloutOutcome, "events" | "requeueAfterSeconds" | "probe" | "rollback">> = {},
): RolloutOutcome {
  const condition = conditionOf(state);
  return {
    gates,
    state,
    ...(condition ? { condition } : {}),
    figures: rolloutFigures(state),
    events: extra.events ?? [],
    probe: extra.probe ?? { new: [], stable: [] },
    ...(extra.requeueAfterSeconds !== undefined ? { requeueAfterSeconds: extra.requeueAfterSeconds } : {}),
    ...(extra.rollback ? { rollback: extra.rollback } : {}),
  };
}

/**
 * Whether the controller should look up who wrote the template (RolloutInput.templateWriter):
 * after a rollback, the Deployment's newest revision is the failed one again (once: Overridden
 * keeps the name).
 */
export function needsTemplateWriter(previous: RolloutState | undefined, newestRevision: string | undefined) {
  const rb = previous?.rollback;
  return rb !== undefined && rb.phase === "RolledBack" && newestRevision === rb.failedRevision;
}

/** A rollback is kept while the Deployment runs its failed or its stable revision, until a human asks. */
export function rollbackHolds(state: RolloutState | undefined): boolean {
  return state?.rollback !== undefined && state.rollback.phase !== "Blocked";
}

/**
 * onFailure Rollback after the abort: restore the stable template (Pending), see it restored
 * (RolledBack: the Deployment runs the stable revision again), or see another field manager write
 * the failed template back (Overridden: reported, never fought). Undefined: the Deployment moved
 * to a revision of its own (a human's new revision): the rollback is over.
 */
function rolledBack(
  input: RolloutInput,
  previous: RolloutState,
  rb: RollbackState,
  revision: string,
  live: readonly GatePod[],
  base: Pick<RolloutState, "observedGeneration" | "floor">,
): RolloutOutcome | undefined {
  const { now, deployment: d } = input;
  const n = d.replicas;
  if (revision !== rb.failedRevision && revision !== rb.toRevision) return undefined;
  const stablePods = live.filter((p) => p.revision === rb.toRevision);
  const gates = openAll(
    stablePods,
    RolloutReason.StableRevision,
    `pod of the stable revision ${rb.toRevision}`,
  );
  const abortReason = rb.abortReason ?? "Aborted";
  const state = (next: RollbackState, reason: string, message: string): RolloutState => ({
    ...previous,
    ...base,
    phase: "Aborted",
    rollback: next,
    reason,
    message: message.slice(0, 2048),
  });
  const retry = `healthgate rollout retry ${d.name}`;
  const intent = { failedRevision: rb.failedRevision, toRevision: rb.toRevision };

  if (rb.phase === "Blocked") {
    return finish(previous, gates);
  }
  if (revision === rb.failedRevision) {
    if (rb.phase === "Pending") {
      if (input.rollbackBlocked) {
        const message =
          `revision ${rb.failedRevision} aborted (${abortReason}); onFailure is Rollback but the stable revision ` +
          `${rb.toRevision} cannot be restored without a new ReplicaSet: ${input.rollbackBlocked}. Acting as Hold: ` +
          `roll back by hand (kubectl rollout undo deployment/${d.name}), fix the revision, or ${retry}`;
        const next = state(
          { ...rb, phase: "Blocked", message: input.rollbackBlocked.slice(0, 1024) },
          RolloutReason.RollbackBlocked,
          message,
        );
        return finish(next, gates, {
          events: [
            {
              regarding: "Deployment",
              type: "Warning",
              reason: RolloutReason.RollbackBlocked,
              message,
              immediate: true,
            },
          ],
        });
      }
      // Still to restore (the controller writes it; the next look sees the stable revision newest).
      return finish({ ...previous, ...base }, gates, { rollback: intent, requeueAfterSeconds: 1 });
    }
    // Rolled back, and now the failed template is back: someone else wrote it. Report, never fight.
    const who = input.templateWriter ?? rb.manager;
    const named = who ? `field manager ${who}` : "another field manager";
    const message =
      `${named} wrote the template of aborted revision ${rb.failedRevision} back after healthgate rolled Deployment ` +
      `${d.name} back to stable revision ${rb.toRevision}: healthgate does not fight it and restores nothing more. ` +
      `The revision stays aborted (its new pods are not admitted). Fix the revision at its source (a GitOps tool ` +
      `self-heals to what Git says), or ${retry} to re-run its checks`;
    const next = state(
      { ...rb, phase: "Overridden", ...(who ? { manager: who.slice(0, 256) } : {}) },
      RolloutReason.RollbackOverridden,
      message,
    );
    const events: EventIntent[] =
      rb.phase === "Overridden"
        ? []
        : [
            {
              regarding: "Deployment",
              type: "Warning",
              reason: RolloutReason.RollbackOverridden,
              message,
              immediate: true,
            },
          ];
    return finish(next, gates, { events });
  }

  // The Deployment runs the stable revision again.
  const ready = stablePods.filter((p) => p.ready).length;
  const at = rb.at ?? iso(now);
  const message =
    `revision ${rb.failedRevision} aborted (${abortReason}); rolled back to stable revision ${rb.toRevision} at ${at} ` +
    `(its template restored as kubectl rollout undo does: no new ReplicaSet): ${ready} of ${n} pods Ready` +
    (input.complete ? "" : ", the Deployment controller is scaling it back up") +
    `. healthgate releases neither the failed template nor a newer decision again until a human asks: apply a new ` +
    `revision, or ${retry}`;
  const next = state({ ...rb, phase: "RolledBack", at }, RolloutReason.RolledBack, message);
  const events: EventIntent[] =
    rb.phase === "RolledBack"
      ? []
      : [
          {
            regarding: "Deployment",
            type: "Warning",
            reason: RolloutReason.RolledBack,
            // Once, when it happens (the condition stays False: no flip sends it).
            immediate: true,
            message: `revision ${rb.failedRevision} aborted (${abortReason}): rolled back to stable revision ${rb.toRevision}`,
          },
        ];
  return finish(next, gates, { events, ...(input.complete ? {} : { requeueAfterSeconds: 2 }) });
}

/**
 * The Deployment controller counts no progress during a bake: a bake as long as
 * progressDeadlineSeconds shows as ProgressDeadlineExceeded (it never rolls back; it alarms).
 */
function bakeVersusDeadline(bakeSeconds: number, deadline = 600): string {
  if (bakeSeconds < deadline) return "";
  return (
    `; BakeExceedsProgressDeadline: this bake (${bakeSeconds}s) is not shorter than progressDeadlineSeconds ` +
    `(${deadline}), so the Deployment will report ProgressDeadlineExceeded; set spec.progressDeadlineSeconds ` +
    `above ${bakeSeconds}`
  );
}

const stableMessage = (revision: string, deployment: string, first: boolean) =>
  `revision ${revision} of Deployment ${deployment} is stable${first ? " (its first revision, not gated)" : ""}`;

/**
 * The revision a Deployment ran before a newer one appeared, when healthgate governed it then but
 * had not marked any revision stable yet: the first revision was not fully available when it
 * last looked, or kube-controller-manager had not caught up enough to name a revision at all.
 * While pods of it are Ready, it is the stable revision the newer one is judged against; without
 * this, a revision applied moments after the first became Ready was taken for a first revision
 * and not gated. (A Deployment healthgate first looks at mid-rollout is still not gated: there
 * is no earlier look.) The one healthgate saw, if it saw one; else the one with most Ready pods.
 */
function servingFirstRevision(
  previous: RolloutState | undefined,
  revision: string | undefined,
  live: readonly GatePod[],
): string | undefined {
  if (!previous || revision === undefined || previous.revision === revision) return undefined;
  const ready = new Map<string, number>();
  for (const p of live) {
    if (!p.ready || p.revision === revision) continue;
    if (previous.revision !== undefined && p.revision !== previous.revision) continue;
    ready.set(p.revision, (ready.get(p.revision) ?? 0) + 1);
  }
  return [...ready].sort(([a, m], [b, n]) => n - m || (a < b ? -1 : 1))[0]?.[0];
}

export function decideRollout(input: RolloutInput): RolloutOutcome {
  const { rollout, previous, now, deployment: d } = input;
  const live = input.pods.filter((p) => !p.deleting);
  if (!rollout) {
    return {
      gates: openAll(live, RolloutReason.NotGated, "the Deployment's policy has no spec.rollout: not gated"),
      state: undefined,
      events: [],
      probe: { new: [], stable: [] },
    };
  }
  const observedGeneration =
    d.observedGeneration >= d.generation ? d.generation : previous?.observedGeneration;
  const base: Pick<RolloutState, "observedGeneration" | "floor"> = {
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    floor: input.floor.floor,
  };
  const revision = input.newestRevision;
  const stable = previous?.stableRevision ?? servingFirstRevision(previous, revision, live);
  if (revision === undefined) {
    // The controller has not caught up with the Deployment's generation: keep what was known.
    const kept: RolloutState = { ...(previous ?? { phase: "Idle" }), ...base };
    if (previous?.observedGeneration !== undefined) kept.observedGeneration = previous.observedGeneration;
    else delete kept.observedGeneration;
    return finish(kept, [], { requeueAfterSeconds: 1 });
  }

  if (previous?.rollback && previous.stableRevision) {
    const outcome = rolledBack(input, previous, previous.rollback, revision, live, base);
    if (outcome) return outcome;
  }

  // First sight of a revision: say so before anything else.
  if (previous?.revision !== revision) {
    const state: RolloutState = {
      phase: "Progressing",
      revision,
      ...(stable ? { stableRevision: stable } : {}),
      ...base,
      startedAt: iso(now),
      reason: RolloutReason.NewRevision,
      message: stable
        ? `new revision ${revision} of Deployment ${d.name} seen; it is gated against stable revision ${stable}`
        : `revision ${revision} of Deployment ${d.name} seen; a Deployment's first revision is not gated`,
    };
    return finish(state, [], { requeueAfterSeconds: 0.2 });
  }

  // The first revision, and the stable one, are not gated.
  if (!stable || revision === stable) {
    const first = !stable;
    const gates = openAll(
      live.filter((p) => first || p.revision === stable),
      first ? RolloutReason.FirstRevision : RolloutReason.StableRevision,
      first ? "a Deployment's first revision is not gated" : `pod of the stable revision ${revision}`,
    );
    if (input.complete || !first) {
      const state: RolloutState = {
        // What the rollout that completed recorded (its steps, the pods it admitted) stays.
        ...(previous?.revision === revision ? previous : {}),
        phase: "Completed",
        revision,
        stableRevision: revision,
        ...base,
        reason: RolloutReason.RolloutComplete,
        message: stableMessage(revision, d.name, first),
      };
      return finish(state, gates);
    }
    const state: RolloutState = {
      ...previous,
      phase: "Progressing",
      revision,
      ...base,
      reason: RolloutReason.FirstRevision,
      message: `revision ${revision} is Deployment ${d.name}'s first: not gated; it becomes the stable revision once every replica is available`,
    };
    return finish(state, gates, { requeueAfterSeconds: 5 });
  }

  return gatedRollout(input, { ...previous, ...base, revision, stableRevision: stable }, live);
}

/** A revision other than the stable one, on a gated Deployment. */
function gatedRollout(input: RolloutInput, prior: RolloutState, live: readonly GatePod[]): RolloutOutcome {
  const rollout = input.rollout as RolloutSpec;
  const { now, floor } = input;
  const n = input.deployment.replicas;
  const name = input.deployment.name;
  const revision = prior.revision as string;
  const stable = prior.stableRevision as string;
  const check = rollout.deepCheck;

  const newPods = live.filter((p) => p.revision === revision).sort(byAge);
  const stablePods = live.filter((p) => p.revision === stable).sort((a, b) => (a.name < b.name ? -1 : 1));
  const oldServing = live.filter((p) => p.revision !== revision && p.ready).length;
  const serving = live.filter((p) => p.ready).length;

  // Stable pods are never held; pods of a superseded in-between revision stay as they are.
  const gates = openAll(stablePods, RolloutReason.StableRevision, `pod of the stable revision ${stable}`);

  const admittedNames = new Set([
    ...(prior.admitted ?? []).filter((a) => newPods.some((p) => p.name === a)),
    ...newPods.filter((p) => p.gated && p.gate === "True").map((p) => p.name),
  ]);
  const sample = stablePods
    .filter((p) => p.ready && p.containersReady)
    .slice(0, check.stableSample)
    .map((p) => p.name);
  const probe = {
    new: newPods.filter((p) => p.containersReady).map((p) => p.name),
    stable: sample,
  };

  if (prior.phase === "Aborted") {
    // Latched: nothing more is admitted, the gates dropped stay dropped.
    return finish({ ...prior, admitted: [...admittedNames] }, gates);
  }

  const step = Math.min(prior.step ?? 0, rollout.steps.length - 1);
  const weight = rollout.steps[step]?.weight ?? 100;
  const budget = stepBudget(weight, n);
  let state: RolloutState = {
    ...prior,
    step,
    weight,
    budget,
    admitted: [...admittedNames],
  };
  const interval = check.intervalSeconds;

  const abort = (reason: string, what: string) =>
    abortRollout(input, state, gates, newPods, { reason, what, oldServing, serving, probe });
  // A human abort is acted on even during a correlated-failure hold: it closes gates only down to the floor.
  if (input.abortRequested) return abort(RolloutReason.AbortRequested, input.abortRequested);
  const hold = (phase: RolloutPhase, reason: string, message: string) =>
    finish({ ...state, phase, reason, message }, gates, { requeueAfterSeconds: interval, probe });

  // A correlated failure (src/policy/guard) shrinks capacity enough: admit nothing, take no step,
  // abort nothing (no gate closes, no rollback) until it clears.
  if (input.hold)
    return hold(
      "Holding",
      RolloutReason.CorrelatedFailure,
      `${input.hold.message}: rollout of revision ${revision} holds at step ${step + 1} ` +
        `(nothing admitted, nothing aborted)`,
    );

  // 2. Crash loops and failing image pulls count against the revision.
  const crashing = newPods.filter((p) => p.crashLooping);
  if (crashing.length > 0)
    return abort(
      RolloutReason.CrashLoop,
      `new pod(s) crash-loop: ${crashing.map((p) => `${p.name} ${p.crashLooping}`).join("; ")}`,
    );
  const unpulled = newPods.filter((p) => p.imagePullFailing);
  if (unpulled.length > 0)
    return abort(
      RolloutReason.ImagePullFailed,
      `the image of new pod(s) cannot be pulled: ${unpulled.map((p) => `${p.name} ${p.imagePullFailing}`).join("; ")}`,
    );

  // 3. Deep checks against the control group.
  const checked = newPods.filter((p) => p.containersReady && p.assessment);
  const failing = checked.filter((p) => (p.assessment?.consecutiveFailures ?? 0) >= check.failureLimit);
  const unreachable = checked.filter((p) => (p.assessment?.consecutiveErrors ?? 0) >= check.failureLimit);
  const control = input.pods.filter((p) => sample.includes(p.name) && p.assessment);
  const noControl = control.length === 0;
  const controlFails = control.some((p) => p.assessment?.last === "fail");
  const controlUnreachable = !noControl && control.every((p) => p.assessment?.last === "error");
  // The control group's shortest streak of passes. It must cover the last failureLimit failures
  // of a new pod, not the whole streak: one stable hiccup (a timeout under load) long after a new
  // pod began failing would otherwise keep the control streak shorter forever, and never abort.
  const controlPassStreak = noControl
    ? 0
    : Math.min(...control.map((p) => p.assessment?.consecutivePasses ?? 0));
  const withoutControl = noControl
    ? check.stableSample === 0
      ? " (judged without a control group: stableSample is 0)"
      : " (judged without a control group: no stable pod could be checked)"
    : "";
  const newFailures = Math.max(0, ...checked.map((p) => p.assessment?.consecutiveFailures ?? 0));
  // Failures count against the revision only while the control group passed throughout them.
  const counted = noControl ? newFailures : Math.min(newFailures, controlPassStreak);
  state.failures = Math.max(prior.failures ?? 0, counted);

  if (failing.length > 0) {
    if (controlFails)
      return hold(
        "Inconclusive",
        RolloutReason.DependencyDegraded,
        `new pods ${names(failing)} and stable pods ${names(control.filter((p) => p.assessment?.last === "fail"))} ` +
          `both fail ${check.path}: a shared dependency is probably down; holding (nothing admitted, nothing aborted) ` +
          `until it recovers`,
      );
    const streak = Math.max(...failing.map((p) => p.assessment?.consecutiveFailures ?? 0));
    if (noControl || controlPassStreak >= check.failureLimit)
      return abort(
        RolloutReason.DeepCheckFailed,
        `deep check ${check.path} failed ${streak} times in a row (failureLimit ${check.failureLimit}) on new pod(s) ` +
          `${names(failing)}${noControl ? withoutControl : ` while stable pods ${names(control)} passed`}`,
      );
  }
  if (unreachable.length > 0) {
    if (noControl || controlUnreachable)
      return hold(
        "Holding",
        RolloutReason.DeepCheckUnreachable,
        `healthgate cannot reach ${check.path} on new pods ${names(unreachable)}` +
          (noControl ? withoutControl : ` nor on stable pods ${names(control)}`) +
          `: a NetworkPolicy or a closed port? Let healthgate reach the pods' deep-check port; holding`,
      );
    const streak = Math.max(...unreachable.map((p) => p.assessment?.consecutiveErrors ?? 0));
    if (controlPassStreak >= check.failureLimit)
      return abort(
        RolloutReason.DeepCheckFailed,
        `new pod(s) ${names(unreachable)} did not answer ${check.path} ${streak} times in a row after their ` +
          `containers were ready, while stable pods ${names(control)} passed`,
      );
  }
  const note =
    controlFails && failing.length === 0
      ? " (stable pods fail the deep check while new pods pass: judged without a control group)"
      : withoutControl;

  // 4. Cluster capacity is not the revision's fault.
  const unschedulable = newPods.filter((p) => p.unschedulable);
  if (unschedulable.length > 0)
    return hold(
      "Holding",
      RolloutReason.Unschedulable,
      `new pod(s) ${names(unschedulable)} cannot be scheduled (${unschedulable[0]?.unschedulable}): a cluster-capacity ` +
        `problem, not the revision's; holding until they are scheduled`,
    );

  // 5. newPodDeadline, from each pod's creation.
  const deadlineSeconds = durationSeconds(rollout.newPodDeadline) ?? 600;
  const passing = (p: GatePod) => (p.assessment?.consecutivePasses ?? 0) >= check.successThreshold;
  // A pod whose last check passed is recovering (after a hold, say): its next checks decide.
  const late = newPods.filter(
    (p) =>
      !admittedNames.has(p.name) &&
      !passing(p) &&
      p.assessment?.last !== "pass" &&
      now - Math.max(p.createdAt, Date.parse(prior.retriedAt ?? "") || 0) > deadlineSeconds * 1000,
  );
  if (late.length > 0)
    return abort(
      RolloutReason.NewPodDeadlineExceeded,
      `new pod(s) ${names(late)} not admitted within newPodDeadline ${rollout.newPodDeadline} of their creation ` +
        `(never ${check.successThreshold} deep checks passed in a row)`,
    );

  // 6. The serving floor.
  if (n - floor.maxUnavailable < floor.floor)
    return hold(
      "Holding",
      RolloutReason.ServingFloor,
      `holding before step ${step + 1}: maxUnavailable ${floor.rawMaxUnavailable} lets the Deployment controller take ` +
        `${floor.maxUnavailable} of ${n} pods out of service, below the serving floor ${floor.floor} (${floor.why}); ` +
        `set spec.strategy.rollingUpdate.maxUnavailable to ${Math.max(0, n - floor.floor)}` +
        (n - floor.floor === 0 ? " (with maxSurge at least 1)" : ""),
    );

  // 7. The step budget, bakes, completion.
  const admit: GateDecision[] = [];
  const eligible = newPods.filter(
    (p) => p.gated && !admittedNames.has(p.name) && p.containersReady && passing(p),
  );
  // A new pod without the gate (the webhook failed open) serves anyway: it takes budget.
  const ungated = newPods.filter((p) => !p.gated && p.ready).length;
  let current = step;
  let bakeStartedAt = prior.bakeStartedAt;
  for (;;) {
    const w = rollout.steps[current]?.weight ?? 100;
    const b = stepBudget(w, n);
    while (admittedNames.size + ungated < b && eligible.length > 0) {
      const pod = eligible.shift() as GatePod;
      admittedNames.add(pod.name);
      admit.push(
        open(
          pod,
          RolloutReason.Admitted,
          `${check.successThreshold} deep checks of ${check.path} passed in a row; admitted at step ${current + 1} (weight ${w}%)`,
        ),
      );
    }
    state = { ...state, step: current, weight: w, budget: b, admitted: [...admittedNames] };
    // A human promoted this step: its wait and its bake are skipped.
    const promoted = prior.promotedStep !== undefined && current <= prior.promotedStep;
    if (admittedNames.size + ungated < b && !promoted) {
      // Not filled (any more: replicas grew): its bake starts when it is.
      const { bakeStartedAt: _dropped, ...rest } = state;
      state = {
        ...rest,
        phase: "Progressing",
        reason: RolloutReason.Progressing,
        message:
          `revision ${revision} of Deployment ${name}: step ${current + 1}/${rollout.steps.length} (weight ${w}%): ` +
          `${admittedNames.size + ungated} of ${b} new pods admitted; waiting for new pods to pass ${check.successThreshold} ` +
          `deep checks in a row${note}`,
      };
      return finish(state, [...gates, ...admit], { requeueAfterSeconds: interval, probe });
    }
    bakeStartedAt ??= iso(now);
    const bake = promoted ? 0 : (durationSeconds(rollout.steps[current]?.bake ?? "") ?? 0);
    const remaining = Date.parse(bakeStartedAt) + bake * 1000 - now;
    if (remaining > 0) {
      state = {
        ...state,
        phase: "Baking",
        bakeStartedAt,
        reason: RolloutReason.Baking,
        message:
          `revision ${revision} of Deployment ${name}: step ${current + 1}/${rollout.steps.length} (weight ${w}%) ` +
          `baking since ${bakeStartedAt} for ${rollout.steps[current]?.bake}: ${admittedNames.size + ungated} of ${n} ` +
          `new pods admitted${note}${bakeVersusDeadline(bake, input.deployment.progressDeadlineSeconds)}`,
      };
      return finish(state, [...gates, ...admit], {
        requeueAfterSeconds: Math.min(interval, Math.max(0.2, remaining / 1000)),
        probe,
      });
    }
    if (current < rollout.steps.length - 1) {
      current++;
      bakeStartedAt = undefined;
      const { bakeStartedAt: _done, ...rest } = state;
      state = rest;
      continue;
    }
    if (!input.complete) {
      state = {
        ...state,
        phase: "Progressing",
        bakeStartedAt,
        reason: RolloutReason.Progressing,
        message: `revision ${revision} of Deployment ${name}: every new pod admitted; waiting for the Deployment controller to finish`,
      };
      return finish(state, [...gates, ...admit], { requeueAfterSeconds: interval, probe });
    }
    const { bakeStartedAt: _last, budget: _b, ...rest } = state;
    state = {
      ...rest,
      phase: "Completed",
      stableRevision: revision,
      reason: RolloutReason.RolloutComplete,
      // What the next reconcile (the stable revision's) says too: no second write.
      message: stableMessage(revision, name, false),
    };
    return finish(state, [...gates, ...admit], {
      events: [
        {
          regarding: "Deployment",
          type: "Normal",
          reason: RolloutReason.RolloutComplete,
          message: `revision ${revision} passed every step (${rollout.steps.map((s) => `${s.weight}%`).join(", ")}) and is stable`,
        },
      ],
    });
  }
}

/**
 * Abort: admit nothing more; close admitted new pods' gates only while Ready pods stay at or above
 * the floor (admitted pods that are not Ready cost nothing); at weight 100 with no old pod left
 * serving, close none. Names the pods kept and says who must act.
 */
function abortRollout(
  input: RolloutInput,
  state: RolloutState,
  gates: GateDecision[],
  newPods: readonly GatePod[],
  what: {
    reason: string;
    what: string;
    oldServing: number;
    serving: number;
    probe: RolloutOutcome["probe"];
  },
): RolloutOutcome {
  const f = input.floor.floor;
  const admitted = newPods.filter((p) => state.admitted?.includes(p.name));
  const newestFirst = [...admitted].sort((a, b) => byAge(b, a));
  const dropped: GatePod[] = [];
  const kept: GatePod[] = [];
  let serving = what.serving;
  const noOldServing = what.oldServing === 0;
  for (const pod of newestFirst) {
    if (!pod.ready) dropped.push(pod);
    else if (!noOldServing && serving - 1 >= f) {
      dropped.push(pod);
      serving--;
    } else kept.push(pod);
  }
  const message =
    `${what.what}. Rollout of revision ${state.revision} aborted: nothing more is admitted` +
    (dropped.length > 0 ? `; gates closed on ${names(dropped)}` : "") +
    (kept.length > 0
      ? noOldServing
        ? `; no old pod serves any more (the old ReplicaSet is at 0), so no gate was closed: ${names(kept)} keep serving`
        : `; kept ${names(kept)} Ready so serving pods stay at or above the floor ${f} (${input.floor.why})`
      : "") +
    `; serving pods now ${serving} of ${input.deployment.replicas} (the Deployment controller does not bring old pods back). ` +
    (input.rollout?.onFailure === "Rollback"
      ? input.enforcing
        ? `onFailure is Rollback: restoring stable revision ${state.stableRevision}'s template as kubectl rollout undo does`
        : `onFailure is Rollback, which in Audit acts as Hold (Audit never changes a Deployment's spec): a human ` +
          `decides: roll back (kubectl rollout undo deployment/${input.deployment.name}), fix the revision, or re-run ` +
          `its checks (healthgate rollout retry ${input.deployment.name})`
      : `onFailure is Hold: the revision stays aborted and a human decides: roll back (kubectl rollout undo ` +
        `deployment/${input.deployment.name}, or onFailure: Rollback in Enforce), fix the revision, or re-run its ` +
        `checks (healthgate rollout retry ${input.deployment.name})`);
  const rollback: RollbackState | undefined =
    input.rollout?.onFailure === "Rollback" && input.enforcing && state.revision && state.stableRevision
      ? {
          phase: "Pending",
          failedRevision: state.revision,
          toRevision: state.stableRevision,
          abortReason: what.reason,
        }
      : undefined;
  const next: RolloutState = {
    ...state,
    phase: "Aborted",
    reason: what.reason,
    message: message.slice(0, 2048),
    dropped: dropped.map((p) => p.name),
    kept: kept.map((p) => p.name),
    ...(rollback ? { rollback } : {}),
  };
  const close = dropped
    .filter((p) => p.gate === "True" || p.gated)
    .map((p): GateDecision => ({
      pod: p.name,
      uid: p.uid,
      status: "False",
      reason: RolloutReason.RolloutAborted,
      message: `rollout of revision ${state.revision} aborted: ${what.reason}`,
    }));
  return finish(next, [...gates, ...close], {
    events: [
      { regarding: "Deployment", type: "Warning", reason: what.reason, message: next.message as string },
    ],
    probe: { new: [], stable: [] },
    // The restore is the next reconcile's: its release first pins the stable revision's decision.
    ...(rollback ? { requeueAfterSeconds: 0.2 } : {}),
  });
}
