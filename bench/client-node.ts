// What loading `healthgate run`'s modules costs, with and without client-node's generated API
// (src/kube/leanClientNode.ts): each way `--repeat` times (default 5) in a Node of its own with
// the image's flags, importing the compiled dist/cli/run.js as the image would, then two full
// garbage collections; prints the median RSS and V8 heap used, and how many of client-node's
// generated model modules were loaded. No control plane.
//
//   node_modules/.bin/node bench/client-node.ts [--repeat 5]
import { execFile } from "node:child_process";
import path from "node:path";
import { parseArgs } from "node:util";
import { promisify } from "node:util";
import { buildHealthgate, imageNodeFlags, machineLoad, percentile, say, table } from "./support.ts";

const { values: args } = parseArgs({ options: { repeat: { type: "string", default: "5" } } });
const REPEAT = Number(args.repeat);
const run = promisify(execFile);

const probe = (dist: string, lean: boolean) => `
import { registerHooks } from "node:module";
${lean ? `(await import(${JSON.stringify(`${dist}/kube/leanClientNode.js`)})).installLeanClientNode();` : ""}
let models = 0;
registerHooks({ resolve(s, c, next) { const r = next(s, c); if (r.url.includes("/client-node/dist/gen/models/")) models++; return r; } });
await import(${JSON.stringify(`${dist}/cli/run.js`)});
globalThis.gc(); globalThis.gc();
const m = process.memoryUsage();
process.stdout.write(JSON.stringify({ rss: m.rss, heap: m.heapUsed, models }));
`;

const build = await buildHealthgate();
try {
  const dist = path.dirname(path.dirname(build.main));
  const flags = [...(await imageNodeFlags()), "--expose-gc", "--input-type=module"];
  const rows: string[][] = [];
  for (const lean of [false, true]) {
    const samples: { rss: number; heap: number; models: number }[] = [];
    for (let i = 0; i < REPEAT; i++) {
      const { stdout } = await run(process.execPath, [...flags, "-e", probe(dist, lean)], { cwd: dist });
      samples.push(JSON.parse(stdout) as { rss: number; heap: number; models: number });
    }
    const mib = (pick: (s: (typeof samples)[number]) => number) =>
      (percentile(samples.map(pick), 50) / 2 ** 20).toFixed(1);
    rows.push([
      lean ? "without the generated API (what healthgate runs)" : "client-node as its index loads it",
      String(samples[0]!.models),
      mib((s) => s.rss),
      mib((s) => s.heap),
    ]);
  }
  say(`${REPEAT} runs each; ${machineLoad()}`);
  console.log(
    table(
      [
        "loading healthgate run's modules",
        "generated model modules",
        "RSS MiB (median)",
        "V8 heap used MiB (median)",
      ],
      rows,
    ),
  );
} finally {
  await build.remove();
}
