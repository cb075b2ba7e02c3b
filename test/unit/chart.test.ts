// The Helm chart, rendered by a real helm (v4, from hack/ensure-helm.sh) and
// checked object by object: least-privilege RBAC without wildcards, operator
// probes that obey healthgate's own rules, a locked-down security context, and
// a values schema that refuses bad input with a message naming the value.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import type { PodSpec as K8sPodSpec } from "../../src/api/k8s.ts";
import { healthPolicySpec, parseHealthPolicy } from "../../src/api/v1alpha1/index.ts";
import { parseRunConfig } from "../../src/cli/config.ts";
import { lint } from "../../src/cli/lint.ts";
import { auditPodSpec } from "../../src/policy/probes/index.ts";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../..", import.meta.url));
const chart = join(repo, "charts/healthgate");
const release = { name: "hg", namespace: "healthgate-system" };

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}
interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
  successThreshold?: number;
}

let helm = "";
let scratch = "";

async function helmRun(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(helm, args, { cwd: repo, maxBuffer: 64 << 20 });
    return { ok: true, stdout, stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

let valuesFiles = 0;
function valuesArgs(values: Record<string, unknown>): string[] {
  const file = join(scratch, `values-${valuesFiles++}.yaml`);
  writeFileSync(file, stringify(values));
  return ["--values", file];
}

async function template(values: Record<string, unknown> = {}) {
  return helmRun(["template", release.name, chart, "--namespace", release.namespace, ...valuesArgs(values)]);
}

async function render(values: Record<string, unknown> = {}): Promise<K8sObject[]> {
  const result = await template(values);
  if (!result.ok) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((doc) => {
      if (doc.errors.length > 0)
        throw new Error(`helm template rendered invalid YAML: ${doc.errors[0]?.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

function find(objects: K8sObject[], kind: string, name?: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}
function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = find(objects, kind, name);
  expect(found, `exactly one ${kind}${name ? ` ${name}` : ""}`).toHaveLength(1);
  return found[0]!;
}

// Every optional feature of the chart switched on at once.
const allFeatures = {
  watchNamespaces: ["shop"],
  serviceMonitor: { enabled: true, labels: { release: "prometheus" } },
  networkPolicy: {
    enabled: true,
    metricsFrom: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
  },
  image: { repository: "registry.example/healthgate", digest: `sha256:${"a".repeat(64)}` },
  imagePullSecrets: [{ name: "regcred" }],
  priorityClassName: "system-cluster-critical",
  podAnnotations: { "example.com/team": "platform" },
  commonLabels: { "example.com/owner": "platform" },
  spread: { nodes: "DoNotSchedule", zones: "ScheduleAnyway", podAntiAffinity: "hard" },
  leaderElection: { enabled: true, id: "healthgate-shop", namespace: "kube-system" },
  extraArgs: ["--example=1"],
  extraEnv: [{ name: "EXAMPLE", value: "1" }],
};

const ruleKinds = ["ClusterRole", "Role"];

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "healthgate-chart-"));
  // A cold install builds helm from the Go module proxy (~2 minutes); later runs reuse the cache.
  const { stdout } = await run("bash", [join(repo, "hack/ensure-helm.sh")], { maxBuffer: 16 << 20 });
  helm = stdout.trim().split("\n").pop()!;
}, 600_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("helm lint", () => {
  it.each([
    ["default values", {}],
    ["every optional feature on", allFeatures],
  ])("passes --strict with %s", async (_name, values) => {
    const result = await helmRun(["lint", "--strict", chart, ...valuesArgs(values)]);
    expect(result.stderr + result.stdout).toContain("0 chart(s) failed");
    expect(result.ok).toBe(true);
  });
});

describe("rendering", () => {
  it("renders the operator objects with default values", async () => {
    const objects = await render();
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of [
      "Deployment",
      "ServiceAccount",
      "ClusterRole",
      "ClusterRoleBinding",
      "Role",
      "RoleBinding",
      "Service",
      "PodDisruptionBudget",
    ]) {
      expect(kinds, kind).toContain(kind);
    }
    expect(kinds).not.toContain("ServiceMonitor");
    expect(kinds).not.toContain("NetworkPolicy");
    for (const o of objects) {
      expect(o.metadata.labels?.["app.kubernetes.io/managed-by"], `${o.kind} ${o.metadata.name}`).toBe(
        "Helm",
      );
    }
  });

  it("renders every optional feature", async () => {
    const objects = await render(allFeatures);
    const monitor = one(objects, "ServiceMonitor");
    expect(monitor.metadata.labels?.release).toBe("prometheus");
    expect(monitor.spec).toMatchObject({ endpoints: [{ port: "http-metrics", path: "/metrics" }] });
    const policy = one(objects, "NetworkPolicy");
    expect(policy.spec).toMatchObject({
      policyTypes: ["Ingress"],
      ingress: [
        { ports: [{ port: "http-metrics" }], from: allFeatures.networkPolicy.metricsFrom },
        // The gate webhook admits any source by default: a managed control plane's address is unknown.
        { ports: [{ port: "webhook" }] },
      ],
    });
    expect((policy.spec as { ingress: object[] }).ingress[1]).not.toHaveProperty("from");
    const pod = podSpec(objects);
    expect(pod.containers[0]!.image).toBe(`registry.example/healthgate@sha256:${"a".repeat(64)}`);
    expect(pod.containers[0]!.args).toContain("--namespaces=shop");
    expect(pod.containers[0]!.args).toContain("--leader-election-namespace=kube-system");
    expect(pod.affinity).toHaveProperty("podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution");
    expect(one(objects, "Role", "hg-healthgate-leader-election").metadata.namespace).toBe("kube-system");
  });

  it("defaults the image tag to the chart's appVersion", async () => {
    const pod = podSpec(await render());
    expect(pod.containers[0]!.image).toBe("healthgate:0.1.0");
    expect(pod.containers[0]!.imagePullPolicy).toBe("IfNotPresent");
  });

  it("gates the CRD on crds.enabled and keeps it on uninstall with crds.keep", async () => {
    const crd = find(await render(), "CustomResourceDefinition", "healthpolicies.healthgate.io");
    expect(crd).toHaveLength(1);
    expect(crd[0]!.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    const dropped = find(await render({ crds: { keep: false } }), "CustomResourceDefinition");
    expect(dropped[0]!.metadata.annotations?.["helm.sh/resource-policy"]).toBeUndefined();
    expect(find(await render({ crds: { enabled: false } }), "CustomResourceDefinition")).toHaveLength(0);
  });
});

describe("NOTES.txt", () => {
  it("tells the user what to do next, with an example policy that is valid", async () => {
    const result = await helmRun([
      "install",
      release.name,
      chart,
      "--namespace",
      release.namespace,
      "--dry-run=client",
    ]);
    expect(result.ok, result.stderr).toBe(true);
    const notes = result.stdout.slice(result.stdout.indexOf("NOTES:"));
    for (const next of [
      "rollout status deploy/hg-healthgate",
      "kubectl get hpol",
      "kubectl describe deploy",
    ]) {
      expect(notes).toContain(next);
    }
    const example = /cat <<'YAML' \| kubectl apply -f -\n([\s\S]*?)\n\s*YAML\n/.exec(notes)?.[1];
    expect(example, "the heredoc with the example HealthPolicy").toBeDefined();
    const parsed = parseHealthPolicy(parse(example!.replace(/^ {5}/gm, "")));
    expect(parsed).toMatchObject({ ok: true, policy: { kind: "HealthPolicy", spec: { mode: "Audit" } } });
  });
});

describe("the gate webhook", () => {
  it("registers Pod CREATE, fail-open, scoped by namespace and owner kind, without a caBundle", async () => {
    const objects = await render();
    const config = one(objects, "MutatingWebhookConfiguration", "hg-healthgate-gate") as K8sObject & {
      webhooks: Record<string, unknown>[];
    };
    const [hook] = config.webhooks;
    expect(hook).toMatchObject({
      name: "gate.healthgate.io",
      failurePolicy: "Ignore",
      timeoutSeconds: 2,
      sideEffects: "None",
      clientConfig: {
        service: { name: "hg-healthgate-webhook", namespace: release.namespace, path: "/gate" },
      },
      rules: [{ operations: ["CREATE"], resources: ["pods"] }],
      namespaceSelector: {
        matchExpressions: [
          {
            key: "kubernetes.io/metadata.name",
            operator: "NotIn",
            values: ["kube-system", release.namespace],
          },
        ],
      },
    });
    // healthgate (or cert-manager) writes the caBundle: an upgrade that renders none never wipes it.
    expect(JSON.stringify(config)).not.toContain("caBundle");
    expect((hook!.matchConditions as { name: string }[]).map((c) => c.name)).toEqual([
      "owned-by-a-replicaset",
      "not-host-network",
    ]);
    const secret = one(objects, "Secret", "hg-healthgate-webhook-tls");
    expect(secret).not.toHaveProperty("data");
    const args = podSpec(objects).containers[0]!.args;
    expect(args).toEqual(
      expect.arrayContaining([
        "--webhook-port=9443",
        "--webhook-service=hg-healthgate-webhook",
        "--webhook-configuration=hg-healthgate-gate",
        "--webhook-certificates=self",
      ]),
    );
  });

  it("grants the Secret and the webhook configuration by name only", async () => {
    const objects = await render();
    const role = one(objects, "Role", "hg-healthgate-webhook");
    expect(role.metadata.namespace).toBe(release.namespace);
    expect(role.rules).toEqual([
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: ["hg-healthgate-webhook-tls"],
        verbs: ["get", "update"],
      },
    ]);
    expect(one(objects, "ClusterRole", "hg-healthgate-webhook").rules).toEqual([
      {
        apiGroups: ["admissionregistration.k8s.io"],
        resources: ["mutatingwebhookconfigurations"],
        resourceNames: ["hg-healthgate-gate"],
        verbs: ["get", "patch"],
      },
    ]);
  });

  it("lets cert-manager issue the certificates instead, with read-only access to its Secret", async () => {
    const objects = await render({ webhook: { certificates: "certManager" } });
    expect(find(objects, "Secret")).toEqual([]);
    expect(one(objects, "Certificate").spec).toMatchObject({
      secretName: "hg-healthgate-webhook-tls",
      issuerRef: { name: "hg-healthgate-webhook", kind: "Issuer" },
    });
    expect(one(objects, "MutatingWebhookConfiguration").metadata.annotations).toEqual({
      "cert-manager.io/inject-ca-from": `${release.namespace}/hg-healthgate-webhook`,
    });
    expect(one(objects, "Role", "hg-healthgate-webhook").rules).toMatchObject([{ verbs: ["get"] }]);
    expect(find(objects, "ClusterRole", "hg-healthgate-webhook")).toEqual([]);
    expect(podSpec(objects).containers[0]!.args).toContain("--webhook-certificates=external");
  });

  it("opens every gate on helm uninstall: a pre-delete hook Job that first removes the registration", async () => {
    const objects = await render({ uninstall: { releaseGates: true, allowAbortedRelease: true } });
    const job = one(objects, "Job", "hg-healthgate-release-gates") as K8sObject & {
      spec: { template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } };
    };
    expect(job.metadata.annotations).toMatchObject({
      "helm.sh/hook": "pre-delete",
      "helm.sh/hook-weight": "0",
    });
    expect(job.spec.template.spec.serviceAccountName).toBe("hg-healthgate-release-gates");
    expect(job.spec.template.spec.containers[0]!.args).toEqual([
      "release-gates",
      "--delete-webhook-configuration=hg-healthgate-gate",
      "--sweep-again-after-seconds=2",
      "--allow-aborted",
    ]);
    // Its account exists before it runs (a lower hook weight).
    for (const kind of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]) {
      expect(
        one(objects, kind, "hg-healthgate-release-gates").metadata.annotations?.["helm.sh/hook-weight"],
      ).toBe("-10");
    }
    const defaults = one(await render(), "Job", "hg-healthgate-release-gates") as typeof job;
    expect(defaults.spec.template.spec.containers[0]!.args).not.toContain("--allow-aborted");
    expect(find(await render({ uninstall: { releaseGates: false } }), "Job")).toEqual([]);
  });

  it("renders no webhook with webhook.enabled=false", async () => {
    const objects = await render({ webhook: { enabled: false } });
    expect(find(objects, "MutatingWebhookConfiguration")).toEqual([]);
    expect(podSpec(objects).containers[0]!.args.some((a) => a.startsWith("--webhook"))).toBe(false);
  });
});

describe("RBAC", () => {
  // What the operator needs, and nothing more (DESIGN.md: least privilege).
  // Each grant is proved used by the operator from the audit log of the integration suite
  // (test/audit/rbac.test.ts); this table pins the rendering.
  const namespaced: Array<[group: string, resource: string, verbs: string]> = [
    ["healthgate.io", "healthpolicies", "list watch"],
    ["healthgate.io", "healthpolicies/status", "patch"],
    ["healthgate.io", "healthtargets", "list watch create patch delete"],
    ["healthgate.io", "healthtargets/status", "patch"],
    ["healthgate.io", "healthreleases", "list watch create patch"],
    ["healthgate.io", "healthreleases/status", "patch"],
    ["apps", "deployments", "list watch patch"],
    ["apps", "deployments/status", "patch"],
    ["apps", "replicasets", "list watch"],
    ["", "pods", "list watch"],
    // The healthgate.io/deep-check readiness gate (rollout gating).
    ["", "pods/status", "patch"],
    ["", "services", "list watch patch"],
    ["autoscaling", "horizontalpodautoscalers", "list watch"],
    ["metrics.k8s.io", "pods", "list"],
    ["policy", "poddisruptionbudgets", "list watch create patch delete"],
    // blockOwnerDeletion on the PDB's ownerReference to its Deployment (OwnerReferencesPermissionEnforcement).
    ["apps", "deployments/finalizers", "update"],
    ["events.k8s.io", "events", "create"],
    // The kubelet's liveness Events of sampled pods, during an outage only (spec.rollout.deepCheck.background).
    ["events.k8s.io", "events", "list"],
  ];

  function grants(rules: PolicyRule[]): Set<string> {
    const out = new Set<string>();
    for (const r of rules)
      for (const g of r.apiGroups ?? [])
        for (const res of r.resources ?? [])
          for (const v of r.verbs)
            out.add(`${g}/${res}:${v}${r.resourceNames ? `@${r.resourceNames.join(",")}` : ""}`);
    return out;
  }
  const expected = (table: Array<[string, string, string]>) =>
    new Set(table.flatMap(([g, res, verbs]) => verbs.split(" ").map((v) => `${g}/${res}:${v}`)));

  it.each([
    ["default values", {}],
    ["every optional feature on", allFeatures],
  ])("uses no wildcard in any rule (%s)", async (_name, values) => {
    const roles = (await render(values)).filter((o) => ruleKinds.includes(o.kind));
    expect(roles.length).toBeGreaterThan(0);
    for (const role of roles) {
      for (const rule of (role.rules as PolicyRule[] | undefined) ?? []) {
        const where = `${role.kind} ${role.metadata.name}: ${JSON.stringify(rule)}`;
        for (const field of [
          rule.verbs,
          rule.resources,
          rule.apiGroups,
          rule.resourceNames,
          rule.nonResourceURLs,
        ]) {
          for (const entry of field ?? []) expect(entry, where).not.toContain("*");
        }
        expect(rule.nonResourceURLs, where).toBeUndefined();
      }
    }
  });

  it("grants exactly the namespaced permissions the operator needs, cluster-wide by default", async () => {
    const objects = await render();
    const role = one(objects, "ClusterRole", "hg-healthgate");
    expect(grants(role.rules as PolicyRule[])).toEqual(expected(namespaced));
    const binding = one(objects, "ClusterRoleBinding", "hg-healthgate");
    expect(binding).toMatchObject({
      roleRef: { kind: "ClusterRole", name: "hg-healthgate" },
      subjects: [{ kind: "ServiceAccount", name: "hg-healthgate", namespace: release.namespace }],
    });
  });

  it("reads nodes cluster-wide in either mode", async () => {
    for (const values of [{}, { watchNamespaces: ["shop"] }]) {
      const objects = await render(values);
      const role = one(objects, "ClusterRole", "hg-healthgate-nodes");
      expect(grants(role.rules as PolicyRule[])).toEqual(expected([["", "nodes", "list watch"]]));
      one(objects, "ClusterRoleBinding", "hg-healthgate-nodes");
    }
  });

  it("limits leader election to one Lease in the release namespace", async () => {
    const objects = await render();
    const role = one(objects, "Role", "hg-healthgate-leader-election");
    expect(role.metadata.namespace).toBe(release.namespace);
    expect(grants(role.rules as PolicyRule[])).toEqual(
      new Set([
        "coordination.k8s.io/leases:create",
        ...["get", "watch", "update"].map((v) => `coordination.k8s.io/leases:${v}@healthgate`),
      ]),
    );
    const pod = podSpec(objects);
    expect(pod.containers[0]!.args).toContain("--leader-election-id=healthgate");
  });

  it("binds the namespaced permissions in the watched namespace when watchNamespaces is set", async () => {
    const objects = await render({ watchNamespaces: ["shop"] });
    expect(find(objects, "ClusterRoleBinding", "hg-healthgate")).toHaveLength(0);
    const bindings = find(objects, "RoleBinding", "hg-healthgate");
    expect(bindings.map((b) => b.metadata.namespace)).toEqual(["shop"]);
    for (const b of bindings)
      expect(b).toMatchObject({ roleRef: { kind: "ClusterRole", name: "hg-healthgate" } });
  });

  it("guards record status in the watched namespace only when watchNamespaces is set, everywhere otherwise", async () => {
    // Cluster-wide, one install's guard would refuse every other install's own record writes.
    const binding = (objects: K8sObject[]) =>
      objects.find(
        (o) => o.kind === "ValidatingAdmissionPolicyBinding" && o.metadata.name.endsWith("-record-status"),
      );
    const scoped = binding(await render({ watchNamespaces: ["shop"] }));
    expect(scoped?.spec).toMatchObject({
      matchResources: {
        namespaceSelector: {
          matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["shop"] }],
        },
      },
    });
    const everywhere = binding(await render());
    expect(everywhere).toBeDefined();
    expect(everywhere?.spec).not.toHaveProperty("matchResources");
  });

  it("extends the built-in view and edit roles with HealthPolicy access", async () => {
    const objects = await render();
    const view = one(objects, "ClusterRole", "hg-healthgate-view");
    expect(view.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"]).toBe("true");
    const edit = one(objects, "ClusterRole", "hg-healthgate-edit");
    expect(edit.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"]).toBeUndefined();
    expect(
      find(await render({ rbac: { create: true, aggregateToDefaultRoles: false } }), "ClusterRole"),
    ).toHaveLength(4);
  });

  it("creates no RBAC with rbac.create=false", async () => {
    const objects = await render({ rbac: { create: false } });
    for (const kind of [...ruleKinds, "ClusterRoleBinding", "RoleBinding"])
      expect(find(objects, kind)).toHaveLength(0);
  });
});

interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  args: string[];
  env: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: Probe;
  readinessProbe: Probe;
  startupProbe: Probe;
  lifecycle: { preStop: { sleep?: { seconds: number }; exec?: unknown } };
  securityContext: Record<string, unknown>;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  containers: Container[];
  securityContext: Record<string, unknown>;
  terminationGracePeriodSeconds: number;
  serviceAccountName: string;
  affinity?: Record<string, unknown>;
  topologySpreadConstraints?: Array<{ topologyKey: string; whenUnsatisfiable: string }>;
}
function podSpec(objects: K8sObject[]): PodSpec {
  const deployment = one(objects, "Deployment") as K8sObject & { spec: { template: { spec: PodSpec } } };
  return deployment.spec.template.spec;
}

describe("the operator Deployment", () => {
  it("runs two replicas (leader and ready standby) rolled surge-first", async () => {
    const deployment = one(await render(), "Deployment");
    expect(deployment.spec).toMatchObject({
      replicas: 2,
      strategy: { rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
    });
  });

  // healthgate's own probe rules, applied to healthgate.
  it.each([
    ["default values", {}],
    [
      "custom timing",
      {
        probes: {
          readiness: { periodSeconds: 3, timeoutSeconds: 2, failureThreshold: 5, successThreshold: 3 },
        },
      },
    ],
  ])("has probes that obey healthgate's rules (%s)", async (_name, values) => {
    const objects = await render(values);
    const pod = podSpec(objects);
    const c = pod.containers[0]!;
    const { livenessProbe: liveness, readinessProbe: readiness, startupProbe: startup } = c;

    expect(liveness.httpGet?.path, "liveness is the shallow endpoint").toBe("/healthz");
    expect(readiness.httpGet?.path).toBe("/readyz");
    expect(liveness.httpGet?.path, "liveness and readiness differ").not.toBe(readiness.httpGet?.path);
    expect(startup, "a startup probe protects the boot").toBeDefined();
    expect(startup.httpGet?.path).toBe(liveness.httpGet?.path);

    for (const [name, probe] of Object.entries({ liveness, readiness, startup })) {
      expect(probe.timeoutSeconds, `${name}: timeout < period`).toBeLessThan(probe.periodSeconds);
    }
    expect(liveness.failureThreshold, "slow to restart").toBeGreaterThanOrEqual(3);
    expect(readiness.failureThreshold, "slow to eject").toBeGreaterThanOrEqual(3);
    expect(readiness.successThreshold, "slower to readmit").toBeGreaterThanOrEqual(2);

    const drain = c.lifecycle.preStop.sleep?.seconds;
    expect(drain, "preStop drain is a sleep action (the image has no shell)").toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds, "grace covers drain + in-flight").toBeGreaterThanOrEqual(
      drain! + 20,
    );

    const port = c.ports.find((p) => p.name === "http-metrics");
    for (const probe of [liveness, readiness, startup]) expect(probe.httpGet?.port).toBe(port?.name);
    const service = one(objects, "Service", "hg-healthgate-metrics");
    expect(service.spec).toMatchObject({ ports: [{ targetPort: "http-metrics" }] });
  });

  // The same rules `healthgate lint` and the operator apply to every workload,
  // run on the chart's own pod spec with the policy healthgate would give itself.
  it("passes healthgate's own probe audit without a single finding", async () => {
    const pod = podSpec(await render()) as unknown as K8sPodSpec;
    const workload = { kind: "Deployment", name: "hg-healthgate", namespace: release.namespace };
    const ownPolicy = (maxInFlightSeconds: number) =>
      healthPolicySpec.parse({
        targetRef: { name: workload.name },
        endpoints: {
          port: "http-metrics",
          liveness: { path: "/healthz" },
          readiness: { path: "/readyz" },
          startup: { path: "/healthz", maxStartupSeconds: 120 },
        },
        shutdown: { drainSeconds: 5, maxInFlightSeconds },
      });
    expect(auditPodSpec(ownPolicy(20), pod, workload)).toEqual([]);
    // Not vacuous: a policy that wants more in-flight time than the chart grants is flagged.
    expect(auditPodSpec(ownPolicy(60), pod, workload).map((f) => f.rule)).toEqual(["GracePeriodTooShort"]);
  });

  // And `healthgate lint` over the rendered chart as a user would run it (no HealthPolicy: the
  // CRD's defaults, headroom by replica count): nothing at warning or above.
  it("passes `healthgate lint --fail-on warning` as rendered", async () => {
    const result = await template({});
    expect(result.ok).toBe(true);
    const rendered = join(scratch, "rendered-chart.yaml");
    writeFileSync(rendered, result.stdout);
    const linted = await lint([rendered], "warning", async () => "");
    expect(linted.errors).toEqual([]);
    expect(linted.workloads).toBe(1);
    expect(linted.findings.filter((f) => f.severity !== "info")).toEqual([]);
    expect(linted.failing).toBe(0);
  });

  // The chart and `healthgate run` agree: the rendered arguments, with the
  // downward-API environment the pod gets, parse into the intended settings.
  it.each([
    ["default values", {}, { namespaces: [], leaderElect: true, leaderElectionNamespace: release.namespace }],
    [
      "every optional feature on",
      allFeatures,
      {
        namespaces: ["shop"],
        leaderElectionId: "healthgate-shop",
        leaderElectionNamespace: "kube-system",
      },
    ],
    [
      "a single replica without leader election",
      { replicas: 1, leaderElection: { enabled: false } },
      { leaderElect: false },
    ],
    [
      "release pacing set",
      { pacing: { maxConcurrentRollouts: 2, slotTimeoutSeconds: 120 } },
      { maxConcurrentRollouts: 2, rolloutSlotTimeoutSeconds: 120 },
    ],
    ["release pacing by default", {}, { maxConcurrentRollouts: 5, rolloutSlotTimeoutSeconds: 600 }],
  ])("passes arguments that `healthgate run` accepts (%s)", async (_name, values, expected) => {
    const c = podSpec(await render(values)).containers[0]!;
    expect(c.args[0]).toBe("run");
    const args = c.args.slice(1).filter((a) => a !== "--example=1");
    const env = { POD_NAME: "hg-healthgate-7d9f-abcde", POD_NAMESPACE: release.namespace };
    expect(c.env.map((e) => e.name)).toEqual(expect.arrayContaining(Object.keys(env)));
    const config = parseRunConfig(args, env);
    expect(config).toMatchObject({
      httpPort: c.ports[0]!.containerPort,
      leaderElectionIdentity: env.POD_NAME,
      ...expected,
    });
  });

  it("derives the grace period from the shutdown values", async () => {
    const pod = podSpec(await render({ shutdown: { drainSeconds: 7, maxInFlightSeconds: 30 } }));
    expect(pod.containers[0]!.lifecycle.preStop.sleep?.seconds).toBe(7);
    expect(pod.terminationGracePeriodSeconds).toBe(37);
  });

  it("runs as non-root 65532 with a read-only root filesystem and no capabilities", async () => {
    const pod = podSpec(await render());
    const c = pod.containers[0]!;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c.securityContext).not.toHaveProperty("privileged", true);
    expect(c.securityContext).not.toHaveProperty("capabilities.add");
    expect(c.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(c.resources.limits).toHaveProperty("memory");
  });

  it("gets its pod name and namespace from the downward API", async () => {
    const env = podSpec(await render()).containers[0]!.env;
    expect(env).toContainEqual({ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
    expect(env).toContainEqual({
      name: "POD_NAMESPACE",
      valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } },
    });
  });

  it("spreads the replicas across nodes and zones", async () => {
    const pod = podSpec(await render());
    expect(pod.topologySpreadConstraints?.map((t) => t.topologyKey)).toEqual([
      "kubernetes.io/hostname",
      "topology.kubernetes.io/zone",
    ]);
    expect(pod.affinity).toHaveProperty("podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution");
  });

  it("has a PodDisruptionBudget that evicts one replica at a time and never blocks on unhealthy pods", async () => {
    const objects = await render();
    const pdb = one(objects, "PodDisruptionBudget");
    expect(pdb.spec).toMatchObject({ maxUnavailable: 1, unhealthyPodEvictionPolicy: "AlwaysAllow" });
    const deployment = one(objects, "Deployment") as K8sObject & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        template: { metadata: { labels: Record<string, string> } };
      };
    };
    expect(pdb.spec).toMatchObject({ selector: { matchLabels: deployment.spec.selector.matchLabels } });
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
  });
});

describe("values validation", () => {
  // Each bad value fails before anything renders, with a message that names it.
  it.each([
    ["a replica count that is not a number", { replicas: "two" }, "at '/replicas': got string, want integer"],
    ["a misspelt key", { replica: 2 }, "additional properties 'replica' not allowed"],
    [
      "a misspelt nested key",
      { probes: { readiness: { sucessThreshold: 2 } } },
      "additional properties 'sucessThreshold' not allowed",
    ],
    [
      "readmission as fast as a single success",
      { probes: { readiness: { successThreshold: 1 } } },
      "at '/probes/readiness/successThreshold': minimum: got 1, want 2",
    ],
    [
      "ejection on the first failure",
      { probes: { liveness: { failureThreshold: 1 } } },
      "at '/probes/liveness/failureThreshold': minimum: got 1, want 3",
    ],
    [
      "an unknown pull policy",
      { image: { pullPolicy: "Sometimes" } },
      "at '/image/pullPolicy': value must be one of",
    ],
    ["a namespace that is not a DNS label", { watchNamespaces: ["Shop"] }, "at '/watchNamespaces/0'"],
    [
      "a timeout as long as the period",
      { probes: { liveness: { timeoutSeconds: 10 } } },
      "probes.liveness.timeoutSeconds (10) must be shorter than probes.liveness.periodSeconds (10)",
    ],
    [
      "a failure policy other than Ignore (the gate webhook fails open)",
      { webhook: { failurePolicy: "Fail" } },
      "at '/webhook/failurePolicy'",
    ],
    [
      "a negative maxConcurrentRollouts",
      { pacing: { maxConcurrentRollouts: -1 } },
      "at '/pacing/maxConcurrentRollouts'",
    ],
    ["a slot timeout under 30 s", { pacing: { slotTimeoutSeconds: 5 } }, "at '/pacing/slotTimeoutSeconds'"],
    [
      "two replicas without leader election",
      { leaderElection: { enabled: false } },
      "leaderElection.enabled=false with replicas=2",
    ],
    [
      "namespaced RBAC for several namespaces (the operator then watches cluster-wide)",
      { watchNamespaces: ["shop", "payments"] },
      "watchNamespaces lists 2 namespaces",
    ],
  ])("refuses %s", async (_name, values, message) => {
    const result = await template(values);
    expect(result.ok).toBe(false);
    expect(result.stderr).toContain(message);
  });
});
