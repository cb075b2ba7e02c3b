import type { Container, PodSpec, Probe } from "../../api/k8s.ts";

// Kubernetes' defaults for the fields a probe or pod may leave out. The API
// server stores them on every probe (a literal 0 becomes the default too), so
// rules, detection math and the "is an apply needed" comparison all reason
// about the values the kubelet will actually use.

export const PROBE_DEFAULTS = {
  periodSeconds: 10,
  timeoutSeconds: 1,
  successThreshold: 1,
  failureThreshold: 3,
  initialDelaySeconds: 0,
} as const;

export const DEFAULT_TERMINATION_GRACE_SECONDS = 30;

/** The four knobs of a probe (plus its initial delay), with Kubernetes' defaults applied. */
export interface ProbeTiming {
  periodSeconds: number;
  timeoutSeconds: number;
  successThreshold: number;
  failureThreshold: number;
  initialDelaySeconds: number;
}

const positiveOr = (value: number | undefined, fallback: number) =>
  value === undefined || value <= 0 ? fallback : value;

export function probeTiming(probe: Probe): ProbeTiming {
  return {
    periodSeconds: positiveOr(probe.periodSeconds, PROBE_DEFAULTS.periodSeconds),
    timeoutSeconds: positiveOr(probe.timeoutSeconds, PROBE_DEFAULTS.timeoutSeconds),
    successThreshold: positiveOr(probe.successThreshold, PROBE_DEFAULTS.successThreshold),
    failureThreshold: positiveOr(probe.failureThreshold, PROBE_DEFAULTS.failureThreshold),
    initialDelaySeconds: probe.initialDelaySeconds ?? PROBE_DEFAULTS.initialDelaySeconds,
  };
}

export function podGraceSeconds(podSpec: PodSpec): number {
  return podSpec.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS;
}

/** A probe as the API server stores it: the four knobs filled in, httpGet.scheme defaulted to HTTP. */
export function withProbeDefaults(probe: Probe): Probe {
  const timing = probeTiming(probe);
  const defaulted: Probe = { ...probe, ...timing };
  if (probe.httpGet) defaulted.httpGet = { ...probe.httpGet, scheme: probe.httpGet.scheme ?? "HTTP" };
  return defaulted;
}

export type ProbeKind = "liveness" | "readiness" | "startup";
export const PROBE_FIELD = {
  liveness: "livenessProbe",
  readiness: "readinessProbe",
  startup: "startupProbe",
} as const satisfies Record<ProbeKind, keyof Container>;

/**
 * The port number a probe's port refers to in this container: numbers as
 * they are, names through the container's declared ports. Undefined when a
 * name is not declared — the kubelet then treats the probe as errored.
 */
export function resolvePort(container: Container, port: number | string): number | undefined {
  if (typeof port === "number") return port;
  if (/^[0-9]+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * The port a container serves on, for probes the policy does not place: its first declared port
 * (by name when it has one), else the numeric port one of its probes already uses — `ports` is
 * informational, and a probe on 8080 shows 8080 is served. Undefined when neither exists.
 */
export function servedPort(container: Container): number | string | undefined {
  const first = container.ports?.[0];
  if (first) return first.name ?? first.containerPort;
  for (const field of ["readinessProbe", "livenessProbe", "startupProbe"] as const) {
    const probe = container[field];
    const port = probe ? probePort(probe) : undefined;
    if (port !== undefined && (typeof port === "number" || /^[0-9]+$/.test(port))) return Number(port);
  }
  return undefined;
}

/** The port a probe handler targets, if it has one (exec has none). */
export function probePort(probe: Probe): number | string | undefined {
  return probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
}

/**
 * An HTTP path reduced to what the server routes on: the query is dropped,
 * repeated slashes collapse and a trailing slash goes (except the root).
 */
export function normalizePath(path: string | undefined): string {
  const withoutQuery = (path ?? "/").split(/[?#]/, 1)[0] ?? "/";
  const collapsed = ("/" + withoutQuery).replace(/\/{2,}/g, "/");
  return collapsed.length > 1 ? collapsed.replace(/\/+$/, "") : collapsed;
}

/** The query parameters of a path, sorted: "?b=2&a=1" and "?a=1&b=2" ask the same. */
function queryOf(path: string | undefined): string {
  const query = (path ?? "").split("#", 1)[0]?.split("?")[1] ?? "";
  return query.split("&").filter(Boolean).sort().join("&");
}

/**
 * What a probe actually checks, as comparable data: the handler with ports
 * resolved and paths normalised, timing left out. Two probes with equal
 * handler keys hit the same thing.
 */
export function probeHandlerKey(container: Container, probe: Probe): string {
  const port = (p: number | string) => resolvePort(container, p) ?? p;
  if (probe.httpGet) {
    const { httpGet } = probe;
    const headers = [...(httpGet.httpHeaders ?? [])].map((h) => `${h.name.toLowerCase()}:${h.value}`).sort();
    return JSON.stringify([
      "http",
      (httpGet.scheme ?? "HTTP").toUpperCase(),
      (httpGet.host ?? "").toLowerCase(),
      port(httpGet.port),
      normalizePath(httpGet.path),
      // The query can change what an endpoint checks (/healthz?full=true), so it stays.
      queryOf(httpGet.path),
      headers,
    ]);
  }
  if (probe.tcpSocket)
    return JSON.stringify(["tcp", (probe.tcpSocket.host ?? "").toLowerCase(), port(probe.tcpSocket.port)]);
  if (probe.grpc) return JSON.stringify(["grpc", probe.grpc.port, probe.grpc.service ?? ""]);
  if (probe.exec) return JSON.stringify(["exec", probe.exec.command ?? []]);
  return JSON.stringify(["none"]);
}

/** A short human description of what a probe hits, for messages: "GET :8080/healthz", "exec [pg_isready]". */
export function describeHandler(probe: Probe): string {
  if (probe.httpGet) {
    const host = probe.httpGet.host ? probe.httpGet.host : "";
    return `${probe.httpGet.scheme === "HTTPS" ? "HTTPS " : ""}GET ${host}:${probe.httpGet.port}${probe.httpGet.path ?? "/"}`;
  }
  if (probe.tcpSocket) return `TCP ${probe.tcpSocket.host ?? ""}:${probe.tcpSocket.port}`;
  if (probe.grpc)
    return `gRPC :${probe.grpc.port}${probe.grpc.service ? ` service ${probe.grpc.service}` : ""}`;
  if (probe.exec) return `exec ${JSON.stringify(probe.exec.command ?? [])}`;
  return "no handler";
}
