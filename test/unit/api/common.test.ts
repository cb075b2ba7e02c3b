import { describe, expect, it } from "vitest";
import { z } from "zod";
import { durationSeconds, httpPath, intOrStringPort, withRules } from "../../../src/api/v1alpha1/index.ts";

const celOf = (schema: z.ZodType) => schema.meta()?.["x-kubernetes-validations"];

describe("withRules", () => {
  const positive = withRules(z.object({ a: z.int(), b: z.int() }), {
    rule: "self.a < self.b",
    message: "a must be below b",
    fieldPath: ".a",
    holds: (s) => s.a < s.b,
  });

  it("puts the CEL half into the schema's metadata, without the TypeScript half", () => {
    expect(celOf(positive)).toEqual([
      { rule: "self.a < self.b", message: "a must be below b", fieldPath: ".a" },
    ]);
  });

  it("runs the TypeScript half at parse time, at the rule's fieldPath, with the same message", () => {
    const r = positive.safeParse({ a: 2, b: 1 });
    expect(r.success).toBe(false);
    expect(r.error?.issues).toMatchObject([{ path: ["a"], message: "a must be below b" }]);
    expect(positive.safeParse({ a: 1, b: 2 }).success).toBe(true);
  });

  it("appends to rules already there instead of replacing them", () => {
    const both = withRules(positive, {
      rule: "self.b < 10",
      message: "b must be below 10",
      holds: (s) => s.b < 10,
    });
    expect((celOf(both) as { rule: string }[]).map((r) => r.rule)).toEqual([
      "self.a < self.b",
      "self.b < 10",
    ]);
    expect(both.safeParse({ a: 2, b: 11 }).error?.issues.map((i) => i.message)).toEqual([
      "b must be below 10",
    ]);
  });

  it("uses messageFor when the rule has a messageExpression", () => {
    const s = withRules(z.int(), {
      rule: "self > 0",
      message: "must be positive",
      messageExpression: "'must be positive, not %d'.format([self])",
      holds: (n) => n > 0,
      messageFor: (n) => `must be positive, not ${n}`,
    });
    expect(s.safeParse(-3).error?.issues[0]?.message).toBe("must be positive, not -3");
  });
});

describe("patterns as rules", () => {
  it("checks an HTTP path with a message instead of a bare pattern", () => {
    expect(celOf(httpPath())).toEqual([
      {
        rule: "self.matches(r'^\\/[^\\s?#]*$')",
        message: expect.stringContaining("must be an absolute HTTP path"),
      },
    ]);
    expect(httpPath().safeParse("/healthz").success).toBe(true);
    expect(httpPath().safeParse("/a b").success).toBe(false);
  });

  it.each([
    [8080, true],
    [1, true],
    [65535, true],
    [0, false],
    [65536, false],
    [1.5, false],
    ["http", true],
    ["http-alt", true],
    ["h2c", true],
    ["HTTP", false],
    ["8080", false],
    ["-http", false],
    ["http--alt", false],
    ["a-very-long-name", false],
    [true, false],
  ])("port %j valid: %s", (port, valid) => {
    expect(intOrStringPort().safeParse(port).success).toBe(valid);
  });
});

describe("durationSeconds", () => {
  it.each([
    ["90s", 90],
    ["2m", 120],
    ["1h30m", 5400],
    ["1h0m5s", 3605],
    ["0s", 0],
    ["", undefined],
    ["5", undefined],
    ["1d", undefined],
    ["30s1m", undefined],
  ])("%j → %j", (text, seconds) => expect(durationSeconds(text)).toBe(seconds));
});
