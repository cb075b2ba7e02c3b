import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Container, Probe } from "../../../src/api/k8s.ts";
import { healthPolicySpec, type HealthPolicySpec } from "../../../src/api/v1alpha1/index.ts";
import { mergeOwnedSpecIntoTemplate } from "../../../src/policy/probes/concern.ts";
import {
  desiredContainerFields,
  desiredGraceSeconds,
  desiredOwnedSpec,
} from "../../../src/policy/probes/desired.ts";
import { atLeast, runRules } from "../../../src/policy/probes/index.ts";
import type { OwnedContainerFields } from "../../../src/policy/seam.ts";
import {
  exec,
  httpGet,
  makeContainer,
  makePolicy,
  withLiveness,
  withPorts,
  withReadiness,
  withStartup,
} from "./build.ts";

/** What the API server (and the kubelet, for named ports) would refuse in a probe. */
function probeProblems(
  kind: "liveness" | "readiness" | "startup",
  probe: Probe,
  container: Container,
): string[] {
  const problems: string[] = [];
  const handlers = (["httpGet", "tcpSocket", "grpc", "exec"] as const).filter((h) => probe[h] !== undefined);
  if (handlers.length !== 1) problems.push(`${kind}: ${handlers.length} handlers`);
  for (const knob of ["periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"] as const) {
    const v = probe[knob];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) problems.push(`${kind}.${knob} = ${v}`);
  }
  if ((probe.initialDelaySeconds ?? 0) < 0) problems.push(`${kind}.initialDelaySeconds < 0`);
  if (kind !== "readiness" && (probe.successThreshold ?? 1) !== 1)
    problems.push(`${kind}.successThreshold must be 1`);
  if (kind === "readiness" && probe.terminationGracePeriodSeconds !== undefined)
    problems.push("readiness cannot set terminationGracePeriodSeconds");
  if (probe.terminationGracePeriodSeconds !== undefined && probe.terminationGracePeriodSeconds < 1)
    problems.push(`${kind} probe grace < 1`);
  if ((probe.timeoutSeconds ?? 1) >= (probe.periodSeconds ?? 10))
    problems.push(`${kind}: timeout not below period`);
  const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
  if (typeof port === "number" && (port < 1 || port > 65535))
    problems.push(`${kind}: port ${port} out of range`);
  if (typeof port === "string" && !container.ports?.some((p) => p.name === port))
    problems.push(`${kind}: port ${port} undeclared`);
  if (probe.grpc && (!Number.isInteger(probe.grpc.port) || probe.grpc.port < 1 || probe.grpc.port > 65535))
    problems.push(`${kind}: gRPC needs a numeric port`);
  if (probe.httpGet && !(probe.httpGet.path ?? "/").startsWith("/"))
    problems.push(`${kind}: path must be absolute`);
  if (probe.httpGet?.host !== undefined || probe.tcpSocket?.host !== undefined)
    problems.push(`${kind}: host set`);
  return problems;
}

function apiProblems(
  fields: OwnedContainerFields,
  grace: number,
  container: Container,
  policy: HealthPolicySpec,
): string[] {
  const problems: string[] = [];
  if (fields.livenessProbe) problems.push(...probeProblems("liveness", fields.livenessProbe, container));
  if (fields.readinessProbe) problems.push(...probeProblems("readiness", fields.readinessProbe, container));
  if (fields.startupProbe) {
    problems.push(...probeProblems("startup", fields.startupProbe, container));
    const max = policy.endpoints.startup?.maxStartupSeconds ?? 0;
    const budget = (fields.startupProbe.failureThreshold ?? 3) * (fields.startupProbe.periodSeconds ?? 10);
    if (policy.timing?.startup?.failureThreshold === undefined && budget < max)
      problems.push(`startup budget ${budget} < ${max}`);
  }
  const sleep = fields.lifecycle?.preStop?.sleep?.seconds;
  if (sleep !== undefined && (sleep < 0 || sleep > grace))
    problems.push(`preStop sleep ${sleep} not within grace ${grace}`);
  if (grace < policy.shutdown.drainSeconds + policy.shutdown.maxInFlightSeconds || grace < 1)
    problems.push(`grace ${grace} too short`);
  return problems;
}

// ---------------------------------------------------------------------------
// Arbitraries: policies as a user would write them, kept only when the schema accepts them.

const portName = fc.constantFrom("http", "grpc", "admin", "metrics", "web-1");
const portRef = fc.oneof(fc.integer({ min: 1, max: 65535 }), portName);
const endpoint = fc.oneof(
  fc.record(
    {
      path: fc.constantFrom("/", "/healthz", "/readyz", "/livez"),
      scheme: fc.constantFrom("HTTP", "HTTPS"),
      port: portRef,
    },
    { requiredKeys: ["path"] },
  ),
  fc.record(
    { grpc: fc.record({ service: fc.constantFrom("", "app.Health") }, { requiredKeys: [] }), port: portRef },
    { requiredKeys: ["grpc"] },
  ),
  fc.record({ tcp: fc.constant({}), port: portRef }, { requiredKeys: ["tcp"] }),
);
const knobs = {
  periodSeconds: fc.integer({ min: 1, max: 120 }),
  timeoutSeconds: fc.integer({ min: 1, max: 30 }),
  failureThreshold: fc.integer({ min: 1, max: 20 }),
  initialDelaySeconds: fc.integer({ min: 0, max: 60 }),
};
const timing = fc.record(
  {
    liveness: fc.record(
      { ...knobs, terminationGracePeriodSeconds: fc.integer({ min: 1, max: 120 }) },
      { requiredKeys: [] },
    ),
    readiness: fc.record(
      { ...knobs, successThreshold: fc.integer({ min: 1, max: 5 }) },
      { requiredKeys: [] },
    ),
    startup: fc.record(knobs, { requiredKeys: [] }),
    objectives: fc.record(
      {
        maxEjectSeconds: fc.integer({ min: 2, max: 600 }),
        maxReadmitSeconds: fc.integer({ min: 1, max: 600 }),
        maxRestartSeconds: fc.integer({ min: 2, max: 1200 }),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
);
const policyInput = fc.record(
  {
    endpoints: fc.record(
      {
        port: portRef,
        liveness: endpoint,
        readiness: endpoint,
        startup: fc
          .tuple(endpoint, fc.integer({ min: 1, max: 3600 }))
          .map(([e, maxStartupSeconds]) => ({ ...e, maxStartupSeconds })),
        deep: fc.constant({ paths: ["/health/deep"] }),
      },
      { requiredKeys: [] },
    ),
    timing,
    shutdown: fc.record({
      drainSeconds: fc.integer({ min: 0, max: 600 }),
      maxInFlightSeconds: fc.integer({ min: 0, max: 3600 }),
    }),
  },
  { requiredKeys: ["endpoints"] },
);
const policyArb = policyInput
  .map((input) => healthPolicySpec.safeParse({ targetRef: { name: "web" }, ...input }))
  .filter((r) => r.success)
  .map((r) => r.data as HealthPolicySpec);

const containerArb = fc
  .uniqueArray(
    fc.record(
      { name: portName, containerPort: fc.integer({ min: 1, max: 65535 }) },
      { requiredKeys: ["containerPort"] },
    ),
    {
      maxLength: 3,
      selector: (p) => p.name ?? `#${p.containerPort}`,
    },
  )
  .chain((ports) =>
    fc.record({
      ports: fc.constant(
        ports.filter((p, i) => ports.findIndex((q) => q.containerPort === p.containerPort) === i),
      ),
      livenessProbe: fc.option(
        fc.constantFrom<Probe>(
          { exec: { command: ["cat", "/tmp/ok"] } },
          { httpGet: { path: "/health/deep", port: 8080 } },
          { tcpSocket: { port: 1 } },
        ),
        { nil: undefined },
      ),
      lifecycle: fc.option(
        fc.constantFrom<Container["lifecycle"]>(
          { preStop: { exec: { command: ["nginx", "-s", "quit"] } } },
          { preStop: { sleep: { seconds: 3 } } },
        ),
        { nil: undefined },
      ),
    }),
  )
  .map(({ ports, livenessProbe, lifecycle }): Container => ({
    name: "app",
    ports,
    ...(livenessProbe ? { livenessProbe } : {}),
    ...(lifecycle ? { lifecycle } : {}),
  }));

describe("desired probes", () => {
  it("property: any valid policy yields fields the API server accepts, for any container", () => {
    fc.assert(
      fc.property(policyArb, containerArb, (policy, container) => {
        const { fields } = desiredContainerFields(policy, container);
        expect(apiProblems(fields, desiredGraceSeconds(policy), container, policy)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it("property: without explicit timing and with feasible objectives, an enforced container has no finding at error or above", () => {
    const feasible = (p: HealthPolicySpec) => {
      const o = p.timing?.objectives;
      const grace = desiredGraceSeconds(p);
      return (
        (o?.maxEjectSeconds ?? 99) >= 7 &&
        (o?.maxReadmitSeconds ?? 99) >= 4 &&
        (o?.maxRestartSeconds ?? 1e9) >= 7 + grace
      );
    };
    fc.assert(
      fc.property(policyArb, containerArb, (policy, container) => {
        const noTiming = {
          ...policy,
          timing: policy.timing?.objectives ? { objectives: policy.timing.objectives } : undefined,
        };
        fc.pre(feasible(noTiming) && (container.ports?.length ?? 0) > 0);
        const template = { spec: { containers: [container] } };
        const { ownedSpec, problems } = desiredOwnedSpec(noTiming, [container]);
        fc.pre(problems.length === 0);
        const merged = mergeOwnedSpecIntoTemplate(template, ownedSpec).spec;
        const [enforced] = merged.containers;
        const findings = runRules({
          container: enforced as Container,
          podSpec: merged,
          workload: { kind: "Deployment", name: "x" },
          policy: noTiming,
        });
        expect(findings.filter((f) => atLeast(f.severity, "error"))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("builds DESIGN.md's example", () => {
    const policy = makePolicy({
      endpoints: {
        port: "http",
        liveness: { path: "/healthz" },
        readiness: { path: "/readyz" },
        startup: { path: "/healthz", maxStartupSeconds: 120 },
      },
      timing: {
        liveness: {
          periodSeconds: 10,
          timeoutSeconds: 1,
          failureThreshold: 3,
          terminationGracePeriodSeconds: 15,
        },
        readiness: { periodSeconds: 5, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 2 },
      },
      shutdown: { drainSeconds: 10, maxInFlightSeconds: 20 },
    });
    const { fields, problems } = desiredContainerFields(policy, makeContainer());
    expect(problems).toEqual([]);
    expect(fields).toEqual({
      name: "web",
      livenessProbe: {
        httpGet: { path: "/healthz", port: "http", scheme: "HTTP" },
        periodSeconds: 10,
        timeoutSeconds: 1,
        successThreshold: 1,
        failureThreshold: 3,
        terminationGracePeriodSeconds: 15,
      },
      readinessProbe: {
        httpGet: { path: "/readyz", port: "http", scheme: "HTTP" },
        periodSeconds: 5,
        timeoutSeconds: 1,
        successThreshold: 2,
        failureThreshold: 3,
      },
      // ceil(120 / 5) = 24
      startupProbe: {
        httpGet: { path: "/healthz", port: "http", scheme: "HTTP" },
        periodSeconds: 5,
        timeoutSeconds: 1,
        successThreshold: 1,
        failureThreshold: 24,
      },
      lifecycle: { preStop: { sleep: { seconds: 10 } } },
    });
    expect(desiredGraceSeconds(policy)).toBe(30);
  });

  it.each([
    { name: "named port declared → kept by name", port: "http", expected: { tcpSocket: { port: "http" } } },
    { name: "numeric port", port: 9090, expected: { tcpSocket: { port: 9090 } } },
  ])("ports: $name", ({ port, expected }) => {
    const { fields } = desiredContainerFields(
      makePolicy({ endpoints: { port, liveness: { tcp: {} } } }),
      makeContainer(),
    );
    expect(fields.livenessProbe).toMatchObject(expected);
  });

  it("gRPC resolves a named port to its number", () => {
    const container = makeContainer(withPorts([{ name: "grpc", containerPort: 9000 }]));
    const { fields } = desiredContainerFields(
      makePolicy({ endpoints: { port: "grpc", readiness: { grpc: { service: "" } } } }),
      container,
    );
    expect(fields.readinessProbe?.grpc).toEqual({ port: 9000 });
  });

  it("an undeclared named port is reported and the probe left alone", () => {
    const { fields, problems } = desiredContainerFields(
      makePolicy({ endpoints: { port: "admin", readiness: { path: "/readyz" } } }),
      makeContainer(),
    );
    expect(fields.readinessProbe).toBeUndefined();
    expect(problems).toEqual([
      { container: "web", probe: "readiness", message: 'port "admin" is not declared by the container' },
    ]);
  });

  it("without a liveness endpoint: keeps a shallow own handler, replaces a deep one with TCP", () => {
    const policy = makePolicy({
      endpoints: { readiness: { path: "/readyz" }, deep: { paths: ["/health/deep"] } },
    });
    expect(desiredContainerFields(policy, makeContainer()).fields.livenessProbe?.httpGet?.path).toBe(
      "/healthz",
    );
    const deep = makeContainer(withLiveness({ httpGet: { path: "/health/deep", port: "http" } }));
    expect(desiredContainerFields(policy, deep).fields.livenessProbe).toMatchObject({
      tcpSocket: { port: "http" },
    });
  });

  it("without declared ports: a probe's numeric port stands for the declared port", () => {
    const noPorts = makeContainer(
      withPorts(undefined),
      withLiveness(httpGet("/healthz", 8080)),
      withReadiness(undefined),
    );
    const { fields, problems } = desiredContainerFields(
      makePolicy({ endpoints: { readiness: { path: "/readyz" } } }),
      noPorts,
    );
    expect(problems).toEqual([]);
    expect(fields.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: 8080, scheme: "HTTP" });
    // Not from a named probe port: a name needs a declaration to resolve.
    const named = makeContainer(withPorts(undefined), withReadiness(undefined));
    expect(
      desiredContainerFields(makePolicy({ endpoints: { readiness: { path: "/readyz" } } }), named).problems,
    ).toContainEqual({
      container: "web",
      probe: "readiness",
      message: "no port: set spec.endpoints.port or declare a port on the container",
    });
  });

  describe("a policy without spec.endpoints (one policy for a whole namespace)", () => {
    const noEndpoints = healthPolicySpec.parse({
      selector: { matchExpressions: [{ key: "app", operator: "Exists" }] },
      mode: "Enforce",
      timing: { objectives: { maxEjectSeconds: 20, maxRestartSeconds: 60 } },
      shutdown: { drainSeconds: 7, maxInFlightSeconds: 20 },
    });

    it("parses, with endpoints defaulted to {}", () => {
      expect(noEndpoints.endpoints).toEqual({});
    });

    const rows: { name: string; liveness: Probe; readiness: Probe; ports?: Container["ports"] }[] = [
      {
        name: "HTTP on a named port",
        liveness: httpGet("/livez", "http", { periodSeconds: 30, failureThreshold: 1 }),
        readiness: httpGet("/ready", "http", { periodSeconds: 30 }),
      },
      {
        name: "exec and gRPC",
        liveness: { exec: { command: ["/bin/check", "--local"] }, timeoutSeconds: 9, periodSeconds: 20 },
        readiness: { grpc: { port: 9000, service: "ready" } },
      },
      {
        name: "TCP on a number, no ports declared",
        liveness: { tcpSocket: { port: 8080 } },
        readiness: httpGet("/ready", 8080),
        ports: undefined,
      },
    ];
    it.each(rows)("keeps each container's own handlers ($name), fixing timing, drain and grace", (row) => {
      const container = makeContainer(
        withLiveness(row.liveness),
        withReadiness(row.readiness),
        ...("ports" in row ? [withPorts(row.ports)] : []),
      );
      const { fields, problems } = desiredContainerFields(noEndpoints, container);
      expect(problems).toEqual([]);
      const handler = (p: Probe | undefined) => ({
        httpGet: p?.httpGet,
        tcpSocket: p?.tcpSocket,
        grpc: p?.grpc,
        exec: p?.exec,
      });
      const { httpGet: _h, ...ownLiveness } = handler(row.liveness);
      expect(handler(fields.livenessProbe)).toMatchObject(
        row.liveness.httpGet
          ? { ...ownLiveness, httpGet: { ...row.liveness.httpGet, scheme: "HTTP" } }
          : ownLiveness,
      );
      expect(fields.readinessProbe?.httpGet?.path ?? fields.readinessProbe?.grpc?.service).toBe(
        row.readiness.httpGet?.path ?? row.readiness.grpc?.service,
      );
      // Timing from the objectives: eject ≤ 20 s, restart ≤ 60 s with grace 27 s.
      expect(fields.readinessProbe).toMatchObject({
        periodSeconds: 6,
        timeoutSeconds: 1,
        failureThreshold: 3,
        successThreshold: 2,
      });
      expect(fields.livenessProbe).toMatchObject({
        periodSeconds: 10,
        timeoutSeconds: 1,
        failureThreshold: 3,
      });
      expect(fields.lifecycle).toEqual({ preStop: { sleep: { seconds: 7 } } });
      expect(desiredOwnedSpec(noEndpoints, [container]).ownedSpec.terminationGracePeriodSeconds).toBe(27);
    });

    it("replaces only a deep own handler, with a TCP check on the served port", () => {
      const container = makeContainer(withLiveness(exec("redis-cli", "-h", "redis-master", "ping")));
      expect(desiredContainerFields(noEndpoints, container).fields.livenessProbe).toMatchObject({
        tcpSocket: { port: "http" },
      });
    });

    it("leaves an own startup probe as it is (not owned), and adds none", () => {
      const slow = makeContainer(
        withStartup(httpGet("/healthz", "http", { periodSeconds: 10, failureThreshold: 30 })),
      );
      expect(desiredContainerFields(noEndpoints, slow).fields.startupProbe).toBeUndefined();
      expect(desiredContainerFields(noEndpoints, makeContainer()).fields.startupProbe).toBeUndefined();
      const template = mergeOwnedSpecIntoTemplate(
        { spec: { containers: [slow] } },
        desiredOwnedSpec(noEndpoints, [slow]).ownedSpec,
      );
      expect(template.spec.containers[0]?.startupProbe).toEqual(slow.startupProbe);
    });

    it("the enforced template has no finding at error or above", () => {
      const container = makeContainer(
        withLiveness(httpGet("/livez", "http", { failureThreshold: 1 })),
        withReadiness(httpGet("/ready", "http", { periodSeconds: 30 })),
      );
      const owned = desiredOwnedSpec(noEndpoints, [container]).ownedSpec;
      const template = mergeOwnedSpecIntoTemplate({ spec: { containers: [container] } }, owned);
      const findings = runRules({
        container: template.spec.containers[0]!,
        podSpec: template.spec,
        workload: { kind: "Deployment", name: "web" },
        policy: noEndpoints,
      });
      expect(findings.filter((f) => atLeast(f.severity, "warning"))).toEqual([]);
    });
  });

  it("leaves a foreign preStop hook alone (two handlers would be invalid)", () => {
    const container = makeContainer((c) => ({
      ...c,
      lifecycle: { preStop: { exec: { command: ["nginx", "-s", "quit"] } } },
    }));
    expect(desiredContainerFields(makePolicy(), container).fields.lifecycle).toBeUndefined();
  });

  it("drain 0 owns no preStop; grace never drops below 1", () => {
    const policy = makePolicy({ shutdown: { drainSeconds: 0, maxInFlightSeconds: 0 } });
    expect(desiredContainerFields(policy, makeContainer()).fields.lifecycle).toBeUndefined();
    expect(desiredGraceSeconds(policy)).toBe(1);
  });
});
