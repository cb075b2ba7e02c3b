import type { Container, LifecycleHandler, Probe } from "../../api/k8s.ts";
import { detectionFigures, objectiveMisses } from "../detection.ts";
import {
  PROBE_FIELD,
  describeHandler,
  podGraceSeconds,
  probeHandlerKey,
  probePort,
  probeTiming,
  resolvePort,
  type ProbeKind,
} from "./defaults.ts";
import { declaredDeepPaths, deepEvidence, looksDeep, networkCalls, isLocalHost } from "./deep.ts";
import { defineRule, type ProbeRule, type RuleContext, type Verdict } from "./rule.ts";

// The probe rules. Each is one small function of (container, pod spec,
// workload, policy); its metadata says why it matters and what to do, and
// becomes both the finding's message and a row of docs/rules.md.

interface PresentProbe {
  kind: ProbeKind;
  field: (typeof PROBE_FIELD)[ProbeKind];
  probe: Probe;
}

function presentProbes(container: Container): PresentProbe[] {
  return (["liveness", "readiness", "startup"] as const).flatMap((kind) => {
    const probe = container[PROBE_FIELD[kind]];
    return probe ? [{ kind, field: PROBE_FIELD[kind], probe }] : [];
  });
}

/** failureThreshold × periodSeconds (+ initialDelaySeconds): how long a probe tolerates a non-answering container. */
function toleranceSeconds(probe: Probe, withInitialDelay: boolean): number {
  const t = probeTiming(probe);
  return t.failureThreshold * t.periodSeconds + (withInitialDelay ? t.initialDelaySeconds : 0);
}

const maxStartupSeconds = ({ policy }: RuleContext) => policy.endpoints.startup?.maxStartupSeconds;

export const readinessMissing = defineRule(
  {
    rule: "ReadinessMissing",
    severity: "error",
    checks: "A governed container (it declares a port or has another probe) has no readiness probe.",
    rationale:
      "Without one a pod receives traffic as soon as its process starts and keeps receiving it while it cannot serve; " +
      "rollouts count it Available before it can answer.",
    fix: "Add a readinessProbe on a shallow endpoint of this instance (e.g. GET /readyz), or let healthgate manage probes (mode: Enforce).",
  },
  function readinessMissing({ container }) {
    return container.readinessProbe ? undefined : { field: "readinessProbe", problem: "no readinessProbe" };
  },
);

export const livenessMissing = defineRule(
  {
    rule: "LivenessMissing",
    severity: "warning",
    checks: "A governed container (it declares a port or has another probe) has no liveness probe.",
    rationale:
      "A hung process (deadlock, stuck event loop) is then never restarted: readiness takes it out of rotation and " +
      "capacity shrinks silently until someone notices.",
    fix: "Add a livenessProbe on a shallow endpoint that reports only this process (e.g. GET /healthz or a TCP check), more tolerant than readiness.",
  },
  function livenessMissing({ container }) {
    return container.livenessProbe ? undefined : { field: "livenessProbe", problem: "no livenessProbe" };
  },
);

export const livenessDeep = defineRule(
  {
    rule: "LivenessDeep",
    severity: "critical",
    checks:
      "The liveness probe reaches a deep endpoint: an HTTP path the policy lists in spec.endpoints.deep.paths or " +
      "spec.rollout.deepCheck.path, or an exec command running a network client (curl, wget, nc, pg_isready, psql, " +
      "redis-cli, mysqladmin, mysql, mongosh, grpc_health_probe, etcdctl, kubectl, …) toward a host other than the pod itself.",
    rationale:
      "Liveness restarts the container when it fails. A check that depends on a shared dependency fails on every pod " +
      "at once when that dependency blips, so the kubelet restarts the whole fleet together: a restart storm that turns " +
      "a dependency hiccup into an outage and hammers the dependency as it recovers.",
    fix:
      "Point livenessProbe at a shallow endpoint that reports only this process (e.g. /healthz or a TCP check); keep " +
      "deep checks for out-of-band monitoring and rollout gating (spec.rollout.deepCheck).",
  },
  function livenessDeep({ container, policy }) {
    const probe = container.livenessProbe;
    const evidence = probe && deepEvidence(probe, declaredDeepPaths(policy));
    if (!probe || !evidence) return undefined;
    return {
      field: `livenessProbe.${evidence.field}`,
      problem: `liveness (${describeHandler(probe)}) reaches ${evidence.reaches}`,
    };
  },
);

/** The HTTP paths a probe requests: httpGet's, or the URLs an exec curl/wget sends to the pod itself. */
function localHttpPaths(probe: Probe): { field: string; path: string }[] {
  if (probe.httpGet) return [{ field: "httpGet.path", path: probe.httpGet.path ?? "/" }];
  return networkCalls(probe.exec?.command ?? [])
    .filter((call) => call.path !== undefined && isLocalHost(call.host))
    .map((call) => ({ field: "exec.command", path: call.path as string }));
}

export const livenessSuspectedDeep = defineRule(
  {
    rule: "LivenessSuspectedDeep",
    severity: "warning",
    checks:
      "No deep paths are declared (no policy, or none in spec.endpoints.deep.paths), and the liveness path looks like " +
      "a dependency check: /health/deep, /health/full, /healthcheck/dependencies, /status/all, ?full=true, or Spring " +
      "Boot's aggregate /actuator/health.",
    rationale:
      "Such paths usually check databases and downstream services; as a liveness probe they restart every pod " +
      "together when a dependency blips.",
    fix:
      "Use a shallow endpoint for liveness (Spring Boot: /actuator/health/liveness). If this path is shallow, declare " +
      "the real deep paths in a HealthPolicy (spec.endpoints.deep.paths).",
  },
  function livenessSuspectedDeep({ container, policy }) {
    const probe = container.livenessProbe;
    if (!probe || declaredDeepPaths(policy).length > 0) return undefined;
    const suspect = localHttpPaths(probe).find(({ path }) => looksDeep(path));
    if (!suspect) return undefined;
    return {
      field: `livenessProbe.${suspect.field}`,
      problem: `liveness path ${suspect.path} looks like a dependency check`,
    };
  },
);

export const readinessDeep = defineRule(
  {
    rule: "ReadinessDeep",
    severity: "error",
    checks:
      "The readiness probe reaches a declared deep path (spec.endpoints.deep.paths, spec.rollout.deepCheck.path) or " +
      "runs a network client toward another host.",
    rationale:
      "Readiness steers traffic. A check that depends on a shared dependency fails on every pod at once, so the " +
      "Service loses all its endpoints together: an empty pool is worse than a degraded one, and callers get " +
      "connection errors instead of the degraded answers they were built to handle.",
    fix: "Make readiness reflect this instance only (started, pools warm, not overloaded); watch dependencies out-of-band.",
  },
  function readinessDeep({ container, policy }) {
    const probe = container.readinessProbe;
    const evidence = probe && deepEvidence(probe, declaredDeepPaths(policy));
    if (!probe || !evidence) return undefined;
    return {
      field: `readinessProbe.${evidence.field}`,
      problem: `readiness (${describeHandler(probe)}) reaches ${evidence.reaches}`,
    };
  },
);

export const startupProbeMissing = defineRule(
  {
    rule: "StartupProbeMissing",
    severity: "error",
    checks:
      "The policy expects boots of up to spec.endpoints.startup.maxStartupSeconds, the container has no startup probe, " +
      "and its liveness probe tolerates less (initialDelaySeconds + failureThreshold × periodSeconds).",
    rationale:
      "Liveness kills a container that has not answered within its failure budget, so a boot slower than that budget " +
      "is killed and restarted over and over (CrashLoopBackOff), typically right after a deploy or with cold caches.",
    fix: "Add a startupProbe whose failureThreshold × periodSeconds covers the longest boot; liveness starts only after it succeeds.",
  },
  function startupProbeMissing(ctx) {
    const { container } = ctx;
    const maxStartup = maxStartupSeconds(ctx);
    if (maxStartup === undefined || container.startupProbe || !container.livenessProbe) return undefined;
    const budget = toleranceSeconds(container.livenessProbe, true);
    if (budget >= maxStartup) return undefined;
    return {
      field: "startupProbe",
      problem: `no startupProbe, and liveness kills after ${budget}s while a boot may take ${maxStartup}s (spec.endpoints.startup.maxStartupSeconds)`,
    };
  },
);

export const livenessInitialDelay = defineRule(
  {
    rule: "LivenessInitialDelay",
    severity: "warning",
    checks: "The liveness probe uses initialDelaySeconds and the container has no startup probe.",
    rationale:
      "A fixed delay is a guess: a boot slower than it is killed in a loop, and a faster one leaves a hang undetected " +
      "for the whole delay after every restart. A startup probe waits exactly as long as the boot takes.",
    fix: "Replace initialDelaySeconds with a startupProbe on the same endpoint (failureThreshold × periodSeconds ≥ the longest boot).",
  },
  function livenessInitialDelay({ container }) {
    const delay = container.livenessProbe?.initialDelaySeconds ?? 0;
    if (delay <= 0 || container.startupProbe) return undefined;
    return {
      field: "livenessProbe.initialDelaySeconds",
      problem: `livenessProbe.initialDelaySeconds is ${delay}s and there is no startupProbe`,
    };
  },
);

export const startupBudgetTooShort = defineRule(
  {
    rule: "StartupBudgetTooShort",
    severity: "error",
    checks:
      "The startup probe's budget (initialDelaySeconds + failureThreshold × periodSeconds) is below the policy's " +
      "spec.endpoints.startup.maxStartupSeconds.",
    rationale:
      "When the startup probe gives up the kubelet kills the container, so a boot that can take longer than the " +
      "budget never completes: the pod crash-loops.",
    fix: "Set startupProbe.failureThreshold to at least ceil(maxStartupSeconds / periodSeconds).",
  },
  function startupBudgetTooShort(ctx) {
    const probe = ctx.container.startupProbe;
    const maxStartup = maxStartupSeconds(ctx);
    if (!probe || maxStartup === undefined) return undefined;
    const budget = toleranceSeconds(probe, true);
    if (budget >= maxStartup) return undefined;
    return {
      field: "startupProbe.failureThreshold",
      problem: `the startup probe allows ${budget}s, below spec.endpoints.startup.maxStartupSeconds ${maxStartup}s`,
    };
  },
);

export const livenessSameAsReadiness = defineRule(
  {
    rule: "LivenessSameAsReadiness",
    severity: "warning",
    checks:
      "Liveness and readiness run the same check (compared semantically: a named port and its number are the same " +
      "port, paths are normalised; HTTP, TCP, gRPC and exec).",
    rationale:
      "Readiness answers 'should this pod get traffic now?', liveness 'is this process beyond repair?'. With the same " +
      "check, every reason to stop traffic (overload, warm-up, a slow dependency) also restarts the container, " +
      "removing capacity exactly when it is short.",
    fix: "Give liveness its own shallow check (e.g. /livez or a TCP check) that fails only when the process is wedged; keep readiness on its own endpoint.",
  },
  function livenessSameAsReadiness({ container }) {
    const { livenessProbe, readinessProbe } = container;
    if (!livenessProbe || !readinessProbe) return undefined;
    if (probeHandlerKey(container, livenessProbe) !== probeHandlerKey(container, readinessProbe))
      return undefined;
    return {
      field: "livenessProbe",
      problem: `liveness and readiness both run ${describeHandler(livenessProbe)}`,
    };
  },
);

export const livenessNotMoreTolerant = defineRule(
  {
    rule: "LivenessNotMoreTolerant",
    severity: "warning",
    checks:
      "Liveness failureThreshold × periodSeconds does not exceed readiness' — liveness acts as fast as readiness or faster.",
    rationale:
      "A restart is the heavier remedy: it drops in-flight work and cold-starts the process. Liveness should act only " +
      "after readiness has taken the pod out of rotation and given it a chance to recover.",
    fix: "Raise livenessProbe failureThreshold or periodSeconds so failureThreshold × periodSeconds exceeds readiness' (e.g. readiness 3 × 5s, liveness 3 × 10s).",
  },
  function livenessNotMoreTolerant({ container }) {
    const { livenessProbe, readinessProbe } = container;
    if (!livenessProbe || !readinessProbe) return undefined;
    const liveness = toleranceSeconds(livenessProbe, false);
    const readiness = toleranceSeconds(readinessProbe, false);
    if (liveness > readiness) return undefined;
    return {
      field: "livenessProbe.failureThreshold",
      problem: `liveness gives up after ${liveness}s (failureThreshold × periodSeconds), readiness after ${readiness}s`,
    };
  },
);

export const livenessFailureThresholdLow = defineRule(
  {
    rule: "LivenessFailureThresholdLow",
    severity: "error",
    checks: "The liveness probe's failureThreshold is below 3.",
    rationale:
      "One or two slow answers (a GC pause, CPU throttling, a busy node) then restart the container. Be slow to kill: " +
      "a restart costs far more than a few more seconds of waiting.",
    fix: "Set livenessProbe.failureThreshold to 3 or more (Kubernetes' default is 3).",
  },
  function livenessFailureThresholdLow({ container }) {
    const probe = container.livenessProbe;
    if (!probe) return undefined;
    const { failureThreshold } = probeTiming(probe);
    return failureThreshold < 3
      ? {
          field: "livenessProbe.failureThreshold",
          problem: `livenessProbe.failureThreshold is ${failureThreshold}`,
        }
      : undefined;
  },
);

export const readinessFailureThresholdLow = defineRule(
  {
    rule: "ReadinessFailureThresholdLow",
    severity: "warning",
    checks: "The readiness probe's failureThreshold is 1.",
    rationale:
      "One slow answer (a GC pause, CPU throttling, a busy node) then takes the pod out of the endpoints, and a " +
      "pause shared by many pods ejects them together: be slow to eject.",
    fix: "Set readinessProbe.failureThreshold to 3 (Kubernetes' default); shorten periodSeconds if ejection must stay fast.",
  },
  function readinessFailureThresholdLow({ container }) {
    const probe = container.readinessProbe;
    if (!probe) return undefined;
    const { failureThreshold, periodSeconds, timeoutSeconds } = probeTiming(probe);
    return failureThreshold === 1
      ? {
          field: "readinessProbe.failureThreshold",
          problem: `readinessProbe.failureThreshold is 1: one answer slower than ${timeoutSeconds}s ejects the pod for at least ${periodSeconds}s`,
        }
      : undefined;
  },
);

export const readinessNoHysteresis = defineRule(
  {
    rule: "ReadinessNoHysteresis",
    severity: "info",
    checks: "The readiness probe's successThreshold is below 2.",
    rationale:
      "With successThreshold 1 a pod that alternates between failing and passing flaps in and out of the endpoints, " +
      "and each readmission sends it traffic it may not handle. Two successes add hysteresis: slow to eject, slower to readmit.",
    fix: "Set readinessProbe.successThreshold to 2.",
  },
  function readinessNoHysteresis({ container }) {
    const probe = container.readinessProbe;
    if (!probe) return undefined;
    const { successThreshold } = probeTiming(probe);
    return successThreshold < 2
      ? {
          field: "readinessProbe.successThreshold",
          problem: `readinessProbe.successThreshold is ${successThreshold}`,
        }
      : undefined;
  },
);

export const probeTimeoutNotBelowPeriod = defineRule(
  {
    rule: "ProbeTimeoutNotBelowPeriod",
    severity: "warning",
    checks: "A probe's timeoutSeconds is not below its periodSeconds.",
    rationale:
      "A probe that may take longer than its interval delays the next one, so detection is slower than " +
      "period × failureThreshold suggests, and slow answers pile up on a process that is already struggling.",
    fix: "Keep timeoutSeconds below periodSeconds (e.g. timeout 1–2s with period 5–10s).",
  },
  function probeTimeoutNotBelowPeriod({ container }) {
    return presentProbes(container).flatMap(({ kind, field, probe }): Verdict[] => {
      const { timeoutSeconds, periodSeconds } = probeTiming(probe);
      return timeoutSeconds >= periodSeconds
        ? [
            {
              field: `${field}.timeoutSeconds`,
              problem: `${kind} timeoutSeconds ${timeoutSeconds} is not below periodSeconds ${periodSeconds}`,
            },
          ]
        : [];
    });
  },
);

interface PortUse {
  field: string;
  port: number | string;
}

function portUses(container: Container): PortUse[] {
  const uses: PortUse[] = presentProbes(container).flatMap(({ field, probe }) => {
    const port = probePort(probe);
    const handler = probe.httpGet ? "httpGet" : probe.tcpSocket ? "tcpSocket" : "grpc";
    return port === undefined ? [] : [{ field: `${field}.${handler}.port`, port }];
  });
  for (const hook of ["preStop", "postStart"] as const) {
    const handler = container.lifecycle?.[hook];
    const port = handler?.httpGet?.port ?? handler?.tcpSocket?.port;
    if (port !== undefined)
      uses.push({ field: `lifecycle.${hook}.${handler?.httpGet ? "httpGet" : "tcpSocket"}.port`, port });
  }
  return uses;
}

export const probePortUndeclared = defineRule(
  {
    rule: "ProbePortUndeclared",
    severity: "error",
    checks: "A probe (or lifecycle hook) names a port that the container does not declare in ports[].",
    rationale:
      "The API server accepts it, but the kubelet cannot resolve the name and treats the probe as errored rather " +
      "than failed: a liveness probe is silently disabled, and a readiness probe never passes, so the pod never becomes Ready.",
    fix: "Declare the port under the container's ports[] with that name, or use the port number.",
  },
  function probePortUndeclared({ container }) {
    return portUses(container)
      .filter(({ port }) => resolvePort(container, port) === undefined)
      .map(({ field, port }) => ({
        field,
        problem: `${field} names port "${port}", which the container does not declare`,
      }));
  },
);

function hostUses(container: Container): { field: string; host: string }[] {
  const handlers: [string, Probe | LifecycleHandler | undefined][] = [
    ...presentProbes(container).map(({ field, probe }): [string, Probe] => [field, probe]),
    ["lifecycle.preStop", container.lifecycle?.preStop],
    ["lifecycle.postStart", container.lifecycle?.postStart],
  ];
  return handlers.flatMap(([field, handler]) => {
    if (handler?.httpGet?.host) return [{ field: `${field}.httpGet.host`, host: handler.httpGet.host }];
    if (handler?.tcpSocket?.host) return [{ field: `${field}.tcpSocket.host`, host: handler.tcpSocket.host }];
    return [];
  });
}

export const probeHostSet = defineRule(
  {
    rule: "ProbeHostSet",
    severity: "warning",
    checks: "A probe or lifecycle hook sets httpGet.host or tcpSocket.host.",
    rationale:
      "The kubelet then connects to that host instead of the pod, so the check says nothing about this instance " +
      "(with 127.0.0.1 it checks the node), and a manifest can make the kubelet send requests to arbitrary addresses.",
    fix: "Remove host; the kubelet uses the pod's IP. To send a virtual-host name, add an httpHeaders entry named Host instead.",
  },
  function probeHostSet({ container }) {
    return hostUses(container).map(({ field, host }) => ({ field, problem: `${field} is "${host}"` }));
  },
);

/** Seconds the preStop hook waits before SIGTERM: native sleep, or `sleep N` in an exec hook; 0 when it does not. */
export function preStopDrainSeconds(container: Container): number {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep) return preStop.sleep.seconds;
  const command = preStop?.exec?.command ?? [];
  const script = command.join(" ");
  const sleep = script.match(/(?:^|[\s;&|/])sleep\s+([0-9]+(?:\.[0-9]+)?)s?(?=$|[\s;&|])/);
  return sleep ? Math.ceil(Number(sleep[1])) : 0;
}

export const drainMissing = defineRule(
  {
    rule: "DrainMissing",
    severity: "warning",
    checks:
      "The container has no preStop drain (lifecycle.preStop.sleep, or an exec hook that sleeps) while the policy asks for one (spec.shutdown.drainSeconds > 0).",
    rationale:
      "On deletion the endpoint is removed while SIGTERM is already on its way; kube-proxy, ingress controllers and " +
      "load balancers learn of the removal seconds later. A process that stops at once refuses requests still routed " +
      "to it. A short preStop sleep keeps it serving until the removal has propagated.",
    fix: "Add lifecycle.preStop.sleep.seconds (native sleep; e.g. 5–10s) or an exec `sleep`, and keep terminationGracePeriodSeconds ≥ drain + in-flight time.",
  },
  function drainMissing({ container, policy }) {
    if (policy.shutdown.drainSeconds === 0 || preStopDrainSeconds(container) > 0) return undefined;
    return { field: "lifecycle.preStop", problem: "no preStop drain before SIGTERM" };
  },
);

export const gracePeriodTooShort = defineRule(
  {
    rule: "GracePeriodTooShort",
    severity: "warning",
    checks:
      "terminationGracePeriodSeconds (default 30) is below the drain (the preStop sleep, else spec.shutdown.drainSeconds) " +
      "plus spec.shutdown.maxInFlightSeconds.",
    rationale:
      "The grace period has to cover the preStop drain and the in-flight work after SIGTERM; when it runs out the " +
      "container is killed mid-request, so every rollout and scale-down fails some requests.",
    fix: "Set terminationGracePeriodSeconds ≥ drain + the longest in-flight request (spec.shutdown in the HealthPolicy).",
  },
  function gracePeriodTooShort({ container, podSpec, policy }) {
    const drain = preStopDrainSeconds(container) || policy.shutdown.drainSeconds;
    const inFlight = policy.shutdown.maxInFlightSeconds;
    const grace = podGraceSeconds(podSpec);
    if (grace >= drain + inFlight) return undefined;
    return {
      field: "spec.terminationGracePeriodSeconds",
      problem: `terminationGracePeriodSeconds is ${grace}s, below drain ${drain}s + in-flight ${inFlight}s`,
    };
  },
);

const FIGURE_FORMULA = {
  ejectSeconds: "readiness period × failureThreshold + timeout",
  readmitSeconds: "readiness period × successThreshold",
  restartSeconds: "liveness period × failureThreshold + timeout + grace",
} as const;

export const detectionSlowerThanObjective = defineRule(
  {
    rule: "DetectionSlowerThanObjective",
    severity: "error",
    checks:
      "A worst-case detection figure (eject, readmit, restart; DESIGN.md formulas) exceeds the policy's " +
      "spec.timing.objectives.",
    rationale:
      "The objectives say how long a broken pod may keep receiving traffic or stay hung; the probe timing decides it. " +
      "Worst case is period × failureThreshold + timeout (plus the kill's grace for restarts).",
    fix: "Shorten periodSeconds or lower failureThreshold on that probe, or drop explicit timing from the policy and let healthgate derive it from the objectives.",
  },
  function detectionSlowerThanObjective({ container, podSpec, policy }) {
    const misses = objectiveMisses(detectionFigures(container, podSpec), policy.timing?.objectives);
    return misses.map((miss) => ({
      field:
        miss.figure === "restartSeconds" ? "livenessProbe.periodSeconds" : "readinessProbe.periodSeconds",
      problem: `worst-case ${miss.figure} is ${miss.actualSeconds}s (${FIGURE_FORMULA[miss.figure]}), above spec.timing.objectives.${miss.objective} ${miss.limitSeconds}s`,
    }));
  },
);

/** Every probe rule, most important first. */
export const PROBE_RULES: readonly ProbeRule[] = [
  livenessDeep,
  readinessDeep,
  livenessSuspectedDeep,
  readinessMissing,
  livenessMissing,
  startupProbeMissing,
  startupBudgetTooShort,
  livenessInitialDelay,
  probePortUndeclared,
  livenessFailureThresholdLow,
  readinessFailureThresholdLow,
  livenessSameAsReadiness,
  livenessNotMoreTolerant,
  readinessNoHysteresis,
  probeTimeoutNotBelowPeriod,
  probeHostSet,
  drainMissing,
  gracePeriodTooShort,
  detectionSlowerThanObjective,
];
