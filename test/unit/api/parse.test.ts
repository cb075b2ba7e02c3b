import { readFileSync, readdirSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { formatPath, healthPolicySpec, parseHealthPolicy } from "../../../src/api/v1alpha1/index.ts";
import {
  baseSpec,
  defaultingCases,
  invalidCases,
  nearValidSpec,
  policy,
} from "../../fixtures/api/healthpolicy-cases.ts";

const examplesDir = new URL("../../../examples/", import.meta.url);

const failed = (obj: unknown) => {
  const r = parseHealthPolicy(obj);
  if (r.ok) throw new Error(`expected ${JSON.stringify(obj)} to be invalid`);
  return r.condition;
};

describe("parseHealthPolicy", () => {
  it("accepts a valid policy and applies the defaults", () => {
    const r = parseHealthPolicy(policy("web", baseSpec(), "shop"));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.policy.spec.mode).toBe("Audit");
    expect(r.policy.spec.shutdown).toEqual({ drainSeconds: 5, maxInFlightSeconds: 20 });
    expect(r.policy.spec.deny).toEqual({ deepLiveness: false });
    expect(r.policy.spec.guardrails).toEqual({
      maxUnreadyPercent: 50,
      windowSeconds: 30,
      clearAfterSeconds: 60,
      flapping: {
        maxTransitions: 4,
        windowSeconds: 300,
        reportBackoffSeconds: 60,
        maxReportBackoffSeconds: 3600,
      },
    });
    expect(r.ignoredStatus).toBeUndefined();
  });

  describe.each(invalidCases)("rejects $name", ({ spec, field, message }) => {
    it("with Ready=False/InvalidSpec naming the object, the field and the fix", () => {
      const c = failed(policy("web", spec, "shop"));
      expect(c).toMatchObject({ type: "Ready", status: "False", reason: "InvalidSpec" });
      expect(c.message).toMatch(/^HealthPolicy shop\/web is invalid: /);
      expect(c.message).toContain(`${field}: `);
      expect(c.message).toContain(typeof message === "string" ? message : message.parse);
    });
  });

  it("lists at most five problems and counts the rest", () => {
    const spec = {
      ...baseSpec(),
      mode: "x",
      timing: { liveness: { periodSeconds: 0, timeoutSeconds: 0, failureThreshold: 0 } },
    };
    const c = failed(
      policy(
        "web",
        {
          ...spec,
          shutdown: { drainSeconds: -1, maxInFlightSeconds: -1 },
          guardrails: { maxUnreadyPercent: 0 },
        },
        "shop",
      ),
    );
    expect(c.message).toMatch(/; and 3 more problems$/);
  });

  it.each([
    ["not an object", 42, "HealthPolicy (unnamed) is invalid: expected a HealthPolicy object, got a number"],
    ["null", null, "HealthPolicy (unnamed) is invalid: expected a HealthPolicy object, got null"],
    [
      "spec missing",
      policy("web", undefined, "shop"),
      "HealthPolicy shop/web is invalid: spec: required: set this field",
    ],
    [
      "spec a string",
      policy("web", "x", "shop"),
      "HealthPolicy shop/web is invalid: spec: must be an object, not a string",
    ],
    [
      "wrong apiVersion",
      { ...policy("web", baseSpec(), "shop"), apiVersion: "healthgate.io/v1" },
      'HealthPolicy shop/web is invalid: apiVersion: must be "healthgate.io/v1alpha1", not "healthgate.io/v1"',
    ],
    [
      "no namespace",
      policy("web", "x"),
      "HealthPolicy web is invalid: spec: must be an object, not a string",
    ],
  ])("names the object even when %s", (_name, obj, message) => {
    expect(failed(obj).message).toBe(message);
  });

  it("keeps a valid status and drops one that does not parse, saying why", () => {
    const status = {
      observedGeneration: 2,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Reconciled",
          message: "",
          lastTransitionTime: "2025-01-01T00:00:00Z",
        },
      ],
    };
    const good = parseHealthPolicy({ ...policy("web", baseSpec(), "shop"), status });
    expect(good.ok && good.policy.status).toEqual(status);

    const bad = parseHealthPolicy({
      ...policy("web", baseSpec(), "shop"),
      status: { conditions: [{ type: "Ready" }] },
    });
    expect(bad.ok).toBe(true);
    if (!bad.ok) return;
    expect(bad.policy.status).toBeUndefined();
    expect(bad.ignoredStatus).toContain("status.conditions[0].status: required");
  });

  it("reads Date objects (typed list results) as RFC 3339 strings", () => {
    const created = new Date("2025-03-01T10:00:00Z");
    const r = parseHealthPolicy({
      ...policy("web", baseSpec(), "shop"),
      metadata: { name: "web", namespace: "shop", creationTimestamp: created },
    });
    expect(r.ok && r.policy.metadata.creationTimestamp).toBe("2025-03-01T10:00:00.000Z");
  });

  it("never throws, whatever it is given", () => {
    const specLike = fc.record(
      {
        selector: fc.anything(),
        endpoints: fc.oneof(
          fc.anything(),
          fc.record({ liveness: fc.anything(), deep: fc.anything(), startup: fc.anything() }),
        ),
        timing: fc.anything(),
        rollout: fc.oneof(
          fc.anything(),
          fc.record({ steps: fc.array(fc.record({ weight: fc.integer() })), deepCheck: fc.anything() }),
        ),
        headroom: fc.anything(),
        mode: fc.constantFrom("Audit", "Enforce", 3),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          specLike.map((s) => policy("p", s, "ns")),
        ),
        (obj) => {
          const r = parseHealthPolicy(obj);
          expect(typeof r.ok).toBe("boolean");
          if (!r.ok) expect(r.condition.message).toMatch(/^HealthPolicy .* is invalid: ./);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("formatPath", () => {
  it.each([
    [["spec", "rollout", "steps", 0, "bake"], "spec.rollout.steps[0].bake"],
    [
      ["spec", "selector", "matchLabels", "app.kubernetes.io/name"],
      "spec.selector.matchLabels[app.kubernetes.io/name]",
    ],
    [[], ""],
  ])("%j → %s", (path, expected) => expect(formatPath(path)).toBe(expected));
});

describe("examples/", () => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"));

  it("has the five documented examples", () => {
    expect(files.sort()).toEqual([
      "gated-rollout.yaml",
      "grpc-service.yaml",
      "jvm-slow-start.yaml",
      "quick-rollout.yaml",
      "web-api.yaml",
    ]);
  });

  describe.each(files)("%s", (file) => {
    const text = readFileSync(new URL(file, examplesDir), "utf8");
    const docs = parseAllDocuments(text).map(
      (d) => d.toJS() as { kind?: string; metadata?: { name?: string } },
    );

    it("starts with a one-line comment saying what it shows", () => {
      expect(text.split("\n")[0]).toMatch(/^# \S.{20,}$/);
      expect(text.split("\n")[1]).not.toMatch(/^#/);
    });

    it("holds a Deployment and a HealthPolicy that parses", () => {
      expect(docs.some((d) => d.kind === "Deployment")).toBe(true);
      const policies = docs.filter((d) => d.kind === "HealthPolicy");
      expect(policies).toHaveLength(1);
      for (const p of policies) {
        const r = parseHealthPolicy(p);
        expect(r.ok ? "valid" : r.condition.message).toBe("valid");
      }
    });
  });
});

describe("defaults", () => {
  it.each(defaultingCases)("$name: parsing twice changes nothing (defaults are stable)", ({ spec }) => {
    const once = healthPolicySpec.parse(spec);
    expect(healthPolicySpec.parse(once)).toEqual(once);
  });
});

describe("near-valid specs (the integration suite compares these with the API server)", () => {
  it("parse without throwing, and both verdicts occur", () => {
    const verdicts = new Set<boolean>();
    fc.assert(
      fc.property(nearValidSpec(), (spec) => {
        verdicts.add(parseHealthPolicy(policy("p", spec, "ns")).ok);
      }),
      { numRuns: 300 },
    );
    expect([...verdicts].sort()).toEqual([false, true]);
  });
});
