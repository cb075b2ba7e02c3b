// The benchmarks of bench/ (README: "print memory and reaction-latency figures"), run at toy
// sizes so that they cannot rot: each must start its own plane, run healthgate, and print its
// table of figures. The figures themselves are not judged here (bench/README.md has them).
import { spawn } from "node:child_process";
import path from "node:path";
import { expect, inject, it } from "vitest";
import { repoRoot } from "../../bench/support.ts";

async function runBench(
  script: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(repoRoot, "bench", script), ...args], {
    cwd: repoRoot,
    env: { ...process.env, KUBEBUILDER_ASSETS: inject("k8sBinDir"), KUBECONFIG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stdout, stderr };
}

const figure = String.raw`\d+(?:\.\d+)?`;

it(
  "bench/latency.ts prints reaction latency beside the bare patch round-trip",
  { timeout: 240_000 },
  async () => {
    const run = await runBench("latency.ts", ["--deployments", "3", "--samples", "10", "--warmup", "2"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`patch round-trip \\(baseline\\)\\s+${figure}\\s+${figure}`));
    expect(run.stdout).toMatch(
      new RegExp(`reaction: patch response -> watch sees healthgate's condition\\s+${figure}`),
    );
    expect(run.stdout).toMatch(
      new RegExp(`reaction / patch round-trip: p50 ${figure}x, p90 ${figure}x, p99 ${figure}x`),
    );
    expect(run.stdout).toContain("healthgate on node --optimize-for-size");
  },
);

it(
  "bench/memory.ts prints RSS at ready, peak (when, and how it was made up) and steady for the image's flags, and with the chart's gate webhook on, each a first start",
  { timeout: 240_000 },
  async () => {
    const run = await runBench("memory.ts", [
      ...["--deployments", "6", "--pods-per-deployment", "2", "--namespaces", "2", "--nodes", "3"],
      ...["--steady-seconds", "2", "--repeat", "1", "--variants", "image,chart", "--concurrency", "4"],
      "--first-start",
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("2 namespaces, 3 Nodes, 6 Deployments, 6 ReplicaSets, 12 Pods");
    // --first-start: before each variant healthgate's conditions are removed from all 6 (the
    // priming run before them wrote them).
    expect(run.stderr.match(/removed healthgate's conditions from 6 Deployments/g)).toHaveLength(2);
    const rows = run.stdout.split("\n").filter((l) => /^(first start \(image\)|image|chart)\s/.test(l));
    expect(rows).toHaveLength(3);
    const peakAt = `${figure}: ${figure} / ${figure}, ${figure} / ${figure}`;
    for (const row of rows) {
      // ready s, settled s, RSS at ready, peak, peak at (anon / heap used, committed / external),
      // steady, heap used/total, /metrics ms (KiB), reconciles, writes (each run writes: > 0)
      expect(row).toMatch(
        new RegExp(
          `--optimize-for-size( \\+ gate webhook)?(\\s+${figure}){4}\\s+${peakAt}\\s+${figure}\\s+${figure}/${figure}\\s+${figure} \\(${figure}\\)\\s+\\d+\\s+[1-9]\\d*$`,
        ),
      );
    }
    expect(rows.at(-1)).toMatch(/^chart\s+.*--optimize-for-size \+ gate webhook\s/);
  },
);

it(
  "bench/client-node.ts prints what loading healthgate run's modules costs with and without client-node's generated API",
  { timeout: 120_000 },
  async () => {
    const run = await runBench("client-node.ts", ["--repeat", "1"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(`^client-node as its index loads it\\s+[1-9]\\d+\\s+${figure}\\s+${figure}$`, "m"),
    );
    expect(run.stdout).toMatch(
      new RegExp(
        `^without the generated API \\(what healthgate runs\\)\\s+0\\s+${figure}\\s+${figure}$`,
        "m",
      ),
    );
  },
);

it(
  "bench/background.ts prints the background deep check's probes/s, prober CPU and API requests/s",
  { timeout: 120_000 },
  async () => {
    const run = await runBench("background.ts", ["--quick"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(`probes/s \\(expected targets ÷ interval\\)\\s+${figure} \\(${figure}\\)`),
    );
    expect(run.stdout).toMatch(new RegExp(`prober thread CPU\\s+${figure} ms per second`));
    expect(run.stdout).toMatch(
      new RegExp(`API requests/s, steady state \\(deep checks pass\\)\\s+${figure}$`, "m"),
    );
    expect(run.stdout).toMatch(
      new RegExp(`API requests/s, outage on every Deployment .*\\s+${figure}$`, "m"),
    );
  },
);

it(
  "bench/prober.ts prints start lateness, false failures, hostile bounds, probes/s beside a bare GET, and RSS",
  { timeout: 120_000 },
  async () => {
    const run = await runBench("prober.ts", ["--quick"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`all checks\\s+\\d+(\\s+${figure}){4}`));
    expect(run.stdout).toMatch(/healthy targets: \d+ results, false failures \d+/);
    expect(run.stdout).toMatch(/prober thread during the run: [\d.]+ CPU s for \d+ checks/);
    for (const kind of [
      "silent",
      "drip-headers",
      "drip-body",
      "huge-body",
      "reset-mid-header",
      "garbage",
      "redirect",
      "slow-tls",
    ])
      expect(run.stdout).toMatch(new RegExp(`^${kind}\\s+\\d+`, "m"));
    expect(run.stdout).toMatch(/redirects followed: 0/);
    const rate = String.raw`\s+[\d,]+\s+[\d.]+\s+[\d,]+\s+\d+$`;
    expect(run.stdout).toMatch(new RegExp(String.raw`^prober \(its worker thread\)${rate}`, "m"));
    expect(run.stdout).toMatch(
      new RegExp(String.raw`^bare http\.get, agent: false \(main thread\)${rate}`, "m"),
    );
    expect(run.stdout).toMatch(/prober \/ bare: \d+ % of probes\/s, \d+ % per CPU second of its thread/);
    expect(run.stdout).toMatch(new RegExp(`RSS MiB .* peak \\(VmHWM\\) ${figure}`));
    expect(run.stdout).toMatch(
      /RSS MiB, the prober alone with 200 targets \(a child process doing nothing else, image flags.* the prober's share -?\d+/,
    );
  },
);

it(
  "bench/admission.ts prints Deployment write latency with Enforce's admission policy unbound and bound",
  { timeout: 240_000 },
  async () => {
    const run = await runBench("admission.ts", ["--records", "3", "--samples", "5"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`enforce policy unbound \\(baseline\\)(\\s+${figure}){3}`));
    expect(run.stdout).toMatch(
      new RegExp(`released Deployment \\(its decision applied\\)(\\s+${figure}){3}`),
    );
  },
);

it.each(["enforce", "audit"])(
  "bench/policy-edit.ts --mode %s prints the edit's time and writes/s beside the bare patch throughput, and reaction idle and under the edit",
  { timeout: 300_000 },
  async (mode) => {
    const run = await runBench("policy-edit.ts", ["--deployments", "5", "--samples", "3", "--mode", mode]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(
        `policy edit → all 5 carry .*, queue empty: ${figure} s; healthgate's applies \\d+ \\(\\d+/s\\)`,
      ),
    );
    expect(run.stdout).toMatch(
      new RegExp(`bare patch throughput of the same plane \\(32 in flight\\): \\d+/s`),
    );
    expect(run.stdout).toMatch(
      /kube-controller-manager created every ReplicaSet and pod \d+ s after the Deployments/,
    );
    expect(run.stdout).toMatch(
      /reconciles until the edit showed everywhere: Deployment [1-9]\d*, HealthPolicy \d+; until its Events were created: Deployment [1-9]\d*, HealthPolicy \d+/,
    );
    expect(run.stdout).toMatch(new RegExp(`reaction, idle\\s+3(\\s+\\d+){3}`));
    expect(run.stdout).toMatch(new RegExp(`reaction, while the edit runs\\s+\\d+`));
  },
);

it(
  "bench/dev.ts prints when each line of `npm run dev -- --once` appeared, for a cold run",
  { timeout: 360_000 },
  async () => {
    const run = await runBench("dev.ts", ["--warm", "0"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("npm run dev -- --once (bash hack/dev.sh --once)");
    const rows = run.stdout.split("\n").filter((l) => l.startsWith("| cold |"));
    expect(rows, run.stdout).toHaveLength(1);
    // exit 0, then plane up … 1.2-bad aborted and the total: seven figures, and the load average
    expect(rows[0]).toMatch(
      new RegExp(`^\\| cold \\| 0 (\\| ${figure} ){7}\\| ${figure} ${figure} ${figure} \\|$`),
    );
  },
);
