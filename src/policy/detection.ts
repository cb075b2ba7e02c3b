import type { Container, PodSpec, Probe } from "../api/k8s.ts";
import type { DetectionFigures, HealthPolicySpec } from "../api/v1alpha1/index.ts";
import { podGraceSeconds, probeTiming, type ProbeTiming } from "./probes/defaults.ts";

// Worst-case detection figures (DESIGN.md, "Detection figures"). A probe that
// starts failing right after a success is noticed after failureThreshold
// periods, the last of which may take the whole timeout:
//   eject   = readiness period × failureThreshold + timeout
//   readmit = readiness period × successThreshold
//   restart = liveness period × failureThreshold + timeout + the grace a
//             liveness kill gets (the probe's terminationGracePeriodSeconds,
//             else the pod's; preStop runs inside it)

export function ejectSeconds(readiness: ProbeTiming): number {
  return readiness.periodSeconds * readiness.failureThreshold + readiness.timeoutSeconds;
}

export function readmitSeconds(readiness: ProbeTiming): number {
  return readiness.periodSeconds * readiness.successThreshold;
}

export function restartSeconds(liveness: ProbeTiming, killGraceSeconds: number): number {
  return liveness.periodSeconds * liveness.failureThreshold + liveness.timeoutSeconds + killGraceSeconds;
}

/** The grace period a liveness kill gets: the probe's own when set, else the pod's (default 30). */
export function livenessKillGraceSeconds(liveness: Probe, podSpec: PodSpec): number {
  return liveness.terminationGracePeriodSeconds ?? podGraceSeconds(podSpec);
}

/** Detection figures of one container as its probes are written (Kubernetes' defaults for absent fields). */
export function detectionFigures(container: Container, podSpec: PodSpec): DetectionFigures {
  const figures: DetectionFigures = { container: container.name };
  if (container.readinessProbe) {
    const readiness = probeTiming(container.readinessProbe);
    figures.ejectSeconds = ejectSeconds(readiness);
    figures.readmitSeconds = readmitSeconds(readiness);
  }
  if (container.livenessProbe) {
    const liveness = probeTiming(container.livenessProbe);
    figures.restartSeconds = restartSeconds(
      liveness,
      livenessKillGraceSeconds(container.livenessProbe, podSpec),
    );
  }
  return figures;
}

export type Objectives = NonNullable<NonNullable<HealthPolicySpec["timing"]>["objectives"]>;
export type ObjectiveName = keyof Objectives;

export interface ObjectiveMiss {
  objective: ObjectiveName;
  figure: "ejectSeconds" | "readmitSeconds" | "restartSeconds";
  limitSeconds: number;
  actualSeconds: number;
}

const OBJECTIVE_FIGURE = {
  maxEjectSeconds: "ejectSeconds",
  maxReadmitSeconds: "readmitSeconds",
  maxRestartSeconds: "restartSeconds",
} as const satisfies Record<ObjectiveName, ObjectiveMiss["figure"]>;

/** The objectives a container's figures miss. A figure that is absent (no such probe) misses nothing here. */
export function objectiveMisses(
  figures: DetectionFigures,
  objectives: Objectives | undefined,
): ObjectiveMiss[] {
  const misses: ObjectiveMiss[] = [];
  for (const objective of Object.keys(OBJECTIVE_FIGURE) as ObjectiveName[]) {
    const limitSeconds = objectives?.[objective];
    const figure = OBJECTIVE_FIGURE[objective];
    const actualSeconds = figures[figure];
    if (limitSeconds !== undefined && actualSeconds !== undefined && actualSeconds > limitSeconds) {
      misses.push({ objective, figure, limitSeconds, actualSeconds });
    }
  }
  return misses;
}

// ---------------------------------------------------------------------------
// Timing derived from a policy.
//
// With objectives alone the knobs are fixed at the values the literature
// recommends — failureThreshold 3 (slow to eject), timeout 1 s, readiness
// successThreshold 2 (slower to readmit) — and the period is the LONGEST one
// that still meets every objective on that probe, because a longer period is
// fewer probe requests and less sensitivity to a single slow response:
//   readiness period = min(floor((maxEject − timeout) / failureThreshold),
//                          floor(maxReadmit / successThreshold))
//   liveness  period = floor((maxRestart − timeout − killGrace) / failureThreshold)
// The period never goes below timeout + 1 (a probe must finish before the next
// one is due) nor above MAX_PERIOD_SECONDS; when even the shortest period
// misses an objective the miss is reported (objectiveMisses), not hidden.
// Without an objective a probe gets DEFAULT_PERIOD_SECONDS. Explicit timing in
// the policy wins field by field over the derived values.

export const DERIVED_FAILURE_THRESHOLD = 3;
export const DERIVED_TIMEOUT_SECONDS = 1;
export const DERIVED_READINESS_SUCCESS_THRESHOLD = 2;
export const DEFAULT_PERIOD_SECONDS = { liveness: 10, readiness: 5, startup: 5 } as const;
export const MAX_PERIOD_SECONDS = 3600;

export interface LivenessTiming extends ProbeTiming {
  /** Probe-level grace for a liveness kill, when the policy sets one. */
  terminationGracePeriodSeconds?: number;
}

export interface PolicyTiming {
  readiness: ProbeTiming;
  liveness: LivenessTiming;
  /** Without failureThreshold: that comes from maxStartupSeconds (see desired.ts). */
  startup: Omit<ProbeTiming, "failureThreshold"> & { failureThreshold?: number };
}

const clampPeriod = (period: number, timeoutSeconds: number) =>
  Math.min(MAX_PERIOD_SECONDS, Math.max(timeoutSeconds + 1, Math.floor(period)));

/** The longest readiness period meeting maxEjectSeconds and maxReadmitSeconds (undefined without either). */
export function readinessPeriodForObjectives(
  objectives: Objectives | undefined,
  knobs: { timeoutSeconds: number; failureThreshold: number; successThreshold: number },
): number | undefined {
  const bounds: number[] = [];
  if (objectives?.maxEjectSeconds !== undefined) {
    bounds.push((objectives.maxEjectSeconds - knobs.timeoutSeconds) / knobs.failureThreshold);
  }
  if (objectives?.maxReadmitSeconds !== undefined)
    bounds.push(objectives.maxReadmitSeconds / knobs.successThreshold);
  return bounds.length === 0 ? undefined : clampPeriod(Math.min(...bounds), knobs.timeoutSeconds);
}

/** The longest liveness period meeting maxRestartSeconds (undefined without it). */
export function livenessPeriodForObjectives(
  objectives: Objectives | undefined,
  knobs: { timeoutSeconds: number; failureThreshold: number; killGraceSeconds: number },
): number | undefined {
  if (objectives?.maxRestartSeconds === undefined) return undefined;
  const period =
    (objectives.maxRestartSeconds - knobs.timeoutSeconds - knobs.killGraceSeconds) / knobs.failureThreshold;
  return clampPeriod(period, knobs.timeoutSeconds);
}

/**
 * The timing a policy asks for. `podGraceSeconds` is the pod's grace period
 * as it will be (healthgate sets it in Enforce), used when the liveness timing
 * sets no probe-level grace.
 */
export function policyTiming(policy: HealthPolicySpec, podGraceSeconds: number): PolicyTiming {
  const explicit = policy.timing ?? {};
  const objectives = explicit.objectives;

  const readinessKnobs = {
    timeoutSeconds: explicit.readiness?.timeoutSeconds ?? DERIVED_TIMEOUT_SECONDS,
    failureThreshold: explicit.readiness?.failureThreshold ?? DERIVED_FAILURE_THRESHOLD,
    successThreshold: explicit.readiness?.successThreshold ?? DERIVED_READINESS_SUCCESS_THRESHOLD,
  };
  const readiness: ProbeTiming = {
    ...readinessKnobs,
    periodSeconds:
      explicit.readiness?.periodSeconds ??
      readinessPeriodForObjectives(objectives, readinessKnobs) ??
      Math.max(DEFAULT_PERIOD_SECONDS.readiness, readinessKnobs.timeoutSeconds + 1),
    initialDelaySeconds: explicit.readiness?.initialDelaySeconds ?? 0,
  };

  const livenessGrace = explicit.liveness?.terminationGracePeriodSeconds;
  const livenessKnobs = {
    timeoutSeconds: explicit.liveness?.timeoutSeconds ?? DERIVED_TIMEOUT_SECONDS,
    failureThreshold: explicit.liveness?.failureThreshold ?? DERIVED_FAILURE_THRESHOLD,
    killGraceSeconds: livenessGrace ?? podGraceSeconds,
  };
  const liveness: LivenessTiming = {
    timeoutSeconds: livenessKnobs.timeoutSeconds,
    failureThreshold: livenessKnobs.failureThreshold,
    successThreshold: 1,
    periodSeconds:
      explicit.liveness?.periodSeconds ??
      livenessPeriodForObjectives(objectives, livenessKnobs) ??
      Math.max(DEFAULT_PERIOD_SECONDS.liveness, livenessKnobs.timeoutSeconds + 1),
    initialDelaySeconds: explicit.liveness?.initialDelaySeconds ?? 0,
    ...(livenessGrace !== undefined ? { terminationGracePeriodSeconds: livenessGrace } : {}),
  };

  const startupTimeout = explicit.startup?.timeoutSeconds ?? DERIVED_TIMEOUT_SECONDS;
  const startup: PolicyTiming["startup"] = {
    timeoutSeconds: startupTimeout,
    successThreshold: 1,
    periodSeconds:
      explicit.startup?.periodSeconds ?? Math.max(DEFAULT_PERIOD_SECONDS.startup, startupTimeout + 1),
    initialDelaySeconds: explicit.startup?.initialDelaySeconds ?? 0,
    ...(explicit.startup?.failureThreshold !== undefined
      ? { failureThreshold: explicit.startup.failureThreshold }
      : {}),
  };
  return { readiness, liveness, startup };
}
