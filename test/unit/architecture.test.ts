// The house rule (CONVENTIONS.md): pure policy code, and the pure half of the prober, import no
// Kubernetes client, no network and nothing of the controller. Checked on the sources' imports,
// followed through relative imports, so a pure file cannot reach I/O through a helper either.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const src = path.resolve(import.meta.dirname, "../../src");
const PURE_PROBER = ["types.ts", "targets.ts", "schedule.ts", "protocol.ts"].map((f) =>
  path.join(src, "prober", f),
);
const FORBIDDEN = [
  /^@kubernetes\/client-node/,
  /^(node:)?(http|https|http2|net|tls|dgram|dns|child_process|worker_threads)$/,
  /^undici/,
  /\/(controller|kube|observability|cli|devcluster)\//,
];

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : [],
  );
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [
    ...text.matchAll(/^\s*(?:import|export)\s(?:[^;]*?from\s+)?"([^"]+)"|import\(\s*"([^"]+)"\s*\)/gm),
  ].map((m) => (m[1] ?? m[2])!);
}

/** Every import reachable from `file` through relative imports, with the chain that leads to it. */
function reachable(file: string): { spec: string; via: string[] }[] {
  const seen = new Set<string>();
  const out: { spec: string; via: string[] }[] = [];
  const visit = (f: string, via: string[]) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const spec of importsOf(f)) {
      const resolved = spec.startsWith(".") ? path.resolve(path.dirname(f), spec) : undefined;
      out.push({
        spec: resolved ? path.relative(src, resolved) : spec,
        via: [...via, path.relative(src, f)],
      });
      if (resolved) visit(resolved, [...via, path.relative(src, f)]);
    }
  };
  visit(file, []);
  return out;
}

describe("pure code imports no I/O", () => {
  const files = [...walk(path.join(src, "policy")), ...PURE_PROBER];
  it.each(files.map((f) => path.relative(src, f)))("%s", (file) => {
    const bad = reachable(path.join(src, file)).filter(({ spec }) =>
      FORBIDDEN.some((re) => re.test(spec) || re.test(`/${spec}`)),
    );
    expect(bad.map(({ spec, via }) => `${via.join(" → ")} → ${spec}`)).toEqual([]);
  });

  it("finds the files it checks", () => expect(files.length).toBeGreaterThan(20));
});
