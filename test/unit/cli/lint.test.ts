import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runLint } from "../../../src/cli/lint.ts";

const dir = mkdtempSync(join(tmpdir(), "healthgate-lint-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, content);
  return path;
}

async function lint(args: string[], stdin = "") {
  let stdout = "";
  let stderr = "";
  const code = await runLint(args, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    readStdin: async () => stdin,
  });
  return { code, stdout, stderr };
}

const deployment = (name: string, namespace: string, liveness: string, extra = "") => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  namespace: ${namespace}
  labels: {app: ${name}}
spec:
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      containers:
        - name: app
          image: app:1
          ports: [{name: http, containerPort: 8080}]
          livenessProbe:
            httpGet:
              path: ${liveness}
              port: http
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            successThreshold: 2
          lifecycle:
            preStop: {sleep: {seconds: 5}}
  replicas: 3
${extra}`;

const clean = file("clean.yaml", deployment("web", "shop", "/healthz"));
const suspect = file("suspect.yaml", deployment("web", "shop", "/health/deep"));
const policy = `apiVersion: healthgate.io/v1alpha1
kind: HealthPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  endpoints:
    deep: {paths: [/health/deep]}
`;
const governed = file(
  "governed.yaml",
  `${deployment("web", "shop", "/health/deep")}---\n${policy}---\n${deployment("web", "other", "/health/deep")}`,
);

describe("healthgate lint", () => {
  it("exit 0 on a clean manifest", async () => {
    const { code, stdout } = await lint([clean]);
    expect(code).toBe(0);
    expect(stdout).toContain("1 workload, 0 HealthPolicies: 0 findings (none)");
  });

  it("without a policy a deep-looking liveness is a warning: exit 0 by default, 1 with --fail-on warning", async () => {
    const byDefault = await lint([suspect]);
    expect(byDefault.code).toBe(0);
    expect(byDefault.stdout).toContain(
      `${suspect}:18: warning LivenessSuspectedDeep: Deployment shop/web container app (livenessProbe.httpGet.path)`,
    );
    expect(byDefault.stderr).toContain("no HealthPolicy in the input");
    expect((await lint(["--fail-on", "warning", suspect])).code).toBe(1);
    expect((await lint(["--fail-on=none", suspect])).code).toBe(0);
  });

  it("a HealthPolicy governs the Deployments it selects in its namespace", async () => {
    const { code, stdout } = await lint([governed]);
    expect(code).toBe(1);
    expect(stdout).toContain(
      `${governed}:18: critical LivenessDeep: Deployment shop/web container app (livenessProbe.httpGet.path) [HealthPolicy web]`,
    );
    // The same Deployment in another namespace is not selected: defaults, a warning.
    expect(stdout).toMatch(/:\d+: warning LivenessSuspectedDeep: Deployment other\/web/);
    expect((await lint(["--fail-on", "critical", governed])).code).toBe(1);
  });

  it("--fail-on critical passes errors", async () => {
    const noReadiness = file(
      "noready.yaml",
      deployment("api", "shop", "/healthz").replace(/ {10}readinessProbe:\n(.*\n){3}/, ""),
    );
    expect((await lint([noReadiness])).code).toBe(1);
    expect((await lint(["--fail-on", "critical", noReadiness])).code).toBe(0);
  });

  it("json: findings with file, line, workload and a summary", async () => {
    const { code, stdout } = await lint(["-o", "json", governed]);
    expect(code).toBe(1);
    const report = JSON.parse(stdout);
    expect(report.findings[0]).toMatchObject({
      file: governed,
      line: 18,
      rule: "LivenessDeep",
      severity: "critical",
      container: "app",
      field: "livenessProbe.httpGet.path",
      workload: { kind: "Deployment", name: "web", namespace: "shop" },
      policy: "web",
    });
    expect(report.summary).toMatchObject({ workloads: 2, policies: 1, failOn: "error" });
    expect(report.summary.bySeverity.critical).toBe(1);
  });

  it("sarif: a SARIF 2.1.0 log with rules and located results", async () => {
    const { stdout } = await lint(["--output", "sarif", governed]);
    const log = JSON.parse(stdout);
    expect(log.version).toBe("2.1.0");
    const [run] = log.runs;
    expect(run.tool.driver.name).toBe("healthgate");
    const ids = run.tool.driver.rules.map((r: { id: string }) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    const deep = run.results.find((r: { ruleId: string }) => r.ruleId === "LivenessDeep");
    expect(deep).toMatchObject({ level: "error", ruleIndex: ids.indexOf("LivenessDeep") });
    expect(deep.locations[0].physicalLocation).toEqual({
      artifactLocation: { uri: pathToFileURL(governed).href },
      region: { startLine: 18 },
    });
    expect(run.invocations[0].executionSuccessful).toBe(true);
  });

  it("reads stdin with -", async () => {
    const { code, stdout } = await lint(["-"], deployment("web", "shop", "/health/full"));
    expect(code).toBe(0);
    expect(stdout).toContain("<stdin>:18: warning LivenessSuspectedDeep");
  });

  it("walks directories for .yaml, .yml and .json, and expands kind: List", async () => {
    const tree = join(dir, "tree");
    file("tree/a/one.yml", deployment("one", "ns", "/healthz"));
    file(
      "tree/b/two.json",
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name: "two" },
            spec: { template: { spec: { containers: [{ name: "c", ports: [{ containerPort: 80 }] }] } } },
          },
        ],
      }),
    );
    file("tree/README.md", "not yaml: [");
    file("tree/c/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
    const { code, stdout, stderr } = await lint([tree]);
    expect(code).toBe(1);
    expect(stdout).toContain("2 workloads");
    expect(stdout).toMatch(/two\.json:1: error ReadinessMissing: Deployment two container c/);
    expect(stderr).toContain("1 object of other kinds not audited: Service ×1");
  });

  it("exit 2 on invalid YAML, naming file and line", async () => {
    const broken = file(
      "broken.yaml",
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: [unclosed\n",
    );
    const { code, stderr } = await lint([clean, broken]);
    expect(code).toBe(2);
    expect(stderr).toMatch(new RegExp(`error: ${broken.replaceAll("/", "\\/")}:\\d+: invalid YAML`));
  });

  it("exit 2 on an unreadable file", async () => {
    const { code, stderr } = await lint([join(dir, "missing.yaml")]);
    expect(code).toBe(2);
    expect(stderr).toContain("missing.yaml: cannot read");
  });

  it("exit 2 on an invalid HealthPolicy, naming file, line and field", async () => {
    const bad = file(
      "badpolicy.yaml",
      `${deployment("web", "shop", "/healthz")}---\n${policy.replace("deep: {paths: [/health/deep]}", "deep: {paths: [health]}")}`,
    );
    const { code, stderr } = await lint([bad]);
    expect(code).toBe(2);
    expect(stderr).not.toContain("no HealthPolicy in the input");
    expect(stderr).toMatch(
      /badpolicy\.yaml:34: HealthPolicy shop\/web is invalid: spec\.endpoints\.deep\.paths\[0\]/,
    );
  });

  it("exit 2 on a workload without containers", async () => {
    const bad = file(
      "nocontainers.yaml",
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec: {}\n",
    );
    const { code, stderr } = await lint([bad]);
    expect(code).toBe(2);
    expect(stderr).toContain(
      "nocontainers.yaml:6: Deployment x: spec.template.spec.containers must be a list",
    );
  });

  it("usage errors exit 2; --help exits 0", async () => {
    expect((await lint([])).code).toBe(2);
    expect((await lint(["--output", "xml", clean])).code).toBe(2);
    expect((await lint(["--fail-on", "severe", clean])).code).toBe(2);
    expect((await lint(["--nope", clean])).code).toBe(2);
    const help = await lint(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: healthgate lint");
  });
});
