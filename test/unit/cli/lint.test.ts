import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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

// Untrusted input (a pull request's manifests) must not crash or stall lint. Each test carries
// its own time bound: a regression that hangs fails the test instead of stalling the suite.
describe("healthgate lint on hostile input", () => {
  const bound = { timeout: 5_000 };
  const laughs = [
    "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    ...["b", "c", "d", "e", "f", "g", "h", "i"].map((k, i) => {
      const prev = String.fromCharCode("a".charCodeAt(0) + i);
      return `${k}: &${k} [${Array(9).fill(`*${prev}`).join(", ")}]`;
    }),
  ].join("\n");

  it(
    "a YAML alias bomb: exit 2 naming file and line; the other documents are still linted",
    bound,
    async () => {
      const bomb = file(
        "hostile/bomb.yaml",
        `${deployment("api", "shop", "/health/deep")}---\n${laughs}\n---\n${deployment("web", "shop", "/health/full")}`,
      );
      const { code, stdout, stderr } = await lint([bomb]);
      expect(code).toBe(2);
      expect(stderr).toContain(
        `error: ${bomb}:28: document not linted: Excessive alias count indicates a resource exhaustion attack (at most 100 alias expansions per document)`,
      );
      expect(stdout).toContain("2 workloads");
      expect(stdout).toMatch(/bomb\.yaml:\d+: warning LivenessSuspectedDeep: Deployment shop\/api/);
      expect(stdout).toMatch(/bomb\.yaml:\d+: warning LivenessSuspectedDeep: Deployment shop\/web/);
    },
  );

  it("a few aliases, as real manifests use them, are fine", bound, async () => {
    const anchors = file(
      "hostile/anchors.yaml",
      `${deployment("web", "shop", "/healthz")}---\n` +
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: &labels {app: web}}\n" +
        "data: {a: &value one, b: *value}\nimmutable: false\nbinaryData: {}\n" +
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: s, labels: &l {app: web}}\nspec: {selector: *l}\n",
    );
    const { code, stderr } = await lint([anchors]);
    expect(stderr).not.toContain("error:");
    expect(code).toBe(0);
  });

  it(
    "a parse error in one document: exit 2 naming its line, the documents around it still linted",
    bound,
    async () => {
      const mixed = file(
        "hostile/mixed.yaml",
        `${deployment("api", "shop", "/health/deep")}---\nkind: Deployment\nmetadata: {name: [unclosed\n---\n${deployment("web", "shop", "/health/full")}`,
      );
      const { code, stdout, stderr } = await lint([mixed]);
      expect(code).toBe(2);
      expect(stderr).toMatch(new RegExp(`error: ${mixed.replaceAll("/", "\\/")}:3[0-9]: invalid YAML`));
      expect(stdout).toContain("2 workloads");
    },
  );

  it("a document above the API server's 3 MiB: exit 2 naming it, not parsed", bound, async () => {
    const huge = file(
      "hostile/huge.yaml",
      `${deployment("web", "shop", "/healthz")}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: "${"x".repeat(3 * 1024 * 1024)}"\n`,
    );
    const { code, stdout, stderr } = await lint([huge]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/huge\.yaml:\d+: a document of 3\.0 MiB, above the 3 MiB/);
    expect(stdout).toContain("1 workload");
  });

  it("symbolic link loops in a directory: the walk ends, each file is linted once", bound, async () => {
    const tree = join(dir, "loops");
    file("loops/app/web.yaml", deployment("web", "shop", "/healthz"));
    // Two links to the same directory make 2^depth paths: followed blindly, the walk never ends.
    symlinkSync(".", join(tree, "app", "self"));
    symlinkSync("..", join(tree, "app", "parent"));
    symlinkSync(join(tree, "app"), join(tree, "again"));
    const { code, stdout } = await lint([tree]);
    expect(code).toBe(0);
    expect(stdout).toContain("1 workload, 0 HealthPolicies");
  });
});

describe("healthgate lint when reading fails unexpectedly", () => {
  it("exits 2, never 1 (which means findings)", async () => {
    let stderr = "";
    const code = await runLint(["-"], {
      stdout: () => undefined,
      stderr: (t) => void (stderr += t),
      readStdin: async () => {
        throw new Error("stdin closed");
      },
    });
    expect(code).toBe(2);
    expect(stderr).toContain("healthgate lint: could not lint the input: stdin closed");
  });
});

describe("healthgate lint says which kinds it linted, and how", () => {
  it("Deployments, StatefulSets, DaemonSets linted; Jobs and CronJobs named as not audited", async () => {
    const kinds = file(
      "kinds.yaml",
      [
        deployment("web", "shop", "/healthz"),
        deployment("db", "shop", "/healthz").replace("kind: Deployment", "kind: StatefulSet"),
        deployment("agent", "shop", "/healthz")
          .replace("kind: Deployment", "kind: DaemonSet")
          .replace("  replicas: 3\n", ""),
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec: {template: {spec: {containers: [{name: m}]}}}\n",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec: {schedule: '@daily'}\n",
      ].join("---\n"),
    );
    const { code, stdout, stderr } = await lint([kinds]);
    expect(code).toBe(0);
    expect(stdout).toContain("3 workloads");
    expect(stderr).toContain(
      "note: DaemonSet ×1 linted: probe rules with the CRD's defaults; one pod per node",
    );
    expect(stderr).toContain("note: Deployment ×1 linted: probe rules and headroom");
    expect(stderr).toContain("note: StatefulSet ×1 linted: probe rules with the CRD's defaults");
    expect(stderr).toContain(
      "note: CronJob ×1, Job ×1 not audited: their pods run to completion and serve no traffic",
    );
    const json = JSON.parse((await lint(["-o", "json", kinds])).stdout);
    expect(json.summary.workloadsByKind).toEqual({ DaemonSet: 1, Deployment: 1, StatefulSet: 1 });
  });

  it("a container without ports but with probes is linted (Istio's Jaeger sample)", async () => {
    const jaeger = file(
      "jaeger.yaml",
      deployment("jaeger", "istio-system", "/")
        .replace("          ports: [{name: http, containerPort: 8080}]\n", "")
        .replace("port: http\n", "port: 14269\n")
        .replace("httpGet: {path: /readyz, port: http}", "httpGet: {path: /, port: 14269}"),
    );
    const { stdout } = await lint([jaeger]);
    expect(stdout).toContain("warning LivenessSameAsReadiness: Deployment istio-system/jaeger container app");
  });
});
