import { z } from "zod";
import { cel, containerName, duration, httpPath, int32, intOrStringPort, labelSelector, objectName } from "./common.ts";

// HealthPolicy.spec. Descriptions are user documentation: they surface in
// `kubectl explain hpol.spec...` and in the generated CRD.

const probeEndpoint = (what: string) =>
  z
    .object({
      path: httpPath()
        .optional()
        .describe(`HTTP GET path of the ${what} endpoint, e.g. /healthz. Exactly one of path, grpc or tcp.`),
      scheme: z
        .enum(["HTTP", "HTTPS"])
        .optional()
        .describe("Scheme for an HTTP endpoint. Default HTTP."),
      grpc: z
        .object({
          service: z
            .string()
            .max(256)
            .optional()
            .describe('Service name sent in the gRPC health check request; "" (default) asks for the server as a whole.'),
        })
        .optional()
        .describe(`Use the gRPC health checking protocol for the ${what} probe.`),
      tcp: z
        .object({})
        .optional()
        .describe(`Use a TCP connect for the ${what} probe (proves only that the port accepts connections).`),
      port: intOrStringPort()
        .optional()
        .describe("Container port for this probe, by name or number; default spec.endpoints.port."),
    })
    .meta(
      cel(
        {
          rule: "(has(self.path) ? 1 : 0) + (has(self.grpc) ? 1 : 0) + (has(self.tcp) ? 1 : 0) == 1",
          message: `set exactly one of path, grpc or tcp for the ${what} endpoint`,
        },
        {
          rule: "!has(self.scheme) || has(self.path)",
          message: "scheme applies only to an HTTP endpoint (path)",
          fieldPath: ".scheme",
        },
      ),
    );

const probeTiming = (what: "liveness" | "readiness" | "startup") => {
  const base = z.object({
    periodSeconds: int32(1, 3600).optional().describe(`How often the kubelet runs the ${what} probe (interval).`),
    timeoutSeconds: int32(1, 3600)
      .optional()
      .describe(`Seconds after which one ${what} probe attempt counts as failed. Must be below periodSeconds.`),
    failureThreshold: int32(1, 1000)
      .optional()
      .describe(
        `Consecutive failures before the kubelet acts (the unhealthy threshold).` +
          (what === "startup" ? " Default: derived from spec.endpoints.startup.maxStartupSeconds." : " 3 or more is recommended: be slow to eject."),
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
  const rules = [
    {
      rule: "!has(self.timeoutSeconds) || !has(self.periodSeconds) || self.timeoutSeconds < self.periodSeconds",
      message: `${what} timeoutSeconds must be below periodSeconds, or probes overlap; lower the timeout or raise the period`,
      fieldPath: ".timeoutSeconds",
    },
  ];
  if (what === "readiness") return base.meta(cel(...rules));
  const withGrace =
    what === "liveness"
      ? base.extend({
          terminationGracePeriodSeconds: int32(1, 3600)
            .optional()
            .describe(
              "Grace period a liveness kill gets (probe-level terminationGracePeriodSeconds); default the pod's. Bounds restart time.",
            ),
        })
      : base;
  return withGrace.meta(
    cel(...rules, {
      rule: "!has(self.successThreshold) || self.successThreshold == 1",
      message: `${what} successThreshold must be 1 (Kubernetes requires it); remove the field or set 1`,
      fieldPath: ".successThreshold",
    }),
  );
};

export const endpointsSpec = z
  .object({
    port: intOrStringPort()
      .optional()
      .describe("Container port the probes use, by name (e.g. http) or number. Default: the container's first declared port."),
    liveness: probeEndpoint("liveness")
      .optional()
      .describe("Liveness endpoint. Must be shallow: it reports this process only, never its dependencies."),
    readiness: probeEndpoint("readiness")
      .optional()
      .describe("Readiness endpoint. May reflect own state (started, pools warm), not shared dependencies."),
    startup: probeEndpoint("startup")
      .extend({
        maxStartupSeconds: int32(1, 3600)
          .default(60)
          .describe("Longest expected boot, in seconds; the startup probe allows at least this long before liveness starts."),
      })
      .optional()
      .describe("Startup endpoint, protecting slow boots from liveness kills."),
    deep: z
      .object({
        paths: z
          .array(httpPath())
          .min(1)
          .max(16)
          .meta({ "x-kubernetes-list-type": "set" })
          .describe("Paths that check dependencies (database, cache, downstreams). Never used as probes; used out-of-band."),
      })
      .optional()
      .describe("Deep (dependency) endpoints. healthgate flags any liveness probe that reaches one."),
  })
  .meta(
    cel(
      {
        rule: "!has(self.deep) || !has(self.liveness) || !has(self.liveness.path) || !(self.liveness.path in self.deep.paths)",
        message: "liveness.path is listed in deep.paths: liveness must be shallow; point liveness at a shallow endpoint",
        fieldPath: ".liveness.path",
      },
      {
        rule: "!has(self.deep) || !has(self.readiness) || !has(self.readiness.path) || !(self.readiness.path in self.deep.paths)",
        message: "readiness.path is listed in deep.paths: deep checks must not steer traffic; point readiness at a shallow endpoint",
        fieldPath: ".readiness.path",
      },
      {
        rule: "!has(self.deep) || !has(self.startup) || !has(self.startup.path) || !(self.startup.path in self.deep.paths)",
        message: "startup.path is listed in deep.paths: a startup probe must not depend on shared dependencies",
        fieldPath: ".startup.path",
      },
    ),
  )
  .describe("Where the health endpoints are. Probes are generated from these in Enforce mode and audited against them.");

export const timingSpec = z
  .object({
    liveness: probeTiming("liveness").optional().describe("Explicit liveness timing; wins over objectives and is checked against them."),
    readiness: probeTiming("readiness").optional().describe("Explicit readiness timing; wins over objectives and is checked against them."),
    startup: probeTiming("startup").optional().describe("Explicit startup timing."),
    objectives: z
      .object({
        maxEjectSeconds: int32(2, 3600)
          .optional()
          .describe("Worst-case seconds to remove a failing pod from endpoints (readiness period × failureThreshold + timeout)."),
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
  .describe("Probe timing (the four knobs: period, timeout, failure and success thresholds) and detection objectives.");

export const shutdownSpec = z
  .object({
    drainSeconds: int32(0, 600)
      .default(5)
      .describe("preStop sleep so endpoint removal propagates before SIGTERM. 0 disables the drain (not recommended)."),
    maxInFlightSeconds: int32(0, 3600)
      .default(20)
      .describe("Longest in-flight request or job after SIGTERM. The grace period must cover drain + in-flight."),
  })
  .describe("Graceful shutdown: terminationGracePeriodSeconds ≥ drainSeconds + maxInFlightSeconds.");

export const headroomSpec = z
  .object({
    tolerate: int32(1, 100).default(1).describe("k in N−k: how many replicas (or, with zones, the largest zone) may be lost at peak."),
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
    window: duration()
      .optional()
      .describe("How far back the Metrics source looks for the peak, e.g. 1h. Only with source Metrics. Default 1h."),
    zones: z
      .boolean()
      .default(true)
      .describe("Also evaluate losing the zone (node topology.kubernetes.io/zone) that holds the most pods."),
    managePodDisruptionBudget: z
      .boolean()
      .default(false)
      .describe(
        "Create and own a PodDisruptionBudget (maxUnavailable: tolerate, unhealthyPodEvictionPolicy: AlwaysAllow), " +
          "unless the user already has one covering the pods (reported instead).",
      ),
  })
  .meta(
    cel(
      {
        rule: "self.source != 'Static' || has(self.peakUtilizationPercent)",
        message: "source Static needs peakUtilizationPercent (e.g. 70); or use source HPA or Metrics",
        fieldPath: ".peakUtilizationPercent",
      },
      {
        rule: "self.source == 'Static' || !has(self.peakUtilizationPercent)",
        message: "peakUtilizationPercent applies only to source Static; remove it or set source: Static",
        fieldPath: ".peakUtilizationPercent",
      },
      {
        rule: "self.source == 'Metrics' || !has(self.window)",
        message: "window applies only to source Metrics; remove it or set source: Metrics",
        fieldPath: ".window",
      },
    ),
  )
  .describe("N−k headroom: can the survivors carry peak load after losing tolerate replicas, and during a rollout?");

export const rolloutSpec = z
  .object({
    steps: z
      .array(
        z.object({
          weight: int32(1, 100).describe("Percent of desired replicas of the new revision admitted by the end of this step."),
          bake: duration()
            .optional()
            .describe("How long to hold at this step while deep checks keep passing, e.g. 2m. Omit on the last step."),
        }),
      )
      .min(1)
      .max(10)
      .meta(
        cel(
          {
            rule: "self[size(self) - 1].weight == 100",
            message: "the last step's weight must be 100 so the rollout can complete",
          },
          {
            rule: "self.map(s, s.weight).isSorted() && self.all(s, self.filter(t, t.weight == s.weight).size() == 1)",
            message: "step weights must be strictly increasing (e.g. 10, 50, 100)",
          },
        ),
      )
      .describe("Steps of a gated rollout: new pods become Ready only up to each step's weight, then bake."),
    deepCheck: z
      .object({
        path: httpPath().describe("Deep endpoint checked out-of-band on each new pod (and a sample of stable pods)."),
        port: intOrStringPort().optional().describe("Container port; default spec.endpoints.port."),
        intervalSeconds: int32(1, 300).default(5).describe("Seconds between deep checks of one pod."),
        timeoutSeconds: int32(1, 60).default(2).describe("Seconds before one deep check counts as failed."),
        successThreshold: int32(1, 100).default(3).describe("Consecutive passes before a new pod is admitted."),
        failureLimit: int32(1, 100).default(3).describe("Failures of the new revision (while stable passes) that abort the rollout."),
        stableSample: int32(0, 10)
          .default(2)
          .describe("Stable pods checked too, so a shared-dependency outage is not blamed on the new revision."),
        expect: z
          .object({
            statuses: z
              .array(int32(100, 599))
              .min(1)
              .max(16)
              .default([200])
              .meta({ "x-kubernetes-list-type": "set" })
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
      })
      .meta(
        cel({
          rule: "self.timeoutSeconds < self.intervalSeconds",
          message: "deepCheck timeoutSeconds must be below intervalSeconds",
          fieldPath: ".timeoutSeconds",
        }),
      )
      .describe("The out-of-band deep check that judges the new revision against the stable one."),
    onFailure: z
      .enum(["Hold", "Rollback"])
      .default("Hold")
      .describe("Hold: stop admitting and un-ready admitted canary pods. Rollback: also restore the previous template."),
  })
  .describe("Progressive rollout gated on out-of-band deep checks (per-pod readiness gate healthgate.io/deep-check).");

export const healthPolicySpec = z
  .object({
    selector: labelSelector()
      .optional()
      .describe("Selects Deployments in this namespace by label. Set selector, targetRef, or both (both must match)."),
    targetRef: z
      .object({
        kind: z.enum(["Deployment"]).default("Deployment").describe("Kind of the target; Deployment."),
        name: objectName().describe("Name of the Deployment in this namespace."),
      })
      .optional()
      .describe("Selects one Deployment by name."),
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
          .describe("Refuse, at admission, Deployments whose liveness probe reaches a deep path (any mode)."),
      })
      .default({ deepLiveness: false })
      .describe("Admission-time refusals (ValidatingAdmissionPolicy with this policy as its parameter)."),
    containers: z
      .array(containerName())
      .max(32)
      .meta({ "x-kubernetes-list-type": "set" })
      .optional()
      .describe("Containers governed. Default: every container that declares a port."),
    endpoints: endpointsSpec,
    timing: timingSpec.optional(),
    shutdown: shutdownSpec.default({ drainSeconds: 5, maxInFlightSeconds: 20 }),
    headroom: headroomSpec.optional(),
    rollout: rolloutSpec.optional(),
    guardrails: z
      .object({
        maxUnreadyPercent: int32(1, 100)
          .default(50)
          .describe("More pods than this unready at once is treated as a correlated (global) failure: rollouts hold."),
      })
      .default({ maxUnreadyPercent: 50 })
      .describe("Correlated-failure guard."),
  })
  .meta(
    cel(
      {
        rule: "has(self.selector) || has(self.targetRef)",
        message: "set spec.selector (matchLabels) or spec.targetRef (a Deployment name) to choose what this policy governs",
      },
      {
        rule: "!has(self.rollout) || !has(self.endpoints.liveness) || !has(self.endpoints.liveness.path) || self.endpoints.liveness.path != self.rollout.deepCheck.path",
        message: "rollout.deepCheck.path equals endpoints.liveness.path: the deep check must not be the liveness endpoint",
        fieldPath: ".rollout.deepCheck.path",
      },
    ),
  )
  .describe("What a HealthPolicy governs and how.");

export type HealthPolicySpec = z.output<typeof healthPolicySpec>;
export type HealthPolicySpecInput = z.input<typeof healthPolicySpec>;
export type ProbeEndpoint = NonNullable<HealthPolicySpec["endpoints"]["liveness"]>;
export type ProbeTimingSpec = NonNullable<NonNullable<HealthPolicySpec["timing"]>["readiness"]>;
export type HeadroomSpec = NonNullable<HealthPolicySpec["headroom"]>;
export type RolloutSpec = NonNullable<HealthPolicySpec["rollout"]>;
