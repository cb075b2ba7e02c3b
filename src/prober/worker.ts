// The prober's own thread: keeps every target's schedule and runs the probes, so a main thread
// busy relisting 10,000 pods does not make checks late. Started by ProberHandle; talks only
// through messages (protocol.ts). Targets come and go without a restart; a target removed (or
// changed) while its probe runs gives no result — its probe is aborted.
import { parentPort, workerData } from "node:worker_threads";
import { deepCheckOutcome } from "../policy/rollout/deepCheck.ts";
import { probeOnce, type RunningProbe } from "./httpProbe.ts";
import type { FromWorker, ToWorker, WorkerConfig } from "./protocol.ts";
import { ProbeSchedule, type Due } from "./schedule.ts";
import type { Cohort, DeepCheckResult, ProbeTarget } from "./types.ts";

if (!parentPort) throw new Error("src/prober/worker.ts runs as a worker thread; start it with ProberHandle");
const port = parentPort;
const config = workerData as WorkerConfig;

const clock = () => performance.now();
const targets = new Map<string, ProbeTarget>();
const schedule = new ProbeSchedule(Math.random);
const running = new Map<string, { target: ProbeTarget; probe: RunningProbe; cancelled: boolean }>();
/** Due checks waiting for a free slot (bounded concurrency), from `waitingHead` on; `queued` holds their keys. */
let waiting: Due[] = [];
let waitingHead = 0;
const queued = new Set<string>();

let results: DeepCheckResult[] = [];
let sent: Record<Cohort, number> = { new: 0, stable: 0 };
let overruns = 0;
let flushTimer: NodeJS.Timeout | undefined;
let wakeTimer: NodeJS.Timeout | undefined;
let wakeAt = Infinity;
let stopping = false;

const post = (message: FromWorker) => port.postMessage(message);

function flush(): void {
  flushTimer = undefined;
  if (results.length === 0 && sent.new === 0 && sent.stable === 0 && overruns === 0) return;
  post({ type: "results", results, sent, overruns, inFlight: running.size });
  results = [];
  sent = { new: 0, stable: 0 };
  overruns = 0;
}

function flushSoon(): void {
  if (results.length >= 512) flush();
  else flushTimer ??= setTimeout(flush, config.batchMs);
}

function arm(): void {
  const next = schedule.nextDueAt();
  if (next === undefined || stopping) return;
  if (wakeTimer && next >= wakeAt) return;
  clearTimeout(wakeTimer);
  wakeAt = next;
  wakeTimer = setTimeout(wake, Math.max(0, next - clock()));
}

function wake(): void {
  wakeTimer = undefined;
  wakeAt = Infinity;
  for (const due of schedule.takeDue(clock())) {
    if (running.has(due.key) || queued.has(due.key)) overruns++;
    else {
      waiting.push(due);
      queued.add(due.key);
    }
  }
  pump();
  arm();
}

function pump(): void {
  while (running.size < config.concurrency && waitingHead < waiting.length && !stopping) {
    const due = waiting[waitingHead++]!;
    queued.delete(due.key);
    const target = targets.get(due.key);
    if (target && !running.has(due.key)) start(target, due.dueAt);
  }
  if (waitingHead === waiting.length) {
    waiting = [];
    waitingHead = 0;
  }
}

function start(target: ProbeTarget, dueAt: number): void {
  const latenessMs = Math.max(0, clock() - dueAt);
  const entry = { target, probe: probeOnce(target), cancelled: false };
  running.set(target.key, entry);
  sent[target.cohort]++;
  void entry.probe.measurement.then((m) => {
    if (running.get(target.key) === entry) running.delete(target.key);
    // Removed or changed while it ran: this measurement is of something no longer asked for.
    if (entry.cancelled || targets.get(target.key) !== target) return;
    results.push({
      ...m,
      key: target.key,
      namespace: target.namespace,
      pod: target.pod,
      revision: target.revision,
      cohort: target.cohort,
      outcome: deepCheckOutcome(m, target.expect),
      latenessMs,
    });
    flushSoon();
    pump();
  });
}

function cancel(key: string): void {
  const run = running.get(key);
  if (!run) return;
  running.delete(key);
  run.cancelled = true;
  run.probe.cancel();
}

const sameTarget = (a: ProbeTarget, b: ProbeTarget) => JSON.stringify(a) === JSON.stringify(b);

port.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "upsert": {
      const now = clock();
      for (const target of message.targets) {
        const previous = targets.get(target.key);
        if (previous && sameTarget(previous, target)) continue;
        if (previous) cancel(target.key);
        targets.set(target.key, target);
        schedule.upsert(target.key, target.intervalMs, now);
      }
      arm();
      return;
    }
    case "remove":
      for (const key of message.keys) {
        targets.delete(key);
        schedule.remove(key);
        cancel(key);
      }
      return;
    case "stop":
      stopping = true;
      clearTimeout(wakeTimer);
      clearTimeout(flushTimer);
      for (const key of [...running.keys()]) cancel(key);
      post({ type: "stopped" });
      port.close();
      return;
  }
});
