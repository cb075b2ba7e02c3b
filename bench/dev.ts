// How long the README's first command takes: `bash hack/dev.sh --once` (what `npm run dev -- --once`
// runs) as a new user, cold (a fresh HOME and a fresh cache directory holding only the cached
// control-plane binaries) and then warm (the same HOME and cache again, right after). Prints,
// per run, when each milestone line appeared and the total, with the load average.
//
//   node_modules/.bin/node bench/dev.ts [--warm 2]
//
// Each run gets its own network and PID namespaces (as hack/test.sh does), so its plane's
// loopback addresses cannot collide with another plane on the machine; node_modules must be
// installed (nothing inside can reach a registry). Measures and prints; asserts nothing.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { defaultBinDir, KUBERNETES_VERSION } from "../src/devcluster/binaries.ts";
import { repoRoot, say } from "./support.ts";

/** Milestones: the first stdout line starting with each prefix. */
const MILESTONES: [string, string][] = [
  ["plane up", "Control plane "],
  ["operator running", "Operator running"],
  ["hpol printed", "$ kubectl get hpol"],
  ["rollout example stable", "Gated rollout:"],
  ["1.1 completed", "healthgate.io/RolloutHealthy=True"],
  ["1.2-bad aborted", "healthgate.io/RolloutHealthy=False"],
];

interface Run {
  label: string;
  code: number | null;
  totalMs: number;
  at: Map<string, number>;
  load: string;
  stdout: string;
}

function runDev(label: string, env: NodeJS.ProcessEnv): Promise<Run> {
  const inside = "ip link set lo up || exit 1; exec bash hack/dev.sh --once";
  const userns = process.getuid?.() === 0 ? [] : ["--user", "--map-root-user"];
  const started = performance.now();
  const child = spawn(
    "unshare",
    [...userns, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--", "bash", "-c", inside],
    { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const at = new Map<string, number>();
  let stdout = "";
  let pending = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    pending += chunk.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines)
      for (const [name, prefix] of MILESTONES)
        if (!at.has(name) && line.startsWith(prefix)) at.set(name, performance.now() - started);
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) say(`${label}: exit ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
      resolve({
        label,
        code,
        totalMs: performance.now() - started,
        at,
        load: os
          .loadavg()
          .map((l) => l.toFixed(1))
          .join(" "),
        stdout,
      });
    });
  });
}

const { values } = parseArgs({ options: { warm: { type: "string", default: "2" } }, strict: true });
const warmRuns = Number(values.warm);

const home = await mkdtemp(path.join(os.tmpdir(), "healthgate-bench-dev-home-"));
const cache = await mkdtemp(path.join(os.tmpdir(), "healthgate-bench-dev-cache-"));
try {
  // A new user's cache: only the control-plane binaries, where hack/build-k8s.sh finds them.
  await mkdir(path.join(cache, "k8s"));
  await symlink(defaultBinDir(), path.join(cache, "k8s", KUBERNETES_VERSION));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, HEALTHGATE_CACHE: cache };
  for (const name of ["KUBECONFIG", "KUBEBUILDER_ASSETS", "XDG_CACHE_HOME", "HEALTHGATE_REUSE_PLANE"])
    delete env[name];
  const runs: Run[] = [];
  say("cold run (fresh HOME and cache directory, binaries cached)…");
  runs.push(await runDev("cold", env));
  for (let i = 1; i <= warmRuns; i++) {
    say(`warm run ${i}…`);
    runs.push(await runDev(`warm ${i}`, env));
  }
  const s = (ms: number | undefined) => (ms === undefined ? "-" : (ms / 1000).toFixed(1));
  console.log(
    `npm run dev -- --once (bash hack/dev.sh --once), Kubernetes ${KUBERNETES_VERSION}, ${os.cpus().length} CPUs`,
  );
  console.log(
    ["| run", "exit", ...MILESTONES.map(([name]) => `${name} s`), "total s", "load avg (1/5/15 min) |"].join(
      " | ",
    ),
  );
  console.log(`|${" --- |".repeat(MILESTONES.length + 4)}`);
  for (const r of runs)
    console.log(
      [
        `| ${r.label}`,
        String(r.code),
        ...MILESTONES.map(([name]) => s(r.at.get(name))),
        s(r.totalMs),
        `${r.load} |`,
      ].join(" | "),
    );
} finally {
  await rm(home, { recursive: true, force: true });
  await rm(cache, { recursive: true, force: true });
}
