// sameJson decides whether the writer skips a status write: it must agree exactly with "the two
// values serialize to the same JSON, key order aside", or healthgate either writes for nothing
// or misses a change.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sameJson } from "../../../src/policy/decide.ts";

/** The reference: canonical JSON with sorted keys. */
function canonical(value: unknown): string | undefined {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)))
      : v,
  );
}

/** Reverses the key order of every object, keeping the content. */
function reordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reordered);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reordered(v)]),
    );
  }
  return value;
}

const leaf = fc.oneof(
  fc.constantFrom<unknown>(undefined, null, true, false, 0, 1, "", "a", Number.NaN),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom("True", "False", "Unknown"),
);
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object")),
  array: fc.array(tie("node"), { maxLength: 3 }),
  object: fc.dictionary(fc.constantFrom("type", "status", "reason", "message", "x"), tie("node"), {
    maxKeys: 4,
  }),
})).node;

describe("sameJson", () => {
  it("agrees with comparing canonical JSON, for any two values", () => {
    fc.assert(
      fc.property(value, value, (a, b) => {
        expect(sameJson(a, b)).toBe(canonical(a) === canonical(b));
      }),
      { numRuns: 2000 },
    );
  });

  it("ignores key order and keys whose value is undefined, at any depth", () => {
    fc.assert(
      fc.property(value, (a) => {
        expect(sameJson(a, reordered(a))).toBe(true);
      }),
    );
    expect(sameJson({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(sameJson([{ a: [1, undefined] }], [{ a: [1, null] }])).toBe(true);
    expect(sameJson({ a: Number.NaN }, { a: null })).toBe(true);
  });

  it("sees a change anywhere", () => {
    const status = {
      conditions: [{ type: "Ready", status: "True" }],
      targets: [{ name: "web", findings: [] }],
    };
    expect(sameJson(status, structuredClone(status))).toBe(true);
    const changed = structuredClone(status);
    changed.targets[0]!.name = "api";
    expect(sameJson(status, changed)).toBe(false);
    expect(sameJson({ a: [] }, { a: {} })).toBe(false);
    expect(sameJson({ a: 1 }, { a: "1" })).toBe(false);
    expect(sameJson([1, 2], [1, 2, 3])).toBe(false);
  });
});
