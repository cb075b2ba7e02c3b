// A control plane in the background, for fast iteration:
//
//   node hack/cluster.ts up [--no-netns]   start one (unless one is running) and record it
//   node hack/cluster.ts status            show the record and whether the plane is alive
//   node hack/cluster.ts down              stop it
//   node hack/cluster.ts pid               print kube-apiserver's PID if the plane is alive (exit 1 if not)
//
// By default the plane runs in its own network namespace set up exactly as
// `npm test` sets up its own (loopback up, 198.18.0.0/15 local), so pod IPs in
// that range can carry EndpointSlices and real HTTP servers.
// `HEALTHGATE_REUSE_PLANE=1 npm test` enters that namespace (nsenter, by the
// recorded PID) and the suite reuses the plane instead of starting one. `--no-netns` starts it in the current
// namespace instead (reachable from your shell, 127.x pod IPs only).
//
// Run with Node 24: node_modules/.bin/node hack/cluster.ts up
import { execFile, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";
import { defaultBinDir, startControlPlane } from "../src/devcluster/controlPlane.ts";
import { currentNetns } from "../src/devcluster/net.ts";
import { testPlaneNodes } from "../src/devcluster/nodes.ts";
import {
  describePlane,
  devPlaneDir,
  isPlaneReachable,
  isPlaneRunning,
  planeStateFile,
  readPlaneState,
  removePlaneState,
  stopRecordedPlane,
  writePlaneState,
  type PlaneState,
} from "../src/devcluster/state.ts";

const execFileAsync = promisify(execFile);
const INSIDE_NETNS = "HEALTHGATE_CLUSTER_NETNS_READY";
const say = (message: string) => process.stderr.write(`cluster: ${message}\n`);

async function liveState(): Promise<PlaneState | undefined> {
  const state = await readPlaneState();
  return state && (await isPlaneRunning(state)) ? state : undefined;
}

async function up(args: string[]): Promise<void> {
  const running = await liveState();
  if (running) {
    say(`already running: ${running.server} (${running.netns}); 'down' stops it`);
    return;
  }
  const ownNetns = !args.includes("--no-netns");
  if (ownNetns && !process.env[INSIDE_NETNS]) {
    // Re-run this command inside a new network namespace. The plane's
    // processes keep the namespace alive after this command returns.
    const unshare = process.getuid?.() === 0 ? ["--net"] : ["--user", "--map-root-user", "--net"];
    const child = spawn("unshare", [...unshare, "--", process.execPath, ...process.argv.slice(1)], {
      stdio: "inherit",
      env: { ...process.env, [INSIDE_NETNS]: "1" },
    });
    const code = await new Promise<number>((resolve) => child.on("exit", (c) => resolve(c ?? 1)));
    process.exitCode = code;
    return;
  }
  if (ownNetns) {
    await execFileAsync("ip", ["link", "set", "lo", "up"]);
    await execFileAsync("ip", ["route", "add", "local", "198.18.0.0/15", "dev", "lo"]);
  }
  const dataDir = `${devPlaneDir()}/data`;
  await rm(dataDir, { recursive: true, force: true });
  // The same nodes as the test plane's, so that `HEALTHGATE_REUSE_PLANE=1 npm test` can run on it.
  const plane = await startControlPlane({
    binDir: defaultBinDir(),
    dataDir,
    detached: true,
    log: say,
    ...testPlaneNodes(ownNetns),
  });
  const state = await describePlane(plane);
  await writePlaneState(state);
  say(`up in ${plane.startupMs} ms; record in ${planeStateFile()}`);
  say(`kubeconfig: ${plane.kubeconfigPath}`);
  if (ownNetns)
    say(`reachable only inside ${state.netns}: nsenter --target ${plane.pids.kubeApiServer} --net`);
}

async function status(): Promise<void> {
  const state = await readPlaneState();
  if (!state) {
    say("no plane recorded");
    process.exitCode = 1;
    return;
  }
  const running = await isPlaneRunning(state);
  const here = await currentNetns();
  const reachable = running && state.netns === here && (await isPlaneReachable(state));
  process.stdout.write(
    JSON.stringify({ ...state, running, reachableFromHere: reachable, netnsHere: here }, null, 2) + "\n",
  );
  if (!running) process.exitCode = 1;
}

async function down(): Promise<void> {
  const state = await readPlaneState();
  if (!state) {
    say("no plane recorded");
    return;
  }
  await stopRecordedPlane(state);
  await removePlaneState();
  say(`stopped (logs kept in ${state.dataDir})`);
}

async function pid(): Promise<void> {
  const state = await liveState();
  const apiServer = state?.processes.find((p) => p.name === "kube-apiserver");
  if (!apiServer) {
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`${apiServer.pid}\n`);
}

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (args: string[]) => Promise<void>> = { up, status, down, pid };
const run = command ? commands[command] : undefined;
if (!run) {
  say("usage: node hack/cluster.ts up [--no-netns] | status | down | pid");
  process.exitCode = 2;
} else {
  try {
    await run(rest);
  } catch (err) {
    say((err as Error).message);
    process.exitCode = 1;
  }
}
