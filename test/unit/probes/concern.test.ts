import { describe, expect, it } from "vitest";
import type { Container, Deployment, PodTemplateSpec } from "../../../src/api/k8s.ts";
import { healthPolicy, type HealthPolicySpecInput } from "../../../src/api/v1alpha1/index.ts";
import { withProbeDefaults } from "../../../src/policy/probes/defaults.ts";
import {
  conflictingHandlers,
  findingProblem,
  mergeOwnedSpecIntoTemplate,
  ownedFieldsDiffer,
  probesConcern,
} from "../../../src/policy/probes/concern.ts";
import type { TargetSnapshot } from "../../../src/policy/seam.ts";
import {
  exec,
  httpGet,
  makeContainer,
  patchLiveness,
  withLifecycle,
  withLiveness,
  withName,
  withPorts,
  withReadiness,
  makePolicy,
} from "./build.ts";
import { governedContainers } from "../../../src/policy/probes/index.ts";

function makeSnapshot(
  spec: Partial<HealthPolicySpecInput>,
  containers: Container[],
  pod: Partial<PodTemplateSpec["spec"]> = {},
): TargetSnapshot {
  const policy = healthPolicy.parse({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "web", namespace: "shop" },
    spec: { selector: { matchLabels: { app: "web" } }, endpoints: {}, ...spec },
  });
  const deployment: Deployment = {
    metadata: { name: "web", namespace: "shop", labels: { app: "web" } },
    spec: {
      selector: { matchLabels: { app: "web" } },
      template: { metadata: { labels: { app: "web" } }, spec: { containers, ...pod } },
    },
  };
  return {
    policy,
    deployment,
    replicaSets: [],
    pods: [],
    pdbs: [],
    nodeZones: {},
    now: new Date("2026-01-01T00:00:00Z"),
  };
}

const enforce: Partial<HealthPolicySpecInput> = {
  mode: "Enforce",
  endpoints: {
    port: "http",
    liveness: { path: "/healthz" },
    readiness: { path: "/readyz" },
    deep: { paths: ["/health/deep"] },
  },
  timing: { liveness: { terminationGracePeriodSeconds: 15 } },
};

/** What the API server stores after an apply: probe defaults filled in, zero initial delays dropped. */
function asStored(template: PodTemplateSpec): PodTemplateSpec {
  const store = (p: Container["livenessProbe"]) => {
    if (!p) return p;
    const { initialDelaySeconds, ...rest } = withProbeDefaults(p);
    return initialDelaySeconds ? { ...rest, initialDelaySeconds } : rest;
  };
  return {
    ...template,
    spec: {
      ...template.spec,
      containers: template.spec.containers.map((c) => ({
        ...c,
        livenessProbe: store(c.livenessProbe),
        readinessProbe: store(c.readinessProbe),
        startupProbe: store(c.startupProbe),
      })),
    },
  };
}

const condition = (snapshot: TargetSnapshot, type: string) =>
  probesConcern(snapshot).conditions.find((c) => c.type === type);

describe("probesConcern in Audit mode", () => {
  const deep = makeSnapshot({ endpoints: { deep: { paths: ["/health/deep"] } } }, [
    makeContainer(withLiveness(httpGet("/health/deep"))),
  ]);

  it("reports a deep liveness: findings, both conditions False, a Warning event, no owned spec", () => {
    const result = probesConcern(deep);
    expect(result.ownedSpec).toBeUndefined();
    expect(result.findings[0]).toMatchObject({
      rule: "LivenessDeep",
      severity: "critical",
      container: "web",
      field: "livenessProbe.httpGet.path",
    });
    expect(condition(deep, "ProbesCompliant")).toMatchObject({ status: "False", reason: "FindingsAtError" });
    expect(condition(deep, "ProbesCompliant")?.message).toContain("web: LivenessDeep (critical)");
    expect(condition(deep, "LivenessShallow")).toMatchObject({ status: "False", reason: "LivenessDeep" });
    expect(condition(deep, "LivenessShallow")?.message).toContain(
      "container web: liveness (GET :http/health/deep) reaches path /health/deep",
    );
    expect(result.events).toEqual([
      expect.objectContaining({ regarding: "Deployment", type: "Warning", reason: "LivenessDeep" }),
    ]);
  });

  it("a compliant Deployment: ProbesCompliant True (Compliant), LivenessShallow True (Shallow), figures", () => {
    const ok = makeSnapshot({}, [makeContainer(patchLiveness({ terminationGracePeriodSeconds: 15 }))]);
    const result = probesConcern(ok);
    expect(condition(ok, "ProbesCompliant")).toMatchObject({ status: "True", reason: "Compliant" });
    expect(condition(ok, "LivenessShallow")).toMatchObject({ status: "True", reason: "Shallow" });
    expect(result.figures.detection).toEqual([
      { container: "web", ejectSeconds: 16, readmitSeconds: 10, restartSeconds: 46 },
    ]);
    expect(result.events).toEqual([]);
  });

  it("governs every container declaring a port by default, and spec.containers when set", () => {
    const sidecar = makeContainer(
      withName("sidecar"),
      withPorts(undefined),
      withLiveness(undefined),
      withReadiness(undefined),
    );
    expect(
      probesConcern(makeSnapshot({}, [makeContainer(), sidecar])).figures.detection?.map((d) => d.container),
    ).toEqual(["web"]);
    const listed = probesConcern(makeSnapshot({ containers: ["sidecar"] }, [makeContainer(), sidecar]));
    expect(listed.findings.map((f) => f.container)).toContain("sidecar");
  });

  it("GovernedContainerMissing names the container", () => {
    const result = probesConcern(makeSnapshot({ containers: ["web", "api"] }, [makeContainer()]));
    expect(result.findings).toContainEqual(
      expect.objectContaining({ rule: "GovernedContainerMissing", container: "api", severity: "error" }),
    );
  });

  // `ports` is informational: a container with a probe serves something and is governed.
  it.each([
    { name: "declares a port", container: makeContainer(), governed: true },
    {
      name: "no ports, identical liveness and readiness (Istio's Jaeger sample)",
      container: makeContainer(
        withPorts(undefined),
        withLiveness(httpGet("/", 14269)),
        withReadiness(httpGet("/", 14269)),
      ),
      governed: true,
    },
    {
      name: "no ports, only a startup probe",
      container: makeContainer(
        withPorts(undefined),
        withLiveness(undefined),
        withReadiness(undefined),
        (c) => ({ ...c, startupProbe: exec("true") }),
      ),
      governed: true,
    },
    {
      name: "no ports, no probe (a worker)",
      container: makeContainer(withPorts(undefined), withLiveness(undefined), withReadiness(undefined)),
      governed: false,
    },
    {
      name: "empty ports, no probe",
      container: makeContainer(withPorts([]), withLiveness(undefined), withReadiness(undefined)),
      governed: false,
    },
  ])("governed by default: $name → $governed", ({ container, governed }) => {
    expect(governedContainers(makePolicy(), { containers: [container] }).length).toBe(governed ? 1 : 0);
  });

  it("a container without ports but with probes is audited: identical probes are reported", () => {
    const jaeger = makeContainer(
      withPorts(undefined),
      withLiveness(httpGet("/", 14269)),
      withReadiness(httpGet("/", 14269)),
    );
    expect(probesConcern(makeSnapshot({}, [jaeger])).findings.map((f) => f.rule)).toContain(
      "LivenessSameAsReadiness",
    );
  });

  it("no governed container: both conditions Unknown", () => {
    const snapshot = makeSnapshot({}, [
      makeContainer(withPorts(undefined), withLiveness(undefined), withReadiness(undefined)),
    ]);
    expect(condition(snapshot, "ProbesCompliant")).toMatchObject({
      status: "Unknown",
      reason: "NoGovernedContainers",
    });
    expect(condition(snapshot, "LivenessShallow")).toMatchObject({ status: "Unknown" });
  });

  it("findingProblem strips the rationale and fix", () => {
    expect(findingProblem(probesConcern(deep).findings[0]!)).toBe(
      "liveness (GET :http/health/deep) reaches path /health/deep (spec.endpoints.deep.paths)",
    );
  });
});

describe("probesConcern in Enforce mode", () => {
  const messy = [
    makeContainer(withLiveness(httpGet("/health/deep")), withReadiness(undefined), withLifecycle(undefined)),
    makeContainer(
      withName("api"),
      withPorts([{ name: "http", containerPort: 9000 }]),
      withLiveness(exec("redis-cli", "-h", "cache", "ping")),
    ),
  ];

  it("owns the complete set for every governed container and audits the live template", () => {
    const snapshot = makeSnapshot(enforce, messy);
    const result = probesConcern(snapshot);
    expect(result.ownedSpec?.terminationGracePeriodSeconds).toBe(25);
    expect(result.ownedSpec?.containers.map((c) => c.name)).toEqual(["web", "api"]);
    for (const c of result.ownedSpec?.containers ?? []) {
      expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
      expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(c.lifecycle).toEqual({ preStop: { sleep: { seconds: 5 } } });
    }
    // Enforce's fields arrive at admission: until the template carries them, status says what is there.
    expect(condition(snapshot, "ProbesCompliant")).toMatchObject({
      status: "False",
      reason: "FindingsAtError",
    });
    expect(condition(snapshot, "LivenessShallow")).toMatchObject({ status: "False", reason: "LivenessDeep" });
    expect(result.events.filter((e) => e.type === "Normal").map((e) => e.reason)).toEqual([
      "LivenessDeepReplaced",
      "LivenessDeepReplaced",
    ]);
  });

  it("a second reconcile of the applied Deployment makes zero writes and reports the same", () => {
    const first = probesConcern(makeSnapshot(enforce, messy));
    const owned = first.ownedSpec!;
    const before = makeSnapshot(enforce, messy).deployment.spec.template;
    expect(ownedFieldsDiffer(before, owned)).toBe(true);

    const applied = asStored(mergeOwnedSpecIntoTemplate(before, owned));
    expect(ownedFieldsDiffer(applied, owned)).toBe(false);

    const second = probesConcern(
      makeSnapshot(enforce, applied.spec.containers, {
        terminationGracePeriodSeconds: applied.spec.terminationGracePeriodSeconds,
      }),
    );
    expect(second.ownedSpec).toEqual(owned);
    expect(ownedFieldsDiffer(applied, second.ownedSpec!)).toBe(false);
    expect(second.conditions.map((c) => [c.type, c.status])).toEqual([
      ["ProbesCompliant", "True"],
      ["LivenessShallow", "True"],
    ]);
    expect(first.conditions.find((c) => c.type === "ProbesCompliant")?.status).toBe("False");
    expect(second.events).toEqual([]);
  });

  it("fields other managers own stay in the merge and do not cause writes", () => {
    const owned = probesConcern(makeSnapshot(enforce, [makeContainer()])).ownedSpec!;
    const withForeign = mergeOwnedSpecIntoTemplate(
      { spec: { containers: [makeContainer(patchLiveness({ initialDelaySeconds: 30 }))] } },
      owned,
    );
    expect(withForeign.spec.containers[0]?.livenessProbe?.initialDelaySeconds).toBe(30);
    expect(ownedFieldsDiffer(asStored(withForeign), owned)).toBe(false);
  });

  it("a live handler of another kind is a conflict the writer must remove", () => {
    const template: PodTemplateSpec = {
      spec: { containers: [makeContainer(withLiveness(exec("cat", "/tmp/ok")))] },
    };
    const owned = probesConcern(makeSnapshot(enforce, template.spec.containers)).ownedSpec!;
    expect(conflictingHandlers(template, owned)).toEqual([{ container: "web", field: "livenessProbe.exec" }]);
    expect(
      mergeOwnedSpecIntoTemplate(template, owned).spec.containers[0]?.livenessProbe?.exec,
    ).toBeUndefined();
    expect(ownedFieldsDiffer(template, owned)).toBe(true);
  });

  it("a policy port the container does not declare: PolicyPortUnresolved, probe not owned", () => {
    const snapshot = makeSnapshot(
      { ...enforce, endpoints: { port: "admin", readiness: { path: "/readyz" } } },
      [makeContainer()],
    );
    const result = probesConcern(snapshot);
    expect(result.findings).toContainEqual(
      expect.objectContaining({ rule: "PolicyPortUnresolved", container: "web", field: "readinessProbe" }),
    );
    expect(result.ownedSpec?.containers[0]?.readinessProbe).toBeUndefined();
    expect(condition(snapshot, "ProbesCompliant")).toMatchObject({ status: "False" });
  });

  it("detects a changed desired value", () => {
    const owned = probesConcern(makeSnapshot(enforce, [makeContainer()])).ownedSpec!;
    const applied = asStored(mergeOwnedSpecIntoTemplate({ spec: { containers: [makeContainer()] } }, owned));
    const changed = {
      ...owned,
      containers: owned.containers.map((c) => ({
        ...c,
        readinessProbe: { ...c.readinessProbe, periodSeconds: 7 },
      })),
    };
    expect(ownedFieldsDiffer(applied, changed)).toBe(true);
    expect(ownedFieldsDiffer(applied, { ...owned, terminationGracePeriodSeconds: 60 })).toBe(true);
  });
});
