// Resume after failover (issue 24, item 3) on the real kubelet: `healthgate run` is SIGKILLed in
// the middle of a bake; a successor process resumes from the HealthTarget record at the same step,
// with the same admitted pod and the bake's remaining time, admits no pod twice and drops no gate.
// Gate writes are counted per pod from the API server's audit log (the operators run as the
// chart's ServiceAccount, whose requests it records).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RolloutState } from "../../../src/api/v1alpha1/index.ts";
import { freePort } from "../../../src/devcluster/net.ts";
import { operatorKubeconfigPath } from "../../support/kube.ts";
import { livePods } from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";
import { installCrd, makePolicy, useControllerHarness } from "../controller/support.ts";
import {
  app,
  gateOf,
  hash,
  readRecord,
  setImage,
  waitForRecord,
  web,
  withRollout,
} from "./rolloutSupport.ts";

const repo = path.resolve(import.meta.dirname, "../../..");
const BAKE_SECONDS = 30;

interface Run {
  child: ChildProcess;
  exited: Promise<NodeJS.Signals | null>;
  output: () => string;
}
const runs: Run[] = [];

afterEach(async () => {
  for (const run of runs.splice(0)) {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
    await run.exited;
  }
});

/** `healthgate run` as its own process, as the chart's ServiceAccount, in the namespace. */
async function healthgateRun(namespace: string): Promise<Run> {
  const port = await freePort("127.0.0.1");
  const child = spawn(
    process.execPath,
    [
      path.join(repo, "src/cli/main.ts"),
      "run",
      `--kubeconfig=${operatorKubeconfigPath()}`,
      `--namespaces=${namespace}`,
      "--no-leader-elect",
      `--http-port=${port}`,
      "--log-level=info",
    ],
    { cwd: repo, env: { ...process.env, KUBECONFIG: "" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once("exit", (_c, signal) => resolve(signal)),
  );
  const run = { child, exited, output: () => output };
  runs.push(run);
  return run;
}

/** Successful writes of pods/status per pod in the namespace, from the audit log. */
function gateWritesPerPod(namespace: string): Map<string, number> {
  const log = process.env.HEALTHGATE_TEST_AUDIT_LOG;
  expect(log, "the plane's audit log").toBeTruthy();
  const counts = new Map<string, number>();
  for (const line of fs.readFileSync(log!, "utf8").split("\n")) {
    if (!line.includes(namespace) || !line.includes('"status"')) continue;
    const e = JSON.parse(line) as {
      stage: string;
      verb: string;
      objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
      responseStatus?: { code?: number };
    };
    const ref = e.objectRef;
    if (e.stage !== "ResponseComplete" || e.verb !== "patch" || ref?.resource !== "pods") continue;
    if (ref.subresource !== "status" || ref.namespace !== namespace || (e.responseStatus?.code ?? 0) >= 300)
      continue;
    counts.set(ref.name ?? "", (counts.get(ref.name ?? "") ?? 0) + 1);
  }
  return counts;
}

beforeAll(() => installCrd());

describe("a gated rollout survives SIGKILL of the operator mid-bake (real kubelet)", () => {
  const hg = useControllerHarness({ app });

  it("the successor resumes at the same step, with the bake's remaining time, admitting no pod twice and dropping no gate", async () => {
    const ns = hg.namespace;
    await hg.createPolicy(
      makePolicy("web", withRollout({ steps: [{ weight: 33, bake: `${BAKE_SECONDS}s` }, { weight: 100 }] })),
    );
    const first = await healthgateRun(ns);
    await hg.apply(web("1"));
    const stable = (
      await waitForRecord(
        ns,
        (s) => s.phase === "Completed" && s.stableRevision !== undefined,
        "revision 1 stable",
      )
    ).stableRevision!;

    // Given revision 2 baking its first step
    await setImage(ns, "2");
    const baking = await waitForRecord(
      ns,
      (s) => s.revision !== stable && s.phase === "Baking" && s.step === 0,
      "step 1 to bake",
    );
    const revision = baking.revision!;
    expect(baking.admitted).toHaveLength(1);

    // When the operator is killed outright, mid-bake, and a successor starts
    first.child.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    const killedAt = Date.now();
    expect(killedAt, "killed before the bake ended").toBeLessThan(
      Date.parse(baking.bakeStartedAt!) + BAKE_SECONDS * 1000,
    );
    await healthgateRun(ns);

    // Then, every time the record is read until the step ends: step 1, the same bake start, the same admitted pod
    const seen: RolloutState[] = [];
    const done = await waitFor(
      async () => {
        const state = (await readRecord(ns))!;
        seen.push(state);
        expect(state.phase).toBe("Completed");
        expect(state.stableRevision).toBe(revision);
        return state;
      },
      { what: "the successor to complete the rollout", timeoutMs: 180_000, intervalMs: 250 },
    );
    const resumed = seen.filter((s) => s.step === 0 && s.revision === revision);
    expect(resumed.length, "the record was read while step 1 still baked after the kill").toBeGreaterThan(0);
    for (const s of resumed) {
      expect(s.bakeStartedAt, "the bake keeps its start across the failover").toBe(baking.bakeStartedAt);
      expect(s.admitted).toEqual(baking.admitted);
    }
    expect(done.admitted).toHaveLength(3);

    // The next step admitted its pods only when the recorded bake had run (−2 s): the successor
    // waited out the remaining time, not none.
    const pods = (await livePods(ns, "web")).filter((p) => hash(p) === revision);
    expect(pods).toHaveLength(3);
    const bakeEnds = Date.parse(baking.bakeStartedAt!) + BAKE_SECONDS * 1000;
    // (A fresh bake would show as another bakeStartedAt in the record, checked above.)
    const laterAdmissions = pods
      .filter((p) => p.metadata?.name !== baking.admitted![0])
      .map((p) => new Date(gateOf(p)!.lastTransitionTime!).getTime());
    for (const at of laterAdmissions)
      expect(at, "not before the recorded bake ended").toBeGreaterThanOrEqual(bakeEnds - 2_000);

    // Every new pod's gate was written exactly once (True), by one operator or the other: none
    // admitted twice, none dropped.
    for (const pod of pods) expect(gateOf(pod)?.status, pod.metadata?.name).toBe("True");
    const writes = gateWritesPerPod(ns);
    for (const pod of pods)
      expect(writes.get(pod.metadata!.name!), `gate writes of ${pod.metadata?.name}`).toBe(1);
  });
});
