// Human control of a gated rollout (issue 24): promote, abort, retry. A command is an annotation
// on the Deployment's HealthTarget record — plain `kubectl annotate` writes it, ordinary RBAC on
// `patch healthtargets` grants it, and it never touches the released decision (the record's
// status, which only healthgate writes). The command names the revision it is for (and, for
// promote, the step), so a command left over from an earlier revision never acts on a later one.
// Pure: the controller reads the annotation, feeds it here with the record's state, writes the
// resulting state, then removes the annotation.
import type { RolloutState } from "../../api/v1alpha1/healthtarget.ts";

/** The annotation on the HealthTarget record that carries a command. */
export const ROLLOUT_COMMAND_ANNOTATION = "healthgate.io/rollout-command";

export const ROLLOUT_VERBS = ["promote", "abort", "retry"] as const;
export type RolloutVerb = (typeof ROLLOUT_VERBS)[number];

export interface RolloutCommand {
  verb: RolloutVerb;
  /** pod-template-hash of the revision the command is for. */
  revision: string;
  /** promote only: the step (1-based, as `healthgate rollout status` shows it) whose bake to skip. */
  step?: number;
}

const USAGE = "expected promote/<revision>/<step>, abort/<revision> or retry/<revision>";

/** `promote/<revision>/<step>`, `abort/<revision>`, `retry/<revision>`. */
export function formatCommand(command: RolloutCommand): string {
  return [command.verb, command.revision, ...(command.step !== undefined ? [String(command.step)] : [])].join(
    "/",
  );
}

export function parseCommand(value: string): RolloutCommand | { error: string } {
  const [verb, revision, step, ...rest] = value.trim().split("/");
  if (!ROLLOUT_VERBS.includes(verb as RolloutVerb))
    return { error: `unknown command ${JSON.stringify(verb)}: ${USAGE}` };
  if (!revision || !/^[a-z0-9]{1,64}$/.test(revision) || rest.length > 0)
    return { error: `${JSON.stringify(value)} names no revision (a pod-template-hash): ${USAGE}` };
  if (verb !== "promote") {
    if (step !== undefined) return { error: `${verb} takes no step: ${USAGE}` };
    return { verb: verb as RolloutVerb, revision };
  }
  if (step === undefined || !/^[1-9][0-9]?$/.test(step))
    return { error: `promote names the step whose bake it skips (1, 2, ...): ${USAGE}` };
  return { verb: "promote", revision, step: Number(step) };
}

export interface CommandOutcome {
  /** The state to decide the rollout from (with lastCommand recording the effect). */
  state: RolloutState | undefined;
  /** abort: the message the rollout is aborted with (the gating decision closes the gates). */
  abort?: string;
  /** The Event about the Deployment; none for a command already applied (seen again). */
  event?: { type: "Normal" | "Warning"; reason: string; message: string };
}

export const CommandReason = {
  Promoted: "RolloutPromoted",
  Retried: "RolloutRetried",
  AbortRequested: "AbortRequested",
  Rejected: "RolloutCommandRejected",
} as const;

const GATED_ACTIVE = new Set(["Progressing", "Baking"]);

/**
 * What `value` (the annotation) does to the rollout in `state`. A command that cannot apply is
 * rejected with a reason that says what to do — unless it is the command last applied, seen again
 * (the annotation not removed yet, or a successor operator re-reading it): then nothing happens.
 */
export function applyCommand(
  state: RolloutState | undefined,
  value: string,
  now: number,
  deployment: string,
): CommandOutcome {
  const at = new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
  const parsed = parseCommand(value);
  const record = (result: "Applied" | "Rejected", message: string): RolloutState | undefined =>
    state ? { ...state, lastCommand: { value: value.slice(0, 128), result, at, message } } : state;
  const reject = (why: string): CommandOutcome => {
    if (state?.lastCommand?.value === value) return { state };
    const message = `${ROLLOUT_COMMAND_ANNOTATION}=${value} on Deployment ${deployment} ignored: ${why}`;
    return {
      state: record("Rejected", message.slice(0, 1024)),
      event: { type: "Warning", reason: CommandReason.Rejected, message },
    };
  };
  if ("error" in parsed) return reject(parsed.error);
  const current = state?.revision;
  if (!state || !current || state.stableRevision === undefined)
    return reject("no gated rollout is under way (the Deployment's first revision is not gated)");
  if (parsed.revision !== current)
    return reject(
      `it is for revision ${parsed.revision} but the rollout is at revision ${current}` +
        ` (a command never acts on another revision)`,
    );
  if (current === state.stableRevision && state.phase === "Completed")
    return reject(`revision ${current} has completed and is stable`);
  const step = (state.step ?? 0) + 1;

  switch (parsed.verb) {
    case "promote": {
      if (state.phase === "Aborted")
        return reject(`the rollout of revision ${current} is aborted: retry/${current} re-runs its checks`);
      if (!GATED_ACTIVE.has(state.phase))
        return reject(
          `the rollout holds (${state.reason ?? state.phase}): promote skips a bake, not a hold — fix the cause or abort`,
        );
      if (parsed.step !== step)
        return reject(`it is for step ${parsed.step} but the rollout is at step ${step}`);
      const message = `step ${step}'s remaining ${state.phase === "Baking" ? "bake is" : "wait is"} skipped: the next step admits new pods as their deep checks pass`;
      return {
        state: { ...record("Applied", message)!, promotedStep: state.step ?? 0 },
        event: { type: "Normal", reason: CommandReason.Promoted, message: `revision ${current}: ${message}` },
      };
    }
    case "abort": {
      if (state.phase === "Aborted") return reject(`the rollout of revision ${current} is already aborted`);
      const message = `aborted by a human (${ROLLOUT_COMMAND_ANNOTATION}=${value})`;
      // The abort's own Event (AbortRequested, with the gates it closed) is the gating decision's.
      return { state: record("Applied", message), abort: message };
    }
    case "retry": {
      if (state.phase !== "Aborted")
        return reject(`retry re-runs an aborted rollout's checks; revision ${current} is ${state.phase}`);
      const {
        dropped: _dropped,
        kept,
        failures: _failures,
        bakeStartedAt: _bake,
        promotedStep: _promoted,
        rollback,
        ...rest
      } = state;
      if (rollback?.phase === "RolledBack") {
        // The Deployment runs the stable revision again: retry ends the rollback's hold on releases.
        const message =
          `the rollback of revision ${current} to stable revision ${rollback.toRevision} is over: healthgate ` +
          `releases again (a newer Enforce decision makes a new revision, gated afresh); to roll revision ` +
          `${current}'s template out again, apply it again`;
        const {
          step: _step,
          weight: _weight,
          budget: _budget,
          admitted: _admitted,
          startedAt: _started,
          retriedAt: _retried,
          ...kept
        } = rest;
        return {
          state: {
            ...kept,
            phase: "Completed",
            revision: rollback.toRevision,
            stableRevision: rollback.toRevision,
            reason: CommandReason.Retried,
            message: `revision ${current}: ${message}`,
            lastCommand: { value: value.slice(0, 128), result: "Applied", at, message },
          },
          event: {
            type: "Normal",
            reason: CommandReason.Retried,
            message: `revision ${current}: ${message}`,
          },
        };
      }
      const message =
        `the rollout of revision ${current} starts again at step 1: its new pods are deep-checked afresh ` +
        `(newPodDeadline counts from now); the pods the abort kept Ready stay admitted`;
      return {
        state: {
          ...rest,
          phase: "Progressing",
          step: 0,
          admitted: kept ?? [],
          retriedAt: at,
          reason: CommandReason.Retried,
          message: `revision ${current}: ${message}`,
          lastCommand: { value: value.slice(0, 128), result: "Applied", at, message },
        },
        event: { type: "Normal", reason: CommandReason.Retried, message: `revision ${current}: ${message}` },
      };
    }
  }
}
