// src/kube/leanClientNode.ts: `healthgate run` loads client-node's KubeConfig without the
// generated API behind it, and what KubeConfig imports from there is exactly what the
// replacement module gives.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import * as gen from "@kubernetes/client-node/dist/gen/index.js";
import * as lean from "../../../src/kube/clientNodeGen.ts";

const fixture = new URL("./fixtures/leanLoad.ts", import.meta.url).pathname;
const load = (mode: "lean" | "full") => {
  const run = spawnSync(process.execPath, [fixture, "../../../../src/cli/run.ts", mode], {
    encoding: "utf8",
  });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout) as { exports: string[]; models: number; apis: number; genIndex: boolean };
};

describe("client-node without its generated API", () => {
  it("`healthgate run`'s modules load none of the generated models or API classes with the hook, and hundreds without it", () => {
    const withHook = load("lean");
    expect(withHook.exports).toContain("runOperator");
    expect(withHook).toMatchObject({ models: 0, apis: 0, genIndex: false });
    const without = load("full");
    expect(without.genIndex).toBe(true);
    expect(without.models).toBeGreaterThan(500);
  });

  it("gives KubeConfig's module every name it imports from the generated index, as the same values", () => {
    const require = createRequire(import.meta.url);
    const configJs = readFileSync(require.resolve("@kubernetes/client-node/dist/config.js"), "utf8");
    const clauses = [...configJs.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]\.\/gen\/index\.js['"]/g)];
    expect(clauses).toHaveLength(1);
    const names = clauses[0]![1]!
      .split(",")
      .map((n) => n.trim())
      .filter(Boolean);
    expect(names.sort()).toEqual(Object.keys(lean).sort());
    for (const name of names) {
      expect((lean as Record<string, unknown>)[name]).toBe((gen as Record<string, unknown>)[name]);
    }
    // No other module of client-node that KubeConfig's module imports reaches the index.
    expect(configJs.match(/from\s*['"][^'"]*gen\/index\.js['"]/g)).toHaveLength(1);
  });
});
