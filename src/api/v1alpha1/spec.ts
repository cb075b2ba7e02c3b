import { z } from "zod";
import {
  containerName,
  duration,
  durationSeconds,
  httpPath,
  int32,
  intOrStringPort,
  labelSelector,
  objectName,
  ownEndpointPath,
  uniqueItems,
  withRules,
} from "./common.ts";

// HealthPolicy.spec. Descriptions are user documentation: they surface in
// `kubectl explain hpol.spec...` and in the generated CRD. Rule messages are
// what a user reads when the API server (or parseHealthPolicy) refuses a
// policy: they name the fields and say what to change.

type ProbeKind = "liveness" | "readiness" | "startup";

const probeEndpointShape = (what: ProbeKind) => ({
  path: httpPath()
    .optional()
    .describe(`HTTP GET path of the ${what} endpoint, e.g. /healthz. Set exactly one of path, grpc or tcp.`),
  scheme: z
    .enum(["HTTP", "HTTPS"])
    .optional()
    .describe("Scheme for an HTTP endpoint (path): HTTP (default) or HTTPS."),
  grpc: z
    .object({
      service: z
        .string()
        .max(256)
        .optional()
        .describe(
          'Service name sent in the gRPC health check request; "" (default) asks for the server as a whole.',
        ),
    })
    .optional()
    .describe(`Use the gRPC health checking protocol (grpc.health.v1) for the ${what} probe.`),
  tcp: z
    .object({})
    .optional()
    .describe(
      `Use a TCP connect for the ${what} probe, e.g. tcp: {}. Proves only that the port accepts connections.`,
    ),
  port: intOrStringPort()
    .optional()
    .describe("Container port for this probe, by name or number. Default: spec.endpoints.port."),
});

interface EndpointKinds {
  path?: string | undefined;
  grpc?: unknown;
  tcp?: unknown;
  scheme?: string | undefined;
}

const endpointRules = (what: ProbeKind) =>
  [
    {
      rule: "(has(self.path) ? 1 : 0) + (has(self.grpc) ? 1 : 0) + (has(self.tcp) ? 1 : 0) == 1",
      message: `set exactly one of path, grpc or tcp for the ${what} endpoint, e.g. path: /healthz`,
      holds: (e: EndpointKinds) => [e.path, e.grpc, e.tcp].filter((k) => k !== undefined).length === 1,
    },
    {
      rule: "!has(self.scheme) || has(self.path)",
      message: "scheme applies only to an HTTP endpoint (path); remove scheme or use path",
      fieldPath: ".scheme",
      holds: (e: EndpointKinds) => e.scheme === undefined || e.path !== undefined,
    },
  ] as const;

const probeEndpoint = (what: Exclude<ProbeKind, "startup">) =>
  withRules(z.object(probeEndpointShape(what)), ...endpointRules(what));

const startupEndpoint = withRules(
  z.object({
    ...probeEndpointShape("startup"),
    maxStartupSeconds: int32(1, 3600)
      .default(60)
      .describe(
        "Longest expected boot, in seconds. The startup probe allows at least this long (periodSeconds × failureThreshold) before liveness takes over.",
      ),
  }),
  ...endpointRules("startup"),
);

interface TimingKnobs {
  periodSeconds?: number | undefined;
  timeoutSeconds?: number | undefined;
  successThreshold?: number | undefined;
}

const probeTimingShape = (what: ProbeKind) => ({
  periodSeconds: int32(1, 3600)
    .optional()
    .describe(`How often, in seconds, the kubelet runs the ${what} probe (the interval).`),
  timeoutSeconds: int32(1, 3600)
    .optional()
    .describe(`Seconds after which one ${what} probe attempt counts as failed. Must be below periodSeconds.`),
  failureThreshold: int32(1, 1000)
    .optional()
    .describe(
      `Consecutive failures before the kubelet acts (the unhealthy threshold).` +
        (what === "startup"
          ? " Default: derived from spec.endpoints.startup.maxStartupSeconds."
          : " 3 or more is recommended: be slow to eject."),
    ),
  successThreshold: int32(1, 100)
    .optional()
    .describe(
      what === "readiness"
        ? "Consecutive successes before an unready pod is readmitted (the healthy threshold). 2 or more adds hysteresis."
        : `Must be 1: Kubernetes requires successThreshold 1 for ${what} probes.`,
    ),
  initialDelaySeconds: int32(0, 3600)
    .optional()
    .describe(
      what === "liveness"
        ? "Seconds before the first liveness probe. Prefer a startup probe (spec.endpoints.startup) for slow boots."
        : `Seconds before the first ${what} probe.`,
    ),
});

const timeoutBelowPeriod = (what: ProbeKind) => ({
  rule: "!has(self.timeoutSeconds) || !has(self.periodSeconds) || self.timeoutSeconds < self.periodSeconds",
  message: `${what} timeoutSeconds must be below periodSeconds, or probes overlap; lower timeoutSeconds or raise periodSeconds`,
  fieldPath: ".timeoutSeconds",
  holds: (t: TimingKnobs) =>
    t.timeoutSeconds === undefined || t.periodSeconds === undefined || t.timeoutSeconds < t.periodSeconds,
});

const successThresholdOne = (what: ProbeKind) => ({
  rule: "!has(self.successThreshold) || self.successThreshold == 1",
  message: `${what} successThreshold must be 1 (Kubernetes requires it for ${what} probes); remove the field or set 1`,
  fieldPath: ".successThreshold",
  holds: (t: TimingKnobs) => t.successThreshold === undefined || t.successThreshold === 1,
});

const livenessTiming = withRules(
  z.object({
    ...probeTimingShape("liveness"),
    terminationGracePeriodSeconds: int32(1, 3600)
      .optional()
      .describe(
        "Grace period, in seconds, a liveness kill gets (the probe-level terminationGracePeriodSeconds); default: the pod's. Bounds the restart time.",
      ),
  }),
  timeoutBelowPeriod("liveness"),
  successThresholdOne("liveness"),
);
const readinessTiming = withRules(z.object(probeTimingShape("readiness")), timeoutBelowPeriod("readiness"));
const startupTiming = withRules(
  z.object(probeTimingShape("startup")),
  timeoutBelowPeriod("startup"),
  successThresholdOne("startup"),
);

/** A rule for a probe endpoint's path against the declared deep paths. */
const notDeep = (what: ProbeKind, why: string) => ({
  rule: `!has(self.deep) || !has(self.${what}) || !has(self.${what}.path) || !(self.${what}.path in self.deep.paths)`,
  message: `${what}.path is listed in deep.paths: ${why}`,
  fieldPath: `.${what}.path`,
  holds: (
    e: { deep?: { paths: string[] } | undefined } & Partial<
      Record<ProbeKind, { path?: string | undefined } | undefined>
    >,
  ) => {
    const path = e[what]?.path;
    return path === undefined || !(e.deep?.paths ?? []).includes(path);
  },
});

export const endpointsSpec = withRules(
  z.object({
    port: intOrStringPort()
      .optional()
      .describe(
        "Container port the probes use, by name (e.g. http) or number. Default: the container's first declared port, " +
          "else the numeric port its own probes use.",
      ),
    liveness: probeEndpoint("liveness")
      .optional()
      .describe("Liveness endpoint. Must be shallow: it reports this process only, never its dependencies."),
    readiness: probeEndpoint("readiness")
      .optional()
      .describe("Readiness endpoint. May reflect own state (started, pools warm), not shared dependencies."),
    startup: startupEndpoint
      .optional()
      .describe("Startup endpoint, protecting slow boots from liveness kills."),
    deep: z
      .object({
        paths: uniqueItems(z.array(httpPath()).min(1).max(16), "deep path").describe(
          "Paths that check dependencies (database, cache, downstreams). Never used as probes; used out-of-band and to recognise deep liveness.",
        ),
      })
      .optional()
      .describe("Deep (dependency) endpoints. healthgate flags any liveness probe that reaches one."),
  }),
  notDeep("liveness", "liveness must be shallow; point liveness at a shallow endpoint such as /healthz"),
  notDeep(
    "readiness",
    "deep checks must not steer traffic; point readiness at a shallow endpoint such as /readyz",
  ),
  notDeep(
    "startup",
    "a startup probe must not depend on shared dependencies; point it at a shallow endpoint",
  ),
).describe(
  "Where the health endpoints are. Probes are generated from these in Enforce mode and audited against them. " +
    "Optional, and so is each endpoint: without one, Audit judges each governed container's own probes by the " +
    "defaults, and Enforce keeps each container's own (shallow) handler while setting what the policy does say " +
    "(timing derived from objectives, drain, grace), so one policy can cover every Deployment of a namespace.",
);

export const timingSpec = z
  .object({
    liveness: livenessTiming
      .optional()
      .describe("Explicit liveness timing; wins over objectives and is checked against them."),
    readiness: readinessTiming
      .optional()
      .describe("Explicit readiness timing; wins over objectives and is checked against them."),
    startup: startupTiming
      .optional()
      .describe("Explicit startup timing; must allow endpoints.startup.maxStartupSeconds."),
    objectives: z
      .object({
        maxEjectSeconds: int32(2, 3600)
          .optional()
          .describe(
            "Worst-case seconds to remove a failing pod from endpoints (readiness period × failureThreshold + timeout).",
          ),
        maxReadmitSeconds: int32(1, 3600)
          .optional()
          .describe("Worst-case seconds to readmit a recovered pod (readiness period × successThreshold)."),
        maxRestartSeconds: int32(2, 7200)
          .optional()
          .describe(
            "Worst-case seconds to restart a hung container (liveness period × failureThreshold + timeout + termination grace).",
          ),
      })
      .optional()
      .describe(
        "Detection objectives. With objectives alone, timing is derived: failureThreshold 3, timeout 1 s, readiness " +
          "successThreshold 2, and the longest period that meets each objective. Explicit timing is reported when it misses one.",
      ),
  })
  .describe(
    "Probe timing (the four knobs: period, timeout, failure and success thresholds) and detection objectives.",
  );

export const shutdownSpec = z
  .object({
    drainSeconds: int32(0, 600)
      .default(5)
      .describe(
        "preStop sleep, in seconds, so endpoint removal propagates before SIGTERM. 0 disables the drain (not recommended).",
      ),
    maxInFlightSeconds: int32(0, 3600)
      .default(20)
      .describe(
        "Longest in-flight request or job after SIGTERM, in seconds. The grace period must cover drain + in-flight.",
      ),
  })
  .describe("Graceful shutdown: terminationGracePeriodSeconds ≥ drainSeconds + maxInFlightSeconds.");

export const headroomSpec = withRules(
  z.object({
    tolerate: int32(1, 100)
      .default(1)
      .describe("k in N−k: how many replicas (or, with zones, the largest zone) may be lost at peak."),
    ceilingPercent: int32(1, 100)
      .default(90)
      .describe("Highest utilization, in percent of requests, a survivor may run at after the loss."),
    source: z
      .enum(["Static", "HPA", "Metrics"])
      .default("HPA")
      .describe(
        "Where peak utilization comes from: Static (peakUtilizationPercent), HPA (the autoscaling/v2 HPA targeting the " +
          "Deployment: its CPU target and minReplicas), Metrics (metrics.k8s.io usage ÷ requests, peak over window).",
      ),
    peakUtilizationPercent: int32(1, 1000)
      .optional()
      .describe("Peak utilization per replica in percent of requests; required with source Static."),
    peakReplicas: int32(1, 100000)
      .optional()
      .describe(
        "Replica count at which peakUtilizationPercent was observed. The total peak load (peak × peakReplicas) " +
          "stays fixed as replicas change, so scaling out lowers each replica's share. Only with source Static. " +
          "Default: the Deployment's current replicas.",
      ),
    window: duration()
      .optional()
      .describe(
        "How far back the Metrics source looks for the peak, e.g. 1h. Only with source Metrics. Default 1h.",
      ),
    zones: z
      .boolean()
      .default(true)
      .describe(
        "Also evaluate losing the zone (node label topology.kubernetes.io/zone) that holds the most pods.",
      ),
    managePodDisruptionBudget: z
      .boolean()
      .default(false)
      .describe(
        "Create and own a PodDisruptionBudget (maxUnavailable: tolerate, unhealthyPodEvictionPolicy: AlwaysAllow), " +
          "unless the user already has one covering the pods (reported instead).",
      ),
  }),
  {
    rule: "self.source != 'Static' || has(self.peakUtilizationPercent)",
    message: "source Static needs peakUtilizationPercent (e.g. 70); set it, or use source HPA or Metrics",
    fieldPath: ".peakUtilizationPercent",
    reason: "FieldValueRequired",
    holds: (h) => h.source !== "Static" || h.peakUtilizationPercent !== undefined,
  },
  {
    rule: "self.source == 'Static' || !has(self.peakUtilizationPercent)",
    message: "peakUtilizationPercent applies only to source Static; remove it or set source: Static",
    fieldPath: ".peakUtilizationPercent",
    reason: "FieldValueForbidden",
    holds: (h) => h.source === "Static" || h.peakUtilizationPercent === undefined,
  },
  {
    rule: "self.source == 'Static' || !has(self.peakReplicas)",
    message: "peakReplicas applies only to source Static; remove it or set source: Static",
    fieldPath: ".peakReplicas",
    reason: "FieldValueForbidden",
    holds: (h) => h.source === "Static" || h.peakReplicas === undefined,
  },
  {
    rule: "self.source == 'Metrics' || !has(self.window)",
    message: "window applies only to source Metrics; remove it or set source: Metrics",
    fieldPath: ".window",
    reason: "FieldValueForbidden",
    holds: (h) => h.source === "Metrics" || h.window === undefined,
  },
).describe(
  "N−k headroom: can the survivors carry peak load after losing tolerate replicas, and during a rollout?",
);

const rolloutStep = z.object({
  weight: int32(1, 100).describe(
    "Percent of desired replicas of the new revision admitted by the end of this step.",
  ),
  bake: duration()
    .optional()
    .describe(
      "How long to hold at this step while deep checks keep passing, e.g. 2m. Usually omitted on the last step.",
    ),
});

const deepCheckSpec = withRules(
  z.object({
    path: ownEndpointPath().describe(
      "Deep endpoint checked out-of-band on each new pod (and a sample of stable pods), e.g. /health/deep. " +
        "healthgate requests it from the pod's own IP only.",
    ),
    scheme: z
      .enum(["HTTP", "HTTPS"])
      .default("HTTP")
      .describe("HTTP or HTTPS. HTTPS does not verify the certificate, as the kubelet's probes do not."),
    port: intOrStringPort()
      .optional()
      .describe("Container port, by name or number. Default: spec.endpoints.port."),
    intervalSeconds: int32(1, 300).default(5).describe("Seconds between deep checks of one pod."),
    timeoutSeconds: int32(1, 60)
      .default(2)
      .describe("Seconds before one deep check counts as failed. Must be below intervalSeconds."),
    successThreshold: int32(1, 100).default(3).describe("Consecutive passes before a new pod is admitted."),
    failureLimit: int32(1, 100)
      .default(3)
      .describe("Failures of the new revision (while stable pods pass) that abort the rollout."),
    stableSample: int32(0, 10)
      .default(2)
      .describe("Stable pods checked too, so a shared-dependency outage is not blamed on the new revision."),
    expect: z
      .object({
        statuses: uniqueItems(z.array(int32(100, 599)).min(1).max(16), "status")
          .default([200])
          .describe("HTTP statuses that count as a pass."),
        bodyContains: z
          .string()
          .min(1)
          .max(256)
          .optional()
          .describe("Text the response body (first 64 KiB) must contain to pass."),
      })
      .default({ statuses: [200] })
      .describe("What a passing deep check looks like."),
    background: z
      .object({
        intervalSeconds: int32(2, 3600)
          .default(60)
          .describe("Seconds between two background deep checks of one sampled pod. From 2 to 3600."),
        sample: int32(2, 10)
          .default(2)
          .describe(
            "Stable pods checked in the background (the oldest running ones). At least two: a dependency outage " +
              "fails them together, while one pod failing alone is a sick pod that liveness rightly restarts.",
          ),
        failureThreshold: int32(1, 10)
          .default(2)
          .describe("Consecutive failed background checks before a pod's deep check counts as failing."),
      })
      .optional()
      .describe(
        "Opt-in (off when absent): a low-rate background deep check of a sample of stable pods, outside " +
          "rollouts. When it fails on two or more sampled pods together (a dependency is down), healthgate reads " +
          "whether those pods' liveness kept passing (the kubelet's 'Liveness probe failed' Events, container " +
          "restarts): liveness failing with it and restarting them is reported as LivenessShallow=False, reason " +
          "DeepInPractice.",
      ),
  }),
  {
    rule: "!has(self.background) || self.background.intervalSeconds > self.timeoutSeconds",
    message:
      "deepCheck background.intervalSeconds must be above timeoutSeconds; raise background.intervalSeconds or lower timeoutSeconds",
    fieldPath: ".background.intervalSeconds",
    holds: (d) => d.background === undefined || d.background.intervalSeconds > d.timeoutSeconds,
  },
  {
    rule: "self.timeoutSeconds < self.intervalSeconds",
    message:
      "deepCheck timeoutSeconds must be below intervalSeconds; lower timeoutSeconds or raise intervalSeconds",
    fieldPath: ".timeoutSeconds",
    holds: (d) => d.timeoutSeconds < d.intervalSeconds,
  },
);

export const rolloutSpec = withRules(
  z.object({
    steps: withRules(
      z.array(rolloutStep).min(1).max(10),
      {
        rule: "self[size(self) - 1].weight == 100",
        message:
          "the last step's weight must be 100 so the rollout can complete; add a final step {weight: 100}",
        holds: (steps) => steps.length === 0 || steps[steps.length - 1]?.weight === 100,
      },
      {
        rule: "self.all(s, self.filter(t, t.weight == s.weight).size() == 1) && self.map(s, s.weight).isSorted()",
        message: "step weights must be strictly increasing, e.g. 10, 50, 100",
        holds: (steps) => steps.every((s, i) => i === 0 || (steps[i - 1]?.weight ?? 0) < s.weight),
      },
    ).describe(
      "Steps of a gated rollout: new pods become Ready only up to each step's weight, then bake. The last step's weight is 100.",
    ),
    deepCheck: deepCheckSpec.describe(
      "The out-of-band deep check that judges the new revision against the stable one.",
    ),
    newPodDeadline: duration()
      .default("10m")
      .describe(
        "How long a new pod may take from creation to admission (its gate True) before it counts against the " +
          "revision and the rollout aborts. Readiness flapping never resets it; a pod waiting only for the step's " +
          "budget or a hold does not count. Crash-looping and failing image pulls abort at once. From 30s to 24h.",
      ),
    onFailure: z
      .enum(["Hold", "Rollback"])
      .default("Hold")
      .describe(
        "Hold: stop admitting and un-ready admitted canary pods. Rollback: also restore the previous template.",
      ),
  }),
  {
    rule:
      "!has(self.newPodDeadline) || (duration(self.newPodDeadline) >= duration('30s') && " +
      "duration(self.newPodDeadline) <= duration('24h'))",
    message: "newPodDeadline must be between 30s and 24h, e.g. 10m",
    fieldPath: ".newPodDeadline",
    holds: (r) => {
      const seconds = durationSeconds(r.newPodDeadline);
      return seconds !== undefined && seconds >= 30 && seconds <= 86400;
    },
  },
).describe(
  "Progressive rollout gated on out-of-band deep checks (per-pod readiness gate healthgate.io/deep-check).",
);

const PANIC_MAX_HOLD_SECONDS = 3600;

/** Panic mode (docs/panic.md): Envoy's panic threshold for a Kubernetes Service. */
export const panicSpec = withRules(
  z.object({
    floorPercent: int32(1, 99)
      .default(50)
      .describe(
        "Panic below this percentage of the Deployment's serving pods Ready: the Services that select only its " +
          "pods then publish every pod (publishNotReadyAddresses: true), so traffic spreads over all of them " +
          "instead of overloading the few survivors.",
      ),
    hold: duration()
      .default("2m")
      .describe(
        "How long the Ready percentage must stay at or above floorPercent before panic ends and the Services' " +
          "original publishNotReadyAddresses comes back, e.g. 2m. At most 1h.",
      ),
  }),
  {
    rule: `duration(self.hold) <= duration('${PANIC_MAX_HOLD_SECONDS}s')`,
    message: "panic.hold must be at most 1h; a longer hold keeps not-ready pods in rotation after recovery",
    fieldPath: ".hold",
    holds: (p) => (durationSeconds(p.hold) ?? 0) <= PANIC_MAX_HOLD_SECONDS,
  },
).describe(
  "Opt-in panic mode: while fewer than floorPercent of the serving pods are Ready, publish every pod on the " +
    "Services that select only this Deployment's pods. Refused while pods of a new revision are held by the " +
    "healthgate.io/deep-check gate, during a gated rollout, while pods are terminating, and for a Service that " +
    "also selects other pods.",
);

const flappingSpec = withRules(
  z.object({
    maxTransitions: int32(2, 100)
      .default(4)
      .describe(
        "A pod whose readiness changes more than this many times within windowSeconds is flapping and is reported " +
          "(status, Event, metric).",
      ),
    windowSeconds: int32(10, 86400)
      .default(300)
      .describe("Seconds over which readiness changes are counted."),
    reportBackoffSeconds: int32(1, 86400)
      .default(60)
      .describe(
        "Seconds before a flapping pod is reported again; doubles with each repeat report (exponential backoff), " +
          "so a chronic flapper is reported less often while its status entry stays.",
      ),
    maxReportBackoffSeconds: int32(1, 604800)
      .default(3600)
      .describe(
        "The longest wait between two reports of one pod. A pod that stops flapping is forgiven (its backoff " +
          "starts over) after this long without a report.",
      ),
  }),
  {
    rule: "self.reportBackoffSeconds <= self.maxReportBackoffSeconds",
    message:
      "flapping.reportBackoffSeconds must not exceed flapping.maxReportBackoffSeconds; lower the first or raise the second",
    fieldPath: ".reportBackoffSeconds",
    holds: (f) => f.reportBackoffSeconds <= f.maxReportBackoffSeconds,
  },
);

const FLAPPING_DEFAULTS = {
  maxTransitions: 4,
  windowSeconds: 300,
  reportBackoffSeconds: 60,
  maxReportBackoffSeconds: 3600,
};

export const guardrailsSpec = z
  .object({
    maxUnreadyPercent: int32(1, 100)
      .default(50)
      .describe(
        "More than this percentage of serving pods going unready within windowSeconds (at least two pods), or " +
          "every pod of a zone holding two or more, is a correlated (probably global) failure: healthgate reports " +
          "CorrelatedFailure and takes no action that shrinks capacity while it lasts. Pods held unready only by " +
          "their healthgate.io/deep-check gate, and pods that never were Ready, are not counted.",
      ),
    windowSeconds: int32(1, 3600)
      .default(30)
      .describe("How close together, in seconds, pods must go unready to count as one correlated event."),
    clearAfterSeconds: int32(0, 86400)
      .default(60)
      .describe(
        "CorrelatedFailure clears only after the unready pods have stayed at or below maxUnreadyPercent (and no " +
          "zone wholly unready) for this many seconds (hysteresis).",
      ),
    flapping: flappingSpec.default(FLAPPING_DEFAULTS).describe("Readiness flapping detection per pod."),
    panic: panicSpec.optional(),
  })
  .default({ maxUnreadyPercent: 50, windowSeconds: 30, clearAfterSeconds: 60, flapping: FLAPPING_DEFAULTS })
  .describe("Correlated-failure guard and flapping detection.");

const specShape = z.object({
  selector: labelSelector()
    .optional()
    .describe(
      "Selects Deployments in this namespace by label. Set selector, targetRef, or both (both must match).",
    ),
  targetRef: z
    .object({
      kind: z
        .enum(["Deployment"])
        .default("Deployment")
        .describe("Kind of the target: Deployment (the only kind for now)."),
      name: objectName().describe("Name of the Deployment in this namespace."),
    })
    .optional()
    .describe("Selects one Deployment in this namespace by name."),
  mode: z
    .enum(["Audit", "Enforce"])
    .default("Audit")
    .describe(
      "Audit: report findings and conditions only, never change a Deployment's spec. Enforce: own the probe, preStop " +
        "and grace-period fields (server-side apply, field manager healthgate).",
    ),
  deny: z
    .object({
      deepLiveness: z
        .boolean()
        .default(false)
        .describe(
          "Refuse, at admission (any mode), a write of a Deployment this policy selects that adds or changes a deep " +
            "liveness probe on a governed container: a path in endpoints.deep.paths or rollout.deepCheck.path, or an " +
            "exec probe that dials a dependency. Never refuses writes that leave liveness as it was, nor deletions.",
        ),
    })
    .default({ deepLiveness: false })
    .describe("Admission-time refusals (a ValidatingAdmissionPolicy with this policy as its parameter)."),
  containers: uniqueItems(z.array(containerName()).max(32), "container")
    .optional()
    .describe("Containers governed, by name. Default: every container that declares a port or has a probe."),
  endpoints: endpointsSpec.default({}),
  timing: timingSpec.optional(),
  shutdown: shutdownSpec.default({ drainSeconds: 5, maxInFlightSeconds: 20 }),
  headroom: headroomSpec.optional(),
  rollout: rolloutSpec.optional(),
  guardrails: guardrailsSpec,
});

type SpecShape = z.output<typeof specShape>;

const startupAllowance = (s: SpecShape) => {
  const t = s.timing?.startup;
  return t?.periodSeconds !== undefined && t.failureThreshold !== undefined
    ? t.periodSeconds * t.failureThreshold
    : undefined;
};

export const healthPolicySpec = withRules(
  specShape,
  {
    rule: "has(self.selector) || has(self.targetRef)",
    message:
      "set spec.selector (matchLabels) or spec.targetRef (a Deployment name) to choose what this policy governs",
    reason: "FieldValueRequired",
    holds: (s) => s.selector !== undefined || s.targetRef !== undefined,
  },
  {
    rule: "!self.deny.deepLiveness || has(self.endpoints.deep)",
    message:
      "deny.deepLiveness refuses liveness probes that reach a deep path, but endpoints.deep.paths is not set; list the deep paths there",
    fieldPath: ".deny.deepLiveness",
    reason: "FieldValueRequired",
    holds: (s) => !s.deny.deepLiveness || s.endpoints.deep !== undefined,
  },
  {
    rule:
      "!has(self.rollout) || !has(self.endpoints.liveness) || !has(self.endpoints.liveness.path) || " +
      "self.endpoints.liveness.path != self.rollout.deepCheck.path",
    message:
      "rollout.deepCheck.path equals endpoints.liveness.path: liveness must be shallow and the deep check deep; use different endpoints",
    fieldPath: ".rollout.deepCheck.path",
    holds: (s) => s.rollout === undefined || s.endpoints.liveness?.path !== s.rollout.deepCheck.path,
  },
  {
    rule:
      "!has(self.rollout) || !has(self.endpoints.readiness) || !has(self.endpoints.readiness.path) || " +
      "self.endpoints.readiness.path != self.rollout.deepCheck.path",
    message:
      "rollout.deepCheck.path equals endpoints.readiness.path: deep checks must not steer traffic; use different endpoints",
    fieldPath: ".rollout.deepCheck.path",
    holds: (s) => s.rollout === undefined || s.endpoints.readiness?.path !== s.rollout.deepCheck.path,
  },
  {
    rule:
      "!has(self.endpoints.startup) || !has(self.timing) || !has(self.timing.startup) || " +
      "!has(self.timing.startup.periodSeconds) || !has(self.timing.startup.failureThreshold) || " +
      "self.timing.startup.periodSeconds * self.timing.startup.failureThreshold >= self.endpoints.startup.maxStartupSeconds",
    message:
      "timing.startup allows less than endpoints.startup.maxStartupSeconds (periodSeconds × failureThreshold is too small); raise failureThreshold, or remove it to have it derived",
    messageExpression:
      "('timing.startup allows a boot only %ds (periodSeconds × failureThreshold) but endpoints.startup.maxStartupSeconds " +
      "is %ds; raise failureThreshold to at least %d, or remove it to have it derived').format([" +
      "self.timing.startup.periodSeconds * self.timing.startup.failureThreshold, self.endpoints.startup.maxStartupSeconds, " +
      "(self.endpoints.startup.maxStartupSeconds + self.timing.startup.periodSeconds - 1) / self.timing.startup.periodSeconds])",
    fieldPath: ".timing.startup.failureThreshold",
    holds: (s) => {
      const allowance = startupAllowance(s);
      return (
        s.endpoints.startup === undefined ||
        allowance === undefined ||
        allowance >= s.endpoints.startup.maxStartupSeconds
      );
    },
    messageFor: (s) => {
      const period = s.timing?.startup?.periodSeconds ?? 1;
      const max = s.endpoints.startup?.maxStartupSeconds ?? 0;
      return (
        `timing.startup allows a boot only ${startupAllowance(s)}s (periodSeconds × failureThreshold) but ` +
        `endpoints.startup.maxStartupSeconds is ${max}s; raise failureThreshold to at least ${Math.ceil(max / period)}, ` +
        `or remove it to have it derived`
      );
    },
  },
).describe("What a HealthPolicy governs and how.");

export type HealthPolicySpec = z.output<typeof healthPolicySpec>;
export type HealthPolicySpecInput = z.input<typeof healthPolicySpec>;
export type ProbeEndpoint = NonNullable<HealthPolicySpec["endpoints"]["liveness"]>;
export type ProbeTimingSpec = NonNullable<NonNullable<HealthPolicySpec["timing"]>["readiness"]>;
export type HeadroomSpec = NonNullable<HealthPolicySpec["headroom"]>;
export type RolloutSpec = NonNullable<HealthPolicySpec["rollout"]>;
export type GuardrailsSpec = HealthPolicySpec["guardrails"];
export type BackgroundDeepCheckSpec = NonNullable<RolloutSpec["deepCheck"]["background"]>;
export type PanicSpec = NonNullable<HealthPolicySpec["guardrails"]["panic"]>;
