import type { Container, Probe } from "../../api/k8s.ts";
import type { HealthPolicySpec, ProbeEndpoint } from "../../api/v1alpha1/index.ts";
import { policyTiming } from "../detection.ts";
import type { OwnedContainerFields, OwnedSpec } from "../seam.ts";
import { PROBE_FIELD, resolvePort, servedPort, type ProbeKind, type ProbeTiming } from "./defaults.ts";
import { declaredDeepPaths, deepEvidence } from "./deep.ts";

// What healthgate writes in Enforce mode: liveness, readiness and startup
// probes, a preStop drain and the pod's grace period, computed from the policy
// and the container. Everything produced here is valid for the API server:
// liveness/startup successThreshold 1, timeout below period, a port that
// resolves in the container (a named port is kept when the container declares
// it), numeric ports for gRPC, preStop sleep ≤ grace.

/** Why a probe could not be built; the container's own probe is left as it is. */
export interface DesiredProblem {
  container: string;
  probe: ProbeKind;
  message: string;
}

export interface DesiredContainer {
  fields: OwnedContainerFields;
  problems: DesiredProblem[];
}

/** terminationGracePeriodSeconds healthgate sets: drain + in-flight (at least 1 s, so SIGTERM is ever handled). */
export function desiredGraceSeconds(policy: HealthPolicySpec): number {
  return Math.max(1, policy.shutdown.drainSeconds + policy.shutdown.maxInFlightSeconds);
}

type Handler = Pick<Probe, "httpGet" | "tcpSocket" | "grpc" | "exec">;

/** The port for an endpoint: its own, else spec.endpoints.port, else the port the container serves on. */
function endpointPort(
  policy: HealthPolicySpec,
  container: Container,
  endpoint?: ProbeEndpoint,
): number | string | undefined {
  return endpoint?.port ?? policy.endpoints.port ?? servedPort(container);
}

type Built = { handler: Handler } | { problem: string } | undefined;

function handlerFromEndpoint(policy: HealthPolicySpec, container: Container, endpoint: ProbeEndpoint): Built {
  const port = endpointPort(policy, container, endpoint);
  if (port === undefined)
    return { problem: "no port: set spec.endpoints.port or declare a port on the container" };
  const number = resolvePort(container, port);
  if (number === undefined) return { problem: `port "${port}" is not declared by the container` };
  // A named port stays named (readable, follows the container's ports); numbers stay numbers.
  const portRef = typeof port === "string" && !/^[0-9]+$/.test(port) ? port : number;
  if (endpoint.grpc) {
    return {
      handler: {
        grpc: { port: number, ...(endpoint.grpc.service ? { service: endpoint.grpc.service } : {}) },
      },
    };
  }
  if (endpoint.tcp) return { handler: { tcpSocket: { port: portRef } } };
  return {
    handler: { httpGet: { path: endpoint.path ?? "/", port: portRef, scheme: endpoint.scheme ?? "HTTP" } },
  };
}

/** The container's own handler, kept (without host) when the policy names no endpoint and it is not deep. */
function existingHandler(
  policy: HealthPolicySpec,
  container: Container,
  probe: Probe | undefined,
): Handler | undefined {
  if (!probe || deepEvidence(probe, declaredDeepPaths(policy))) return undefined;
  if (probe.httpGet) {
    const { host: _host, ...httpGet } = probe.httpGet;
    return resolvePort(container, httpGet.port) === undefined
      ? undefined
      : { httpGet: { ...httpGet, scheme: httpGet.scheme ?? "HTTP" } };
  }
  if (probe.tcpSocket) {
    return resolvePort(container, probe.tcpSocket.port) === undefined
      ? undefined
      : { tcpSocket: { port: probe.tcpSocket.port } };
  }
  if (probe.grpc) return { grpc: { ...probe.grpc } };
  if (probe.exec) return { exec: { command: [...(probe.exec.command ?? [])] } };
  return undefined;
}

/**
 * The handler for one probe kind. Liveness and readiness: the policy's
 * endpoint; without one, the container's own (shallow) handler — so a policy
 * without endpoints keeps every container's own handlers; without that, a TCP
 * check on the port (shallow by construction). Startup: only from the policy's
 * startup endpoint; without one, a container's own startup probe is not owned
 * and stays as the user wrote it (owning it would keep a probe healthgate once
 * wrote after the policy stopped asking for it).
 */
function handlerFor(kind: ProbeKind, policy: HealthPolicySpec, container: Container): Built {
  const endpoint = policy.endpoints[kind];
  if (endpoint) return handlerFromEndpoint(policy, container, endpoint);
  if (kind === "startup") return undefined;
  const own = existingHandler(policy, container, container[PROBE_FIELD[kind]]);
  if (own) return { handler: own };
  const port = endpointPort(policy, container);
  if (port === undefined) return { problem: `no ${kind} endpoint in the policy and no port for a TCP check` };
  if (resolvePort(container, port) === undefined)
    return { problem: `port "${port}" is not declared by the container` };
  return { handler: { tcpSocket: { port } } };
}

/** Timing the API server accepts: timeout below period (the period grows when it must). */
function validTiming(timing: ProbeTiming): ProbeTiming {
  const timeoutSeconds = Math.max(1, timing.timeoutSeconds);
  return { ...timing, timeoutSeconds, periodSeconds: Math.max(timing.periodSeconds, timeoutSeconds + 1) };
}

function probe(handler: Handler, timing: ProbeTiming, extra: Partial<Probe> = {}): Probe {
  const t = validTiming(timing);
  return {
    ...handler,
    ...(t.initialDelaySeconds > 0 ? { initialDelaySeconds: t.initialDelaySeconds } : {}),
    periodSeconds: t.periodSeconds,
    timeoutSeconds: t.timeoutSeconds,
    successThreshold: t.successThreshold,
    failureThreshold: t.failureThreshold,
    ...extra,
  };
}

/** The desired probes and preStop drain of one container. */
export function desiredContainerFields(policy: HealthPolicySpec, container: Container): DesiredContainer {
  const timing = policyTiming(policy, desiredGraceSeconds(policy));
  const fields: OwnedContainerFields = { name: container.name };
  const problems: DesiredProblem[] = [];
  const build = (kind: ProbeKind) => {
    const built = handlerFor(kind, policy, container);
    if (built && "problem" in built)
      problems.push({ container: container.name, probe: kind, message: built.problem });
    return built && "handler" in built ? built.handler : undefined;
  };

  const liveness = build("liveness");
  if (liveness) {
    const { terminationGracePeriodSeconds, ...knobs } = timing.liveness;
    fields.livenessProbe = probe(
      liveness,
      { ...knobs, successThreshold: 1 },
      terminationGracePeriodSeconds !== undefined ? { terminationGracePeriodSeconds } : {},
    );
  }
  const readiness = build("readiness");
  if (readiness) fields.readinessProbe = probe(readiness, timing.readiness);
  const startup = build("startup");
  const maxStartupSeconds = policy.endpoints.startup?.maxStartupSeconds;
  if (startup && maxStartupSeconds !== undefined) {
    const period = validTiming({ ...timing.startup, failureThreshold: 1 }).periodSeconds;
    const failureThreshold = timing.startup.failureThreshold ?? Math.ceil(maxStartupSeconds / period);
    fields.startupProbe = probe(startup, { ...timing.startup, successThreshold: 1, failureThreshold });
  }

  // A preStop hook of another kind (exec, httpGet) is the user's: adding sleep beside it would be two handlers.
  const preStop = container.lifecycle?.preStop;
  const foreignPreStop = preStop !== undefined && preStop.sleep === undefined;
  if (policy.shutdown.drainSeconds > 0 && !foreignPreStop) {
    fields.lifecycle = { preStop: { sleep: { seconds: policy.shutdown.drainSeconds } } };
  }
  return { fields, problems };
}

/** The complete owned spec for the governed containers: SSA drops what a manager stops sending, so it is always all of it. */
export function desiredOwnedSpec(
  policy: HealthPolicySpec,
  governed: readonly Container[],
): { ownedSpec: OwnedSpec; problems: DesiredProblem[] } {
  const desired = governed.map((container) => desiredContainerFields(policy, container));
  return {
    ownedSpec: {
      terminationGracePeriodSeconds: desiredGraceSeconds(policy),
      containers: desired.map((d) => d.fields),
    },
    problems: desired.flatMap((d) => d.problems),
  };
}
