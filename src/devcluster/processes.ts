// Child processes of a local control plane: spawned with their output in a log
// file, identified by PID *and* start time, and stopped only by that identity.
//
// A PID alone is not an identity: once a process exits its PID can be reused,
// so a state file read minutes later could name someone else's process. The
// kernel's start time (field 22 of /proc/<pid>/stat) does not repeat for a PID,
// so every signal below is sent only after both match.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";

export interface ProcessRecord {
  /** Component name, e.g. "kube-apiserver". */
  name: string;
  pid: number;
  /** Start time in clock ticks since boot, from /proc/<pid>/stat. */
  startTime: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The fields of /proc/<pid>/stat from field 3 (state) on: index 0 is field 3, index 11 field 14
 * (utime), index 19 field 22 (starttime). Undefined when no such process exists.
 */
export async function procStatFields(pid: number): Promise<string[] | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses; fields
  // after the last ")" are plain.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** The start time of `pid`, or undefined when no such process is alive. Zombies count as gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const fields = await procStatFields(pid);
  if (!fields || fields[0] === "Z" || fields[0] === "X") return undefined;
  return fields[19];
}

/** Whether the process the record names is still the one running under that PID. */
export async function isAlive(record: ProcessRecord): Promise<boolean> {
  return (await processStartTime(record.pid)) === record.startTime;
}

function signal(record: ProcessRecord, sig: NodeJS.Signals): void {
  try {
    process.kill(record.pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

async function waitGone(record: ProcessRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(record)) {
    if (Date.now() >= deadline) return false;
    await delay(50);
  }
  return true;
}

/**
 * SIGTERM the recorded process, wait up to `graceMs` for it to exit, then
 * SIGKILL it (kube-apiserver can take more than 10 s to shut down). Does
 * nothing when the PID no longer names the recorded process.
 */
export async function terminate(record: ProcessRecord, graceMs: number): Promise<void> {
  if (!(await isAlive(record))) return;
  signal(record, "SIGTERM");
  if (await waitGone(record, graceMs)) return;
  if (await isAlive(record)) signal(record, "SIGKILL");
  if (!(await waitGone(record, 5_000))) {
    throw new Error(`${record.name} (pid ${record.pid}) did not exit after SIGKILL`);
  }
}

/** A long-running process whose stdout and stderr are appended to `logPath`. */
export class LoggedProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<Exit> | undefined;
  private current: ProcessRecord | undefined;
  readonly name: string;
  readonly binary: string;
  readonly args: readonly string[];
  readonly logPath: string;
  /** Start in its own session so it outlives this Node process (dev CLI). */
  private readonly detached: boolean;

  constructor(name: string, binary: string, args: readonly string[], logPath: string, detached: boolean) {
    this.name = name;
    this.binary = binary;
    this.args = args;
    this.logPath = logPath;
    this.detached = detached;
  }

  get record(): ProcessRecord | undefined {
    return this.current;
  }

  /** Resolves when the process exits; never rejects. */
  get exited(): Promise<Exit> {
    if (!this.exitPromise) throw new Error(`${this.name} was never started`);
    return this.exitPromise;
  }

  async start(): Promise<ProcessRecord> {
    const log = openSync(this.logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(this.binary, this.args, { stdio: ["ignore", log, log], detached: this.detached });
    } finally {
      closeSync(log); // the child holds its own copy
    }
    this.child = child;
    this.exitPromise = new Promise((resolve) => {
      child.once("exit", (code, sig) => resolve({ code, signal: sig }));
      child.once("error", () => resolve({ code: null, signal: null }));
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (err) =>
        reject(new Error(`cannot start ${this.name} (${this.binary}): ${err.message}`)),
      );
    });
    if (this.detached) child.unref();
    const pid = child.pid;
    const startTime = pid === undefined ? undefined : await processStartTime(pid);
    if (pid === undefined || startTime === undefined) {
      throw new Error(`${this.name} exited immediately; see ${this.logPath}`);
    }
    this.current = { name: this.name, pid, startTime };
    return this.current;
  }

  async stop(graceMs: number): Promise<void> {
    const record = this.current;
    if (!record) return;
    await terminate(record, graceMs);
    // Reap our own child so it does not linger as a zombie.
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) await this.exited;
    this.current = undefined;
    this.child = undefined;
  }
}
