// The HealthPolicy API against a real kube-apiserver: the generated CRD
// installs, the examples apply, bad input is refused with messages that name
// the field and the fix, kubectl explain/get are useful, and the server's
// defaults and verdicts agree with zod's (the operator's defence in depth).
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import {
  CRD_NAME,
  GROUP,
  PLURAL,
  VERSION,
  healthPolicySpec,
  healthPolicyStatus,
  parseHealthPolicy,
  type HealthPolicyStatus,
} from "../../src/api/v1alpha1/index.ts";
import {
  baseSpec,
  defaultingCases,
  invalidCases,
  nearValidSpec,
  policy,
} from "../fixtures/api/healthpolicy-cases.ts";
import {
  createTestNamespace,
  deleteTestNamespace,
  isApiError,
  testClients,
  testKubeconfigPath,
} from "../support/kube.ts";
import { waitFor } from "../support/waitFor.ts";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../../", import.meta.url));
const crdFile = join(repo, "crds/healthpolicies.healthgate.io.yaml");
const examplesDir = join(repo, "examples");
const kubectlCache = mkdtempSync(join(tmpdir(), "healthgate-api-test-kubectl-"));

/** The kubectl built at the server's version (hack/build-k8s.sh), against the run's plane. */
async function kubectl(...args: string[]): Promise<string> {
  const bin = join(inject("k8sBinDir"), "kubectl");
  const { stdout } = await run(
    bin,
    ["--kubeconfig", testKubeconfigPath(), "--cache-dir", kubectlCache, ...args],
    {
      cwd: repo,
      maxBuffer: 16 << 20,
    },
  );
  return stdout;
}

const { custom, apiextensions } = testClients();
const resource = { group: GROUP, version: VERSION, plural: PLURAL };

interface StatusCause {
  field?: string;
  message?: string;
  reason?: string;
}

/** The causes of a 422 from the API server, or the verdict "accepted". */
async function serverVerdict(body: object, namespace: string): Promise<"accepted" | StatusCause[]> {
  try {
    await custom.createNamespacedCustomObject({ ...resource, namespace, body, dryRun: "All" });
    return "accepted";
  } catch (err) {
    if (!isApiError(err, 422)) throw err;
    const status = (typeof err.body === "string" ? JSON.parse(err.body) : err.body) as {
      details?: { causes?: StatusCause[] };
    };
    return status.details?.causes ?? [];
  }
}

let namespace: string;

beforeAll(async () => {
  // Other suites may install the same CRD at the same time: server-side apply is idempotent.
  await kubectl(
    "apply",
    "--server-side",
    "--force-conflicts",
    "--field-manager=healthgate-api-test",
    "-f",
    crdFile,
  );
  await kubectl("wait", "--for=condition=Established", "--timeout=60s", `crd/${CRD_NAME}`);
  // Established comes a moment before discovery lists the resource; kubectl needs discovery.
  await waitFor(() => kubectl("get", "hpol", "--all-namespaces").then(() => true), {
    what: "discovery to list healthpolicies (kubectl get hpol)",
    timeoutMs: 30_000,
    intervalMs: 250,
  });
  namespace = await createTestNamespace("api");
});

afterAll(async () => {
  if (namespace) await deleteTestNamespace(namespace);
  rmSync(kubectlCache, { recursive: true, force: true });
});

describe("the generated CRD", () => {
  it("is accepted by the API server with its short name and category", async () => {
    const crd = await apiextensions.readCustomResourceDefinition({ name: CRD_NAME });
    const conditions = Object.fromEntries((crd.status?.conditions ?? []).map((c) => [c.type, c.status]));
    expect(conditions).toMatchObject({ Established: "True", NamesAccepted: "True" });
    expect(crd.status?.acceptedNames).toMatchObject({ shortNames: ["hpol"], categories: ["healthgate"] });
  });
});

describe("examples/", () => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"));

  it.each(files)("%s applies, and the stored policy parses to what zod makes of the file", async (file) => {
    const out = await kubectl("apply", "-n", namespace, "-f", join(examplesDir, file));
    expect(out).toMatch(/healthpolicy\.healthgate\.io\/\S+ (created|configured|unchanged)/);

    const docs = parseAllDocuments(readFileSync(join(examplesDir, file), "utf8")).map(
      (d) => d.toJS() as { kind?: string; metadata: { name: string }; spec: unknown },
    );
    for (const doc of docs.filter((d) => d.kind === "HealthPolicy")) {
      const stored = await custom.getNamespacedCustomObject({
        ...resource,
        namespace,
        name: doc.metadata.name,
      });
      const parsed = parseHealthPolicy(stored);
      expect(parsed.ok ? "valid" : parsed.condition.message).toBe("valid");
      expect((stored as { spec: unknown }).spec).toEqual(healthPolicySpec.parse(doc.spec));
    }
  });
});

describe("invalid policies are refused, naming the field and the fix", () => {
  it("has a table of at least 20 cases", () => expect(invalidCases.length).toBeGreaterThanOrEqual(20));

  it.each(invalidCases)("$name → $field", async ({ spec, field, message }) => {
    const fragment = typeof message === "string" ? message : message.server;
    const verdict = await serverVerdict(policy("invalid", spec), namespace);
    expect(verdict, "the API server accepted it").not.toBe("accepted");
    const causes = verdict as StatusCause[];
    const matching = causes.filter((c) => c.field === field && c.message?.includes(fragment));
    expect(matching, `causes: ${JSON.stringify(causes, null, 2)}`).not.toHaveLength(0);
  });
});

describe("kubectl", () => {
  it("explain hpol.spec.rollout prints the descriptions", async () => {
    const out = await kubectl("explain", "hpol.spec.rollout");
    expect(out).toContain("Progressive rollout gated on out-of-band deep checks");
    expect(out).toMatch(/steps\s+<\[\]Object> -required-\s+Steps of a gated rollout/);
    expect(out).toMatch(/deepCheck\s+<Object> -required-\s+The out-of-band deep check/);
    expect(out).toMatch(/onFailure\s+<string>\s+enum: Hold, Rollback\s+Hold: stop admitting/);
    expect(out).toContain("Default: Hold.");

    const deep = await kubectl("explain", "hpol.spec.rollout.deepCheck");
    expect(deep).toMatch(
      /intervalSeconds\s+<integer>\s+Seconds between deep checks of one pod\. Default: 5\./,
    );
  });

  it("get hpol shows mode, targets, compliance, headroom, rollout phase and readiness at a glance", async () => {
    const name = "glance";
    await custom.createNamespacedCustomObject({
      ...resource,
      namespace,
      body: policy(name, { ...baseSpec(), mode: "Enforce" }),
    });
    const at = "2025-01-01T00:00:00Z";
    const condition = (type: string, status: "True" | "False", reason: string) => ({
      type,
      status,
      reason,
      message: `${type} is ${status}`,
      lastTransitionTime: at,
      observedGeneration: 1,
    });
    const status: HealthPolicyStatus = healthPolicyStatus.parse({
      observedGeneration: 1,
      targetCount: 3,
      compliantCount: 2,
      rolloutPhase: "Baking",
      conditions: [
        condition("Ready", "True", "Reconciled"),
        condition("ProbesCompliant", "False", "FindingsAtError"),
        condition("LivenessShallow", "True", "NoDeepLiveness"),
        condition("HeadroomSufficient", "False", "TooFewReplicas"),
      ],
    });
    const stored = await custom.getNamespacedCustomObject({ ...resource, namespace, name });
    await custom.replaceNamespacedCustomObjectStatus({
      ...resource,
      namespace,
      name,
      body: { ...stored, status },
    });

    const table = (await kubectl("get", "hpol", "-n", namespace, name)).trim().split("\n");
    expect(table[0]?.split(/\s+/)).toEqual([
      "NAME",
      "MODE",
      "TARGETS",
      "COMPLIANT",
      "HEADROOM",
      "ROLLOUT",
      "READY",
      "AGE",
    ]);
    expect(table[1]?.split(/\s+/).slice(0, 7)).toEqual([
      name,
      "Enforce",
      "3",
      "2",
      "False",
      "Baking",
      "True",
    ]);

    const wide = (await kubectl("get", "hpol", "-n", namespace, name, "-o", "wide")).trim().split("\n");
    expect(wide[0]).toMatch(/READY\s+SHALLOW\s+REASON\s+AGE$/);
    expect(wide[1]).toMatch(/True\s+True\s+Reconciled\s+\S+$/);

    // The category lists it with the rest of healthgate's kinds.
    expect(await kubectl("get", "healthgate", "-n", namespace)).toMatch(
      new RegExp(`^(healthpolicy.healthgate.io/)?${name}\\s+Enforce\\s+3\\s+2\\s`, "m"),
    );
  });
});

describe("the server and zod agree", () => {
  it.each(defaultingCases)(
    "defaults: $name round-trips with the server's defaults equal to zod's",
    async ({ spec }) => {
      const name = `defaults-${Math.random().toString(36).slice(2, 8)}`;
      const created = (await custom.createNamespacedCustomObject({
        ...resource,
        namespace,
        body: policy(name, spec),
      })) as {
        spec: unknown;
      };
      expect(created.spec).toEqual(healthPolicySpec.parse(spec));
      const read = await custom.getNamespacedCustomObject({ ...resource, namespace, name });
      const parsed = parseHealthPolicy(read);
      expect(parsed.ok && parsed.policy.spec).toEqual(created.spec);
    },
  );

  it("accepts and refuses the same near-valid specs as parseHealthPolicy (CEL rules = their TypeScript twins)", async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(nearValidSpec(), async (spec) => {
        const body = policy("agree", spec, namespace);
        const server = await serverVerdict(body, namespace);
        const parsed = parseHealthPolicy(body);
        if (server === "accepted") accepted++;
        else refused++;
        expect(
          parsed.ok ? "accepted" : "refused",
          `server: ${JSON.stringify(server)}; parse: ${parsed.ok ? "ok" : parsed.condition.message}`,
        ).toBe(server === "accepted" ? "accepted" : "refused");
      }),
      { numRuns: 300 },
    );
    // Both verdicts must be well represented, or the comparison proves little.
    expect(accepted).toBeGreaterThan(30);
    expect(refused).toBeGreaterThan(30);
  });

  it("the status subresource is validated too", async () => {
    const name = "bad-status";
    await custom.createNamespacedCustomObject({ ...resource, namespace, body: policy(name, baseSpec()) });
    const stored = await custom.getNamespacedCustomObject({ ...resource, namespace, name });
    const status = {
      conditions: [
        {
          type: "Ready",
          status: "Maybe",
          reason: "X",
          message: "",
          lastTransitionTime: "2025-01-01T00:00:00Z",
        },
      ],
    };
    const err = await custom
      .replaceNamespacedCustomObjectStatus({ ...resource, namespace, name, body: { ...stored, status } })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isApiError(err, 422)).toBe(true);
    expect(String((err as { body: unknown }).body)).toContain("status.conditions[0].status");
  });
});
