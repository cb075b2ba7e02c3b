// What the benchmarks share: a control plane of their own, the CRD, healthgate built as the image
// runs it (compiled JavaScript), a child `healthgate run`, a bounded-concurrency runner, /proc
// memory readings and percentiles. Benchmarks measure and print; they assert nothing.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { admissionList } from "../src/admission/enforce.ts";
import { defaultBinDir, startControlPlane, type ControlPlane } from "../src/devcluster/controlPlane.ts";
import { freePort } from "../src/devcluster/net.ts";
import { procStatFields } from "../src/devcluster/processes.ts";
import { decisionOf } from "../src/policy/enforce.ts";
import { KubeClient, type KubeObject } from "../src/kube/client.ts";
import { loadKubeConfig } from "../src/kube/client.ts";
import { createMetrics } from "../src/observability/metrics.ts";
import { sumSamples } from "../test/support/promText.ts";

const execFileAsync = promisify(execFile);
export const repoRoot = path.resolve(import.meta.dirname, "..");

export const say = (message: string) => process.stderr.write(`${message}\n`);

/**
 * etcd and kube-apiserver only: no controller touches what a benchmark creates, and no node:
 * benchmarks write their thousands of pods, status included, themselves — what they measure
 * (healthgate's memory and reaction) does not depend on a kubelet, which the tests' real nodes
 * (src/devcluster/nodes.ts) provide where it does. With `dataDir`
 * the plane keeps its etcd data there (and leaves it on stop), so a later run can reuse it.
 */
export async function startBenchPlane(dataDir?: string): Promise<ControlPlane> {
  const binDir = defaultBinDir();
  say(`starting etcd + kube-apiserver from ${binDir} (no controller manager)`);
  const plane = await startControlPlane({
    binDir,
    controllerManager: false,
    ...(dataDir ? { dataDir } : {}),
  });
  say(`control plane ${plane.version} up in ${plane.startupMs} ms`);
  return plane;
}

export function benchClient(plane: ControlPlane): KubeClient {
  return new KubeClient(loadKubeConfig(plane.kubeconfigPath), { metrics: createMetrics() });
}

export async function kubectl(plane: ControlPlane, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    path.join(plane.binDir, "kubectl"),
    ["--kubeconfig", plane.kubeconfigPath, ...args],
    {
      cwd: repoRoot,
    },
  );
  return stdout;
}

export async function installCrd(plane: ControlPlane): Promise<void> {
  // Every CRD: the operator's caches (HealthTarget records and HealthReleases included) never sync without them.
  await kubectl(plane, ["apply", "--server-side", "-f", "crds/"]);
  await kubectl(plane, [
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd/healthpolicies.healthgate.io",
    "crd/healthtargets.healthgate.io",
    "crd/healthreleases.healthgate.io",
  ]);
}

/** Server-side applies `objects` with kubectl (as one List), taking fields from other managers. */
export async function kubectlApplyObjects(plane: ControlPlane, objects: readonly unknown[]): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "healthgate-bench-apply-"));
  try {
    const file = path.join(dir, "objects.json");
    await writeFile(file, JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
    await kubectl(plane, ["apply", "--server-side", "--force-conflicts", "-f", file]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Enforce at admission as the chart installs it (the MutatingAdmissionPolicies and their
 * bindings), with the plane's admin user — whom benchmarks run healthgate as — standing in for
 * healthgate's ServiceAccount as the record-status writer.
 */
export async function installAdmission(plane: ControlPlane, prefix: string): Promise<void> {
  const writer = (
    await kubectl(plane, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
  ).trim();
  await kubectlApplyObjects(plane, admissionList(prefix, writer).items);
}

/**
 * The latency benches' Audit policy: liveness /healthz is shallow, /health/deep is declared deep,
 * so flipping a Deployment's liveness path between the two flips healthgate's LivenessShallow.
 */
export function latencyPolicy(
  namespace: string,
  name: string,
  matchLabels: Record<string, string>,
): KubeObject {
  return {
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name, namespace },
    spec: {
      selector: { matchLabels },
      mode: "Audit",
      endpoints: {
        port: "http",
        liveness: { path: "/healthz" },
        readiness: { path: "/readyz" },
        deep: { paths: ["/health/deep"] },
      },
    },
  } as KubeObject;
}

/** Runs `work` over `items` with at most `concurrency` in flight; rethrows the first failure. */
export async function inParallel<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

// ---- healthgate as the image runs it --------------------------------------------------------

/**
 * The Node flags the image starts healthgate with: those between `node` and `dist/cli/main.js`
 * in the Dockerfile's ENTRYPOINT, so that the benchmarks measure what ships.
 */
export async function imageNodeFlags(): Promise<string[]> {
  const dockerfile = await readFile(path.join(repoRoot, "Dockerfile"), "utf8");
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  if (!line) throw new Error("Dockerfile has no exec-form ENTRYPOINT");
  const entrypoint = JSON.parse(line[1]!) as string[];
  const main = entrypoint.indexOf("dist/cli/main.js");
  if (entrypoint[0] !== "node" || main < 0) throw new Error(`unexpected ENTRYPOINT ${line[1]}`);
  return entrypoint.slice(1, main);
}

/**
 * The environment the image's runtime stage sets (its `ENV` lines, `KEY=value` pairs), so a
 * bench runs healthgate as the image does: glibc's malloc tunables among them.
 */
export async function imageEnv(): Promise<Record<string, string>> {
  const dockerfile = await readFile(path.join(repoRoot, "Dockerfile"), "utf8");
  const runtime = dockerfile.slice(dockerfile.search(/^FROM\s+\S+\s+AS\s+runtime\s*$/m));
  const env: Record<string, string> = {};
  for (const line of runtime.replace(/\\\n/g, " ").split("\n")) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const pair of m[1]!.trim().split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

export interface Build {
  /** dist/cli/main.js of a fresh `tsc -p tsconfig.build.json`. */
  main: string;
  remove(): Promise<void>;
}

/**
 * Compiles src/ into a temporary directory (not the repository's dist/, which others may be
 * using) that links the repository's node_modules, as the image's `node dist/cli/main.js` runs.
 */
export async function buildHealthgate(): Promise<Build> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "healthgate-bench-build-"));
  await copyFile(path.join(repoRoot, "package.json"), path.join(dir, "package.json"));
  await symlink(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"));
  const main = path.join(dir, "dist/cli/main.js");
  try {
    await execFileAsync(
      process.execPath,
      [
        path.join(repoRoot, "node_modules/typescript/bin/tsc"),
        "-p",
        path.join(repoRoot, "tsconfig.build.json"),
        "--outDir",
        path.join(dir, "dist"),
        "--sourceMap",
        "false",
      ],
      { cwd: repoRoot },
    );
  } catch (err) {
    // tsc still emits on type errors (work in progress elsewhere in the tree); go on, loudly.
    const { stdout } = err as { stdout?: string };
    if (!existsSync(main)) throw err;
    say(`warning: tsc reported type errors; benchmarking what it emitted:\n${stdout ?? ""}`);
  }
  return { main, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface OperatorChild {
  child: ChildProcess;
  pid: number;
  port: number;
  startedAt: number;
  exited: Promise<number | null>;
  output(): string;
  /** Sends SIGTERM and waits for the exit (SIGKILL after 15 s). */
  stop(): Promise<void>;
}

/** `healthgate run` without leader election, as a child of this process (so RSS is its own). */
export async function spawnOperator(options: {
  main: string;
  kubeconfig: string;
  nodeFlags?: readonly string[];
  /** Extra environment (e.g. glibc malloc tunables). */
  env?: Record<string, string>;
  namespaces?: readonly string[];
  logLevel?: string;
  /** More `healthgate run` flags. */
  extraArgs?: readonly string[];
}): Promise<OperatorChild> {
  const port = await freePort("127.0.0.1");
  const args = [
    ...(options.nodeFlags ?? []),
    options.main,
    "run",
    `--kubeconfig=${options.kubeconfig}`,
    "--no-leader-elect",
    `--http-port=${port}`,
    `--log-level=${options.logLevel ?? "warn"}`,
    ...(options.namespaces?.length ? [`--namespaces=${options.namespaces.join(",")}`] : []),
    ...(options.extraArgs ?? []),
  ];
  const startedAt = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, NODE_ENV: "production", KUBECONFIG: "", NODE_OPTIONS: "", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    port,
    startedAt,
    exited,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls /readyz until it answers 200; resolves with the milliseconds since the spawn. */
export async function waitReady(op: OperatorChild, timeoutMs = 300_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (op.child.exitCode !== null)
      throw new Error(`healthgate exited (${op.child.exitCode}):\n${op.output()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${op.port}/readyz`);
      await res.text();
      if (res.status === 200) return performance.now() - op.startedAt;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`healthgate not ready after ${timeoutMs} ms:\n${op.output()}`);
    await delay(50);
  }
}

/** Sum of the samples of `name` on healthgate's /metrics whose labels include `labels`. */
export async function scrape(
  port: number,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return sumSamples(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), name, labels);
}

// ---- memory -------------------------------------------------------------------------------

export interface ProcMemory {
  /** Resident set size now, MiB. */
  rssMiB: number;
  /** Peak resident set size since the process started (VmHWM), MiB. */
  hwmMiB: number;
  /** The anonymous part of the RSS now (RssAnon: heaps, not the binary's file-backed pages), MiB. */
  anonMiB: number;
}

export async function procMemory(pid: number): Promise<ProcMemory | undefined> {
  let status: string;
  try {
    status = await readFile(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: kib("VmRSS") / 1024, hwmMiB: kib("VmHWM") / 1024, anonMiB: kib("RssAnon") / 1024 };
}

// ---- Enforce ------------------------------------------------------------------------------

/** A one-replica Deployment with one container "web" and a named port "http"; `liveness`: its liveness path. */
export const benchDeployment = (
  name: string,
  namespace: string,
  labels: Record<string, string>,
  liveness?: string,
): KubeObject =>
  ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: "web",
              image: "registry.example/web:1",
              ports: [{ name: "http", containerPort: 8080 }],
              ...(liveness ? { livenessProbe: { httpGet: { path: liveness, port: "http" } } } : {}),
            },
          ],
        },
      },
    },
  }) as KubeObject;

/** A released decision as healthgate makes one for the benches' container "web": probes, a preStop sleep of `drainSeconds`. */
export const benchDecision = (drainSeconds = 5) =>
  decisionOf({
    terminationGracePeriodSeconds: 20 + drainSeconds,
    containers: [
      {
        name: "web",
        livenessProbe: {
          httpGet: { path: "/healthz", port: "http", scheme: "HTTP" },
          periodSeconds: 10,
          timeoutSeconds: 1,
          successThreshold: 1,
          failureThreshold: 3,
        },
        readinessProbe: {
          httpGet: { path: "/readyz", port: "http", scheme: "HTTP" },
          periodSeconds: 5,
          timeoutSeconds: 1,
          successThreshold: 2,
          failureThreshold: 3,
        },
        lifecycle: { preStop: { sleep: { seconds: drainSeconds } } },
      },
    ],
  });

// ---- CPU ----------------------------------------------------------------------------------

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/** CPU seconds (user + system) a process has used so far; undefined when it is gone. */
export async function procCpuSeconds(pid: number): Promise<number | undefined> {
  const fields = await procStatFields(pid);
  // utime and stime: fields 14 and 15.
  return fields && (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/** CPU seconds used so far by each named process (and by this one, as `self`). */
export async function cpuByProcess(pids: Record<string, number | undefined>): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  for (const [name, pid] of Object.entries(pids)) {
    const seconds = pid === undefined ? undefined : await procCpuSeconds(pid);
    if (seconds !== undefined) result.set(name, seconds);
  }
  const self = process.cpuUsage();
  result.set("self", (self.user + self.system) / 1e6);
  return result;
}

// ---- statistics ---------------------------------------------------------------------------

/** Nearest-rank percentile of `values` (0 < p ≤ 100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** A fixed-width text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** "load 0.52 0.40 0.31 on 2 CPUs": other work on the machine skews every figure. */
export function machineLoad(): string {
  return `load ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")} on ${os.cpus().length} CPUs`;
}
