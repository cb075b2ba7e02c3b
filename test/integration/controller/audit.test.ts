// Audit mode: healthgate reports and never changes a Deployment's spec. What it finds lands in
// the policy's status and, as `healthgate.io/…` conditions, in the Deployment's status, where
// `kubectl describe deploy` shows them and `kubectl wait --for=condition=…` waits on them.
import { beforeAll, describe, expect, it } from "vitest";
import { makeDeployment, withProbe, withReplicas } from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  apiRequests,
  deploymentCondition,
  installCrd,
  jsonPatch,
  kubectl,
  makePolicy,
  readDeployment,
  readPolicy,
  reconciles,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
  waitForPolicyCondition,
  waitForRolloutComplete,
  waitUntilIdle,
  withDeepPaths,
} from "./support.ts";

beforeAll(() => installCrd());

describe("Audit", () => {
  const hg = useControllerHarness();

  it("reports findings in status and conditions and never touches the Deployment's spec", async () => {
    // Given a Deployment without probes and an Audit policy selecting it
    await hg.apply(makeDeployment("web", withReplicas(2)));
    const before = await waitForRolloutComplete(hg.namespace, "web");
    await hg.createPolicy(makePolicy("web"));

    // When healthgate runs
    await hg.startOperator();

    // Then `kubectl wait --for=condition=healthgate.io/ProbesCompliant=False` returns (the README's claim)
    await kubectl([
      "wait",
      "-n",
      hg.namespace,
      "--for=condition=healthgate.io/ProbesCompliant=False",
      "--timeout=60s",
      "deploy/web",
    ]);
    // and `kubectl describe deploy` shows healthgate's conditions beside the controller's
    const described = await kubectl(["describe", "deploy", "-n", hg.namespace, "web"]);
    expect(described).toMatch(/healthgate\.io\/ProbesCompliant\s+False\s+FindingsAtError/);
    expect(described).toMatch(/healthgate\.io\/LivenessShallow\s+/);
    expect(described).toMatch(/Available\s+True/);

    // and the policy's status lists the findings for the Deployment
    const policy = await waitForPolicyCondition(hg.namespace, "web", "ProbesCompliant", {
      status: "False",
      reason: "FindingsAtError",
    });
    const target = policy.status?.targets?.find((t) => t.name === "web");
    expect(target?.governed).toBe(true);
    const rules = (target?.findings ?? []).map((f) => `${f.rule}/${f.container}`);
    expect(rules.length, JSON.stringify(target?.findings, null, 2)).toBeGreaterThan(0);
    expect(target?.findings?.every((f) => f.message.length > 0)).toBe(true);
    expect(policy.status?.compliantCount).toBe(0);
    expect(policy.status?.targetCount).toBe(1);
    await waitForPolicyCondition(hg.namespace, "web", "Ready", { status: "True" });

    // and the Deployment's spec is exactly as the user wrote it: same generation, same template
    await waitUntilIdle(hg.operator, 2);
    const after = await readDeployment(hg.namespace, "web");
    expect(after.metadata!.generation).toBe(before.metadata!.generation);
    expect(after.spec!.template).toEqual(before.spec!.template);
    expect(await apiRequests(hg.operator, { verb: "apply", resource: "deployments" })).toBe(0);
    // and healthgate owns only status conditions, under its status field manager
    const managers = (after.metadata!.managedFields ?? []).filter((m) => m.manager?.startsWith("healthgate"));
    expect(managers.map((m) => `${m.manager} ${m.operation} ${m.subresource ?? ""}`.trim())).toEqual([
      "healthgate-status Apply status",
    ]);
    await hg.expectSecondReconcileWritesNothing();
  });

  it("flags a liveness probe that reaches a declared deep path, on both objects, with an Event", async () => {
    // Given a Deployment whose liveness probe calls the deep endpoint the policy declares
    await hg.apply(
      makeDeployment(
        "web",
        withProbe("web", "liveness", { httpGet: { path: "/health/deep", port: "http" }, periodSeconds: 10 }),
        withProbe("web", "readiness", { httpGet: { path: "/readyz", port: "http" }, successThreshold: 2 }),
      ),
    );
    await hg.createPolicy(makePolicy("web", withDeepPaths("/health/deep")));

    // When healthgate runs
    await hg.startOperator();

    // Then LivenessShallow=False with reason LivenessDeep, on the Deployment and on the policy
    const deep = {
      status: "False",
      reason: "LivenessDeep",
      message: ["/health/deep", "container web"],
    } as const;
    await waitForDeploymentCondition(hg.namespace, "web", "LivenessShallow", deep);
    await waitForPolicyCondition(hg.namespace, "web", "LivenessShallow", deep);
    const policy = await readPolicy(hg.namespace, "web");
    const finding = policy.status?.targets?.[0]?.findings?.find((f) => f.rule === "LivenessDeep");
    expect(finding).toMatchObject({ severity: "critical", container: "web" });

    // and the flip is recorded as a Warning Event (events.k8s.io) about the Deployment
    const event = await waitForEvent(hg.namespace, {
      type: "Warning",
      reason: "LivenessDeep",
      regardingKind: "Deployment",
      regardingName: "web",
      noteContains: "healthgate.io/LivenessShallow=False",
    });
    expect(event.reportingController).toBe("healthgate.io/healthgate");

    // and /metrics counts the finding by rule (computed from the cached policy status)
    await waitFor(
      async () => {
        const text = await hg.operator.metrics.registry.metrics();
        expect(text).toContain('healthgate_findings{rule="LivenessDeep",severity="critical"} 1');
        return true;
      },
      { what: "healthgate_findings to count the LivenessDeep finding" },
    );

    // When the user points liveness at the shallow endpoint
    const firstFlip = deploymentCondition(await readDeployment(hg.namespace, "web"), "LivenessShallow");
    await hg.apply(
      makeDeployment(
        "web",
        withProbe("web", "liveness", { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 10 }),
        withProbe("web", "readiness", { httpGet: { path: "/readyz", port: "http" }, successThreshold: 2 }),
      ),
    );

    // Then the condition flips back, with a Normal Event
    const fixed = await waitForDeploymentCondition(hg.namespace, "web", "LivenessShallow", {
      status: "True",
      reason: "Shallow",
    });
    await waitForPolicyCondition(hg.namespace, "web", "LivenessShallow", {
      status: "True",
      reason: "Shallow",
    });
    await waitForEvent(hg.namespace, {
      type: "Normal",
      regardingKind: "Deployment",
      regardingName: "web",
      noteContains: "healthgate.io/LivenessShallow=True",
    });
    expect(
      deploymentCondition(fixed, "LivenessShallow")!.lastTransitionTime!.getTime(),
    ).toBeGreaterThanOrEqual(firstFlip!.lastTransitionTime!.getTime());
    await waitFor(
      async () => {
        const findings = (await readPolicy(hg.namespace, "web")).status?.targets?.[0]?.findings ?? [];
        return findings.every((f) => f.rule !== "LivenessDeep");
      },
      { what: "the LivenessDeep finding to leave the policy's status" },
    );
    await hg.expectSecondReconcileWritesNothing();
  });

  it("one policy without endpoints audits every Deployment of the namespace by each container's own probes", async () => {
    // Given three Deployments, each with its own ports and paths
    await hg.apply(
      makeDeployment(
        "web",
        withProbe("web", "liveness", { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 10 }),
        withProbe("web", "readiness", {
          httpGet: { path: "/readyz", port: "http" },
          periodSeconds: 5,
          successThreshold: 2,
        }),
      ),
    );
    // a container that declares no port but has identical liveness and readiness (Istio's Jaeger sample)
    const tracing = makeDeployment(
      "tracing",
      withProbe("tracing", "liveness", { httpGet: { path: "/", port: 14269 } }),
      withProbe("tracing", "readiness", { httpGet: { path: "/", port: 14269 } }),
    );
    delete tracing.spec!.template.spec!.containers[0]!.ports;
    await hg.apply(tracing);
    // and one whose liveness path looks deep
    await hg.apply(
      makeDeployment(
        "orders",
        withProbe("orders", "liveness", {
          httpGet: { path: "/health/deep", port: "http" },
          periodSeconds: 10,
        }),
        withProbe("orders", "readiness", { httpGet: { path: "/readyz", port: "http" }, successThreshold: 2 }),
      ),
    );
    // and ONE Audit policy over the namespace, with no endpoints at all
    const namespaceWide = makePolicy("namespace-wide");
    namespaceWide.spec.selector = { matchExpressions: [{ key: "app", operator: "Exists" }] };
    delete namespaceWide.spec.endpoints;
    await hg.createPolicy(namespaceWide);

    // When healthgate runs
    await hg.startOperator();

    // Then the API server accepted it and defaulted endpoints to {}, and every Deployment is a governed target
    const policy = await waitFor(
      async () => {
        const p = await readPolicy(hg.namespace, "namespace-wide");
        return (p.status?.targets ?? []).length === 3 ? p : undefined;
      },
      { what: "the namespace-wide policy to report its three targets" },
    );
    expect(policy.spec.endpoints).toEqual({});
    const targets = Object.fromEntries((policy.status?.targets ?? []).map((t) => [t.name, t]));
    expect(Object.keys(targets).sort()).toEqual(["orders", "tracing", "web"]);
    expect(Object.values(targets).every((t) => t.governed)).toBe(true);
    const rules = (name: string) => (targets[name]?.findings ?? []).map((f) => `${f.rule}/${f.severity}`);
    // judged by the defaults lint uses: the port-less container is governed, the deep-looking path a warning
    expect(rules("tracing")).toContain("LivenessSameAsReadiness/warning");
    expect(rules("orders")).toContain("LivenessSuspectedDeep/warning");
    expect(rules("web").filter((r) => !r.endsWith("/info") && !r.startsWith("Drain"))).toEqual([]);
    // and on each Deployment, from the live object
    await waitForDeploymentCondition(hg.namespace, "orders", "LivenessShallow", {
      status: "True",
      reason: "SuspectedDeep",
    });
    await waitForDeploymentCondition(hg.namespace, "tracing", "ProbesCompliant", {
      status: "True",
      reason: "Compliant",
    });
  });

  it("restores conditions a user deletes, and lets its own writes coming back go by", async () => {
    // Given an audited Deployment carrying healthgate's conditions, and a quiet operator
    await hg.apply(makeDeployment("web", withReplicas(1)));
    await waitForRolloutComplete(hg.namespace, "web");
    await hg.createPolicy(makePolicy("web"));
    await hg.startOperator();
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "False" });
    await waitUntilIdle(hg.operator, 2);
    const before = await reconciles(hg.operator);

    // When a user removes every healthgate.io/ condition from the Deployment's status
    const current = await readDeployment(hg.namespace, "web");
    const ours = (current.status?.conditions ?? []).flatMap((c, i) =>
      c.type.startsWith("healthgate.io/") ? [i] : [],
    );
    expect(ours.length).toBeGreaterThan(0);
    await testClients().apps.patchNamespacedDeploymentStatus(
      {
        namespace: hg.namespace,
        name: "web",
        body: ours.reverse().map((i) => ({ op: "remove", path: `/status/conditions/${i}` })),
      },
      jsonPatch,
    );

    // Then healthgate puts them back
    await waitForDeploymentCondition(hg.namespace, "web", "ProbesCompliant", { status: "False" });
    await waitForDeploymentCondition(hg.namespace, "web", "LivenessShallow", { status: "True" });
    // with two reconciles: the Deployment (which writes) and its policy (nothing to write);
    // its own write coming back costs none
    await waitUntilIdle(hg.operator, before + 2);
    expect(await reconciles(hg.operator)).toBe(before + 2);
  });
});
