// The record of a plane left running in the background (hack/cluster.ts up,
// `healthgate dev`), so that later commands can find, reuse or stop it.
//
// A plane is reachable only from its own network namespace (tests run it in a
// private one), so the record names that namespace; a reader in another
// namespace must not try to use the plane (it would dial nothing, or worse,
// someone else's port).
import { mkdir, readFile, readlink, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { cacheDir } from "./binaries.ts";
import type { ControlPlane } from "./controlPlane.ts";
import { httpGet } from "./net.ts";
import { isAlive, terminate, type ProcessRecord } from "./processes.ts";

export interface PlaneState {
  version: string;
  server: string;
  kubeconfigPath: string;
  caFile: string;
  dataDir: string;
  binDir: string;
  /** `readlink /proc/<kube-apiserver pid>/ns/net`, e.g. "net:[4026532290]". */
  netns: string;
  /** In start order: etcd, kube-apiserver, kube-controller-manager. */
  processes: ProcessRecord[];
  startedAt: string;
}

/** Where the background plane keeps its record and its data. */
export function devPlaneDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheDir(env), "dev-plane");
}

export function planeStateFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(devPlaneDir(env), "state.json");
}

export async function describePlane(plane: ControlPlane): Promise<PlaneState> {
  const processes = plane.processes();
  const apiServer = processes.find((p) => p.name === "kube-apiserver");
  if (!apiServer) throw new Error("kube-apiserver is not running");
  return {
    version: plane.version,
    server: plane.server,
    kubeconfigPath: plane.kubeconfigPath,
    caFile: plane.caFile,
    dataDir: plane.dataDir,
    binDir: plane.binDir,
    netns: await readlink(`/proc/${apiServer.pid}/ns/net`),
    processes,
    startedAt: new Date().toISOString(),
  };
}

export async function writePlaneState(state: PlaneState, file = planeStateFile()): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  // Write-then-rename: a concurrent reader sees the old record or the new one, never half.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + "\n");
  await rename(tmp, file);
}

export async function readPlaneState(file = planeStateFile()): Promise<PlaneState | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as PlaneState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read the plane record ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export async function removePlaneState(file = planeStateFile()): Promise<void> {
  await rm(file, { force: true });
}

/** Whether every recorded component is still the very process that was recorded. */
export async function isPlaneRunning(state: PlaneState): Promise<boolean> {
  const alive = await Promise.all(state.processes.map(isAlive));
  return alive.length > 0 && alive.every(Boolean);
}

/** Whether the plane's API server answers /readyz from this process's network namespace. */
export async function isPlaneReachable(state: PlaneState, timeoutMs = 2_000): Promise<boolean> {
  try {
    return (await httpGet(`${state.server}/readyz`, { caFile: state.caFile }, timeoutMs)).status === 200;
  } catch {
    return false;
  }
}

/** Stops the recorded processes, newest first, by their recorded identity only. */
export async function stopRecordedPlane(state: PlaneState, graceMs = 10_000): Promise<void> {
  for (const record of [...state.processes].reverse()) await terminate(record, graceMs);
}
