import { describe, expect, it } from "vitest";
import type { PodSpec } from "../../../src/api/k8s.ts";
import type { HealthPolicySpec } from "../../../src/api/v1alpha1/index.ts";
import { PROBE_RULES, runRules, type ProbeRule } from "../../../src/policy/probes/index.ts";
import * as rules from "../../../src/policy/probes/rules.ts";
import {
  exec,
  httpGet,
  makeContainer,
  makeContext,
  makePolicy,
  patchLiveness,
  patchReadiness,
  withLifecycle,
  withLiveness,
  withPorts,
  withReadiness,
  withStartup,
  type ContainerModifier,
} from "./build.ts";

interface Case {
  name: string;
  container: ContainerModifier[];
  policy?: HealthPolicySpec;
  pod?: Partial<PodSpec>;
  /** Expected field of the (first) finding when it fires. */
  field?: string;
  /** Substring expected in the message when it fires. */
  says?: string;
}

interface RuleTable {
  rule: ProbeRule;
  fires: Case[];
  quiet: Case[];
}

const deepPolicy = makePolicy({ endpoints: { deep: { paths: ["/health/deep", "/health/db"] } } });
const rolloutPolicy = makePolicy({
  rollout: { steps: [{ weight: 100 }], deepCheck: { path: "/status/dependencies" } },
});
const startupPolicy = makePolicy({ endpoints: { startup: { path: "/healthz", maxStartupSeconds: 120 } } });
const objectivesPolicy = makePolicy({
  timing: { objectives: { maxEjectSeconds: 20, maxReadmitSeconds: 10, maxRestartSeconds: 60 } },
});

const tables: RuleTable[] = [
  {
    rule: rules.livenessDeep,
    fires: [
      {
        name: "http path in deep.paths",
        container: [withLiveness(httpGet("/health/deep"))],
        policy: deepPolicy,
        field: "livenessProbe.httpGet.path",
        says: "/health/deep",
      },
      {
        name: "deep path after normalisation (trailing slash, query)",
        container: [withLiveness(httpGet("/health//db/?verbose=1"))],
        policy: deepPolicy,
      },
      {
        name: "rollout deep-check path",
        container: [withLiveness(httpGet("/status/dependencies", 8080))],
        policy: rolloutPolicy,
        says: "spec.rollout.deepCheck.path",
      },
      {
        name: "exec pg_isready toward the database host",
        container: [withLiveness(exec("pg_isready", "-h", "postgres.db.svc", "-U", "app"))],
        field: "livenessProbe.exec.command",
        says: "pg_isready toward postgres.db.svc",
      },
      {
        name: "sh -c redis-cli -h redis-master",
        container: [withLiveness(exec("sh", "-c", "redis-cli -h redis-master ping | grep PONG"))],
        says: "redis-cli toward redis-master",
      },
      {
        name: "curl to another service",
        container: [withLiveness(exec("curl", "-fsS", "http://payments:8080/healthz"))],
        says: "curl toward payments",
      },
      {
        name: "wget to another service",
        container: [withLiveness(exec("/bin/sh", "-c", "wget -q -O- http://auth/ping"))],
      },
      {
        name: "nc -z to a dependency",
        container: [withLiveness(exec("nc", "-z", "-w", "2", "kafka", "9092"))],
        says: "nc toward kafka",
      },
      {
        name: "mysqladmin -h attached",
        container: [withLiveness(exec("mysqladmin", "ping", "-hmysql-primary"))],
        says: "mysql-primary",
      },
      { name: "mysql --host=", container: [withLiveness(exec("mysql", "--host=db", "-e", "SELECT 1"))] },
      {
        name: "psql with a URI",
        container: [withLiveness(exec("psql", "postgresql://app@db:5432/app", "-c", "select 1"))],
        says: "toward db",
      },
      {
        name: "grpc_health_probe to a remote address",
        container: [withLiveness(exec("grpc_health_probe", "-addr=backend:50051"))],
        says: "backend",
      },
      {
        name: "kubectl (the API server)",
        container: [withLiveness(exec("kubectl", "get", "--raw", "/healthz"))],
        says: "Kubernetes API server",
      },
      {
        name: "timeout wrapper and env var host",
        container: [withLiveness(exec("sh", "-c", "timeout 3 redis-cli -h $REDIS_HOST ping"))],
        says: "$REDIS_HOST",
      },
      {
        name: "curl to localhost but a declared deep path",
        container: [withLiveness(exec("curl", "-f", "http://localhost:8080/health/deep"))],
        policy: deepPolicy,
        says: "to path /health/deep",
      },
    ],
    quiet: [
      { name: "shallow http path", container: [], policy: deepPolicy },
      {
        name: "deep path on readiness only",
        container: [withReadiness(httpGet("/health/deep", "http", { successThreshold: 2 }))],
        policy: deepPolicy,
      },
      {
        name: "pg_isready on the local socket",
        container: [withLiveness(exec("pg_isready", "-U", "postgres"))],
      },
      {
        name: "pg_isready -h 127.0.0.1",
        container: [withLiveness(exec("sh", "-c", "exec pg_isready -U app -h 127.0.0.1 -p 5432"))],
      },
      { name: "redis-cli default host", container: [withLiveness(exec("redis-cli", "ping"))] },
      {
        name: "curl localhost",
        container: [withLiveness(exec("curl", "-f", "http://localhost:8080/healthz"))],
      },
      { name: "curl [::1]", container: [withLiveness(exec("curl", "-f", "http://[::1]:8080/healthz"))] },
      {
        name: "curl over a unix socket",
        container: [withLiveness(exec("curl", "--unix-socket", "/run/app.sock", "http://app/healthz"))],
      },
      {
        name: "curl the pod's own IP (downward API)",
        container: [withLiveness(exec("curl", "http://$(POD_IP):8080/healthz"))],
      },
      {
        name: "grpc_health_probe -addr=:50051",
        container: [withLiveness(exec("grpc_health_probe", "-addr=:50051"))],
      },
      {
        name: "mysqladmin -h localhost",
        container: [withLiveness(exec("mysqladmin", "ping", "-h", "localhost"))],
      },
      { name: "a local script", container: [withLiveness(exec("/health/ping_liveness_local.sh", "5"))] },
      { name: "tcp liveness", container: [withLiveness({ tcpSocket: { port: "http" } })] },
      { name: "no liveness", container: [withLiveness(undefined)] },
    ],
  },
  {
    rule: rules.readinessDeep,
    fires: [
      {
        name: "readiness on a declared deep path",
        container: [patchReadiness({ httpGet: { path: "/health/db", port: "http" } })],
        policy: deepPolicy,
        field: "readinessProbe.httpGet.path",
      },
      {
        name: "readiness execs redis-cli toward a dependency",
        container: [withReadiness(exec("redis-cli", "-h", "cache", "ping"))],
      },
    ],
    quiet: [
      { name: "shallow readiness", container: [], policy: deepPolicy },
      { name: "local exec readiness", container: [withReadiness(exec("cat", "/tmp/ready"))] },
    ],
  },
  {
    rule: rules.livenessSuspectedDeep,
    fires: [
      {
        name: "/health/deep without a policy",
        container: [withLiveness(httpGet("/health/deep"))],
        field: "livenessProbe.httpGet.path",
      },
      { name: "/health/full", container: [withLiveness(httpGet("/health/full"))] },
      { name: "/healthcheck/dependencies", container: [withLiveness(httpGet("/healthcheck/dependencies"))] },
      { name: "/health/dependencies", container: [withLiveness(httpGet("/api/health/dependencies"))] },
      {
        name: "Spring Boot aggregate /actuator/health",
        container: [withLiveness(httpGet("/actuator/health/"))],
      },
      { name: "query ?full=true", container: [withLiveness(httpGet("/health?full=true"))] },
      {
        name: "curl to localhost on a deep-looking path",
        container: [withLiveness(exec("curl", "-f", "localhost:8080/status/all"))],
      },
    ],
    quiet: [
      { name: "/healthz", container: [] },
      { name: "Spring Boot liveness group", container: [withLiveness(httpGet("/actuator/health/liveness"))] },
      {
        name: "a deep-looking path while the policy declares deep paths",
        container: [withLiveness(httpGet("/health/full"))],
        policy: deepPolicy,
      },
      { name: "'full' outside a health path", container: [withLiveness(httpGet("/full/healthz"))] },
    ],
  },
  {
    rule: rules.readinessMissing,
    fires: [{ name: "no readiness probe", container: [withReadiness(undefined)], field: "readinessProbe" }],
    quiet: [{ name: "readiness present", container: [] }],
  },
  {
    rule: rules.livenessMissing,
    fires: [{ name: "no liveness probe", container: [withLiveness(undefined)], field: "livenessProbe" }],
    quiet: [{ name: "liveness present", container: [] }],
  },
  {
    rule: rules.startupProbeMissing,
    fires: [
      {
        name: "boot 120s, liveness kills after 30s",
        container: [],
        policy: startupPolicy,
        field: "startupProbe",
        says: "kills after 30s",
      },
      {
        name: "initial delay not enough (60 + 30 < 120)",
        container: [patchLiveness({ initialDelaySeconds: 60 })],
        policy: startupPolicy,
      },
    ],
    quiet: [
      { name: "no startup expectation in the policy", container: [] },
      {
        name: "startup probe present",
        container: [withStartup(httpGet("/healthz", "http", { failureThreshold: 24, periodSeconds: 5 }))],
        policy: startupPolicy,
      },
      {
        name: "liveness tolerates the boot (initial delay 90 + 30)",
        container: [patchLiveness({ initialDelaySeconds: 90 })],
        policy: startupPolicy,
      },
      {
        name: "no liveness: nothing kills the boot",
        container: [withLiveness(undefined)],
        policy: startupPolicy,
      },
    ],
  },
  {
    rule: rules.startupBudgetTooShort,
    fires: [
      {
        name: "3 × 10s < 120s",
        container: [withStartup(httpGet("/healthz"))],
        policy: startupPolicy,
        field: "startupProbe.failureThreshold",
        says: "allows 30s",
      },
    ],
    quiet: [
      {
        name: "12 × 10s = 120s",
        container: [withStartup(httpGet("/healthz", "http", { failureThreshold: 12 }))],
        policy: startupPolicy,
      },
      {
        name: "delay counts: 30 + 9 × 10s",
        container: [
          withStartup(httpGet("/healthz", "http", { initialDelaySeconds: 30, failureThreshold: 9 })),
        ],
        policy: startupPolicy,
      },
      { name: "no policy expectation", container: [withStartup(httpGet("/healthz"))] },
    ],
  },
  {
    rule: rules.livenessInitialDelay,
    fires: [
      {
        name: "initialDelaySeconds 30, no startup probe",
        container: [patchLiveness({ initialDelaySeconds: 30 })],
        field: "livenessProbe.initialDelaySeconds",
      },
    ],
    quiet: [
      { name: "no delay", container: [] },
      { name: "delay 0", container: [patchLiveness({ initialDelaySeconds: 0 })] },
      {
        name: "startup probe present",
        container: [patchLiveness({ initialDelaySeconds: 30 }), withStartup(httpGet("/healthz"))],
      },
    ],
  },
  {
    rule: rules.probePortUndeclared,
    fires: [
      {
        name: "readiness names an undeclared port",
        container: [patchReadiness({ httpGet: { path: "/readyz", port: "metrics" } })],
        field: "readinessProbe.httpGet.port",
        says: '"metrics"',
      },
      {
        name: "tcp liveness on an undeclared name",
        container: [withLiveness({ tcpSocket: { port: "admin" } })],
        field: "livenessProbe.tcpSocket.port",
      },
      { name: "no ports declared at all", container: [withPorts(undefined)] },
      {
        name: "preStop httpGet on an undeclared port",
        container: [withLifecycle({ preStop: { httpGet: { path: "/drain", port: "admin" } } })],
        field: "lifecycle.preStop.httpGet.port",
      },
    ],
    quiet: [
      { name: "declared name", container: [] },
      {
        name: "numeric port, even undeclared",
        container: [patchReadiness({ httpGet: { path: "/readyz", port: 9090 } })],
      },
      { name: "numeric string port", container: [withLiveness({ tcpSocket: { port: "8080" } })] },
    ],
  },
  {
    rule: rules.livenessFailureThresholdLow,
    fires: [
      {
        name: "failureThreshold 1",
        container: [patchLiveness({ failureThreshold: 1, periodSeconds: 30 })],
        field: "livenessProbe.failureThreshold",
      },
      { name: "failureThreshold 2", container: [patchLiveness({ failureThreshold: 2, periodSeconds: 30 })] },
    ],
    quiet: [
      { name: "3", container: [] },
      { name: "absent (default 3)", container: [patchLiveness({ failureThreshold: undefined })] },
      { name: "0 means the default", container: [patchLiveness({ failureThreshold: 0 })] },
    ],
  },
  {
    rule: rules.readinessFailureThresholdLow,
    fires: [
      {
        name: "failureThreshold 1",
        container: [patchReadiness({ failureThreshold: 1 })],
        field: "readinessProbe.failureThreshold",
        says: "one answer slower than 1s ejects the pod",
      },
      {
        name: "failureThreshold 1 on an exec readiness",
        container: [
          withReadiness({ ...exec("cat", "/tmp/ready"), failureThreshold: 1, successThreshold: 2 }),
        ],
      },
    ],
    quiet: [
      { name: "3", container: [] },
      { name: "2 (tolerates one slow answer)", container: [patchReadiness({ failureThreshold: 2 })] },
      { name: "absent (default 3)", container: [patchReadiness({ failureThreshold: undefined })] },
      { name: "0 means the default", container: [patchReadiness({ failureThreshold: 0 })] },
      { name: "no readiness probe", container: [withReadiness(undefined)] },
      {
        name: "liveness failureThreshold 1 is another rule",
        container: [patchLiveness({ failureThreshold: 1 })],
      },
    ],
  },
  {
    rule: rules.livenessSameAsReadiness,
    fires: [
      {
        name: "same path, named vs numeric port",
        container: [withReadiness(httpGet("/healthz", 8080, { successThreshold: 2 }))],
        field: "livenessProbe",
      },
      {
        name: "paths equal after normalisation",
        container: [
          withLiveness(httpGet("/readyz/?b=2&a=1")),
          withReadiness(httpGet("//readyz?a=1&b=2", "http")),
        ],
      },
      {
        name: "same tcp port",
        container: [
          withLiveness({ tcpSocket: { port: "http" } }),
          withReadiness({ tcpSocket: { port: 8080 } }),
        ],
      },
      {
        name: "same gRPC service",
        container: [
          withLiveness({ grpc: { port: 9000 } }),
          withReadiness({ grpc: { port: 9000, service: "" } }),
        ],
      },
      {
        name: "same exec",
        container: [withLiveness(exec("cat", "/tmp/ok")), withReadiness(exec("cat", "/tmp/ok"))],
      },
    ],
    quiet: [
      { name: "different paths", container: [] },
      {
        name: "different gRPC services",
        container: [
          withLiveness({ grpc: { port: 9000 } }),
          withReadiness({ grpc: { port: 9000, service: "ready" } }),
        ],
      },
      {
        name: "same path, different ports",
        container: [
          withPorts([
            { name: "http", containerPort: 8080 },
            { name: "admin", containerPort: 9090 },
          ]),
          withReadiness(httpGet("/healthz", "admin")),
        ],
      },
      {
        name: "same path, different query (?full=true)",
        container: [withLiveness(httpGet("/readyz?full=true"))],
      },
      {
        name: "http vs https",
        container: [withReadiness({ httpGet: { path: "/healthz", port: "http", scheme: "HTTPS" } })],
      },
    ],
  },
  {
    rule: rules.livenessNotMoreTolerant,
    fires: [
      {
        name: "both default (30s vs 30s)",
        container: [withLiveness(httpGet("/healthz")), withReadiness(httpGet("/readyz"))],
        says: "after 30s",
      },
      { name: "liveness faster than readiness", container: [patchLiveness({ periodSeconds: 2 })] },
    ],
    quiet: [
      { name: "liveness 30s vs readiness 15s", container: [] },
      { name: "no readiness", container: [withReadiness(undefined)] },
    ],
  },
  {
    rule: rules.readinessNoHysteresis,
    fires: [
      {
        name: "successThreshold absent (1)",
        container: [patchReadiness({ successThreshold: undefined })],
        field: "readinessProbe.successThreshold",
      },
    ],
    quiet: [{ name: "successThreshold 2", container: [] }],
  },
  {
    rule: rules.probeTimeoutNotBelowPeriod,
    fires: [
      {
        name: "readiness timeout = period",
        container: [patchReadiness({ timeoutSeconds: 5 })],
        field: "readinessProbe.timeoutSeconds",
      },
      {
        name: "startup timeout above period",
        container: [withStartup(httpGet("/healthz", "http", { periodSeconds: 2, timeoutSeconds: 3 }))],
        field: "startupProbe.timeoutSeconds",
      },
    ],
    quiet: [
      { name: "timeout 1 < period", container: [] },
      { name: "timeout 0 means 1", container: [patchReadiness({ timeoutSeconds: 0, periodSeconds: 2 })] },
    ],
  },
  {
    rule: rules.probeHostSet,
    fires: [
      {
        name: "liveness httpGet.host",
        container: [withLiveness({ httpGet: { path: "/healthz", port: 8080, host: "example.internal" } })],
        field: "livenessProbe.httpGet.host",
      },
      {
        name: "127.0.0.1 is the node, not the pod",
        container: [withReadiness({ tcpSocket: { port: 8080, host: "127.0.0.1" }, successThreshold: 2 })],
      },
      {
        name: "postStart hook host",
        container: [
          withLifecycle({
            preStop: { sleep: { seconds: 5 } },
            postStart: { httpGet: { path: "/", port: 8080, host: "10.0.0.1" } },
          }),
        ],
        field: "lifecycle.postStart.httpGet.host",
      },
    ],
    quiet: [{ name: "no host", container: [] }],
  },
  {
    rule: rules.drainMissing,
    fires: [
      { name: "no preStop", container: [withLifecycle(undefined)], field: "lifecycle.preStop" },
      {
        name: "preStop that does not sleep",
        container: [withLifecycle({ preStop: { exec: { command: ["nginx", "-s", "quit"] } } })],
      },
    ],
    quiet: [
      { name: "native sleep", container: [] },
      {
        name: "exec sleep",
        container: [withLifecycle({ preStop: { exec: { command: ["/bin/sh", "-c", "sleep 10"] } } })],
      },
      {
        name: "exec /bin/sleep",
        container: [withLifecycle({ preStop: { exec: { command: ["/bin/sleep", "5"] } } })],
      },
      {
        name: "policy disables the drain",
        container: [withLifecycle(undefined)],
        policy: makePolicy({ shutdown: { drainSeconds: 0, maxInFlightSeconds: 20 } }),
      },
    ],
  },
  {
    rule: rules.gracePeriodTooShort,
    fires: [
      {
        name: "grace 10 < 5 + 20",
        container: [],
        pod: { terminationGracePeriodSeconds: 10 },
        field: "spec.terminationGracePeriodSeconds",
        says: "10s",
      },
      {
        name: "long preStop sleep eats the default grace",
        container: [withLifecycle({ preStop: { sleep: { seconds: 15 } } })],
      },
      {
        name: "in-flight from the policy",
        container: [],
        policy: makePolicy({ shutdown: { drainSeconds: 5, maxInFlightSeconds: 60 } }),
      },
    ],
    quiet: [
      { name: "default 30 ≥ 5 + 20", container: [] },
      {
        name: "grace 60",
        container: [withLifecycle({ preStop: { sleep: { seconds: 15 } } })],
        pod: { terminationGracePeriodSeconds: 60 },
      },
    ],
  },
  {
    rule: rules.detectionSlowerThanObjective,
    fires: [
      {
        name: "eject 31s > 20s",
        container: [patchReadiness({ periodSeconds: 10 })],
        policy: objectivesPolicy,
        field: "readinessProbe.periodSeconds",
        says: "ejectSeconds is 31s",
      },
      {
        name: "restart 10×3+1+30 = 61s > 60s",
        container: [],
        policy: objectivesPolicy,
        field: "livenessProbe.periodSeconds",
        says: "restartSeconds is 61s",
      },
    ],
    quiet: [
      {
        name: "probe-level grace keeps restart at 46s",
        container: [patchLiveness({ terminationGracePeriodSeconds: 15 })],
        policy: objectivesPolicy,
      },
      { name: "no objectives", container: [patchReadiness({ periodSeconds: 60 })] },
    ],
  },
];

describe("probe rules", () => {
  it("covers every rule in PROBE_RULES with a table", () => {
    expect(tables.map((t) => t.rule.rule).sort()).toEqual(PROBE_RULES.map((r) => r.rule).sort());
  });

  it("the baseline container is clean under the CRD defaults and a full policy", () => {
    const full = makePolicy({
      endpoints: {
        liveness: { path: "/healthz" },
        readiness: { path: "/readyz" },
        deep: { paths: ["/health/deep"] },
      },
      timing: { objectives: { maxEjectSeconds: 20, maxReadmitSeconds: 10, maxRestartSeconds: 60 } },
    });
    expect(runRules(makeContext(makeContainer()))).toEqual([]);
    expect(
      runRules(
        makeContext(makeContainer(patchLiveness({ terminationGracePeriodSeconds: 15 })), { policy: full }),
      ),
    ).toEqual([]);
  });

  for (const { rule, fires, quiet } of tables) {
    describe(`${rule.rule} (${rule.severity})`, () => {
      it.each(fires)("fires: $name", ({ container, policy, pod, field, says }) => {
        const ctx = makeContext(makeContainer(...container), {
          ...(policy ? { policy } : {}),
          ...(pod ? { pod } : {}),
        });
        const findings = rule.check(ctx);
        expect(findings.length).toBeGreaterThan(0);
        const [first] = findings;
        expect(first).toMatchObject({ rule: rule.rule, severity: rule.severity, container: "web" });
        if (field) expect(first?.field).toBe(field);
        if (says) expect(first?.message).toContain(says);
        // The message teaches: it carries the rationale and the fix.
        expect(first?.message).toContain(rule.rationale);
        expect(first?.message).toContain(`Fix: ${rule.fix}`);
      });
      it.each(quiet)("quiet: $name", ({ container, policy, pod }) => {
        const ctx = makeContext(makeContainer(...container), {
          ...(policy ? { policy } : {}),
          ...(pod ? { pod } : {}),
        });
        expect(rule.check(ctx)).toEqual([]);
      });
    });
  }

  it("runRules orders findings worst first", () => {
    const findings = runRules(
      makeContext(makeContainer(withLiveness(httpGet("/health/deep")), withReadiness(undefined)), {
        policy: deepPolicy,
      }),
    );
    expect(findings.map((f) => f.severity)).toEqual(
      [...findings.map((f) => f.severity)].sort((a, b) => rank(b) - rank(a)),
    );
    expect(findings[0]?.rule).toBe("LivenessDeep");
  });
});

const rank = (s: string) => ["info", "warning", "error", "critical"].indexOf(s);
