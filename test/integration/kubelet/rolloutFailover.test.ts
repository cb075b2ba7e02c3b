// Resume after failover (issue 24, item 3) on the real kubelet: two `healthgate run` processes
// share the chart's leader Lease, one leading and one a standby already running (warm caches,
// waiting on the Lease). The leader is SIGKILLed in the middle of a bake; the standby takes the
// expired Lease and resumes from the HealthTarget record at the same step, with the same admitted
// pod and the bake's remaining time, admits no pod twice and drops no gate. Gate writes are
// counted per pod from the API server's audit log (the operators run as the chart's
// ServiceAccount, whose requests it records).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RolloutState } from "../../../src/api/v1alpha1/index.ts";
import { freePort } from "../../../src/devcluster/net.ts";
import { operatorKubeconfigPath, testClients } from "../../support/kube.ts";
import { OPERATOR_NAMESPACE } from "../../support/operatorIdentity.ts";
import { sumSamples } from "../../support/promText.ts";
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
/** Long enough for the Lease (15 s) to expire and the standby to lead while the bake still runs. */
const BAKE_SECONDS = 40;

/** The chart's leader Lease (values.yaml leaderElection.id, in the release namespace, where its Role grants it). */
const LEASE = { namespace: OPERATOR_NAMESPACE, name: "healthgate" };

interface Run {
  identity: string;
  child: ChildProcess;
  exited: Promise<NodeJS.Signals | null>;
  output: () => string;
  /** The sum of a metric's samples on the process's /metrics. */
  metric: (name: string, labels?: Record<string, string>) => Promise<number>;
  port: number;
}
const runs: Run[] = [];

const coordination = () => testClients().kc.makeApiClient(CoordinationV1Api);

async function deleteLease(): Promise<void> {
  await coordination()
    .deleteNamespacedLease(LEASE)
    .catch(() => undefined);
}

async function leaseHolder(): Promise<{ holder: string; transitions: number } | undefined> {
  try {
    const lease = await coordination().readNamespacedLease(LEASE);
    return { holder: lease.spec?.holderIdentity ?? "", transitions: lease.spec?.leaseTransitions ?? 0 };
  } catch {
    return undefined;
  }
}

// No earlier holder's record may delay the first election, and none may outlive the test.
beforeEach(() => deleteLease());
afterEach(async () => {
  for (const run of runs.splice(0)) {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
    await run.exited;
  }
  await deleteLease();
});

/**
 * `healthgate run` as its own process, as the chart's ServiceAccount, in the namespace, electing
 * a leader through the chart's Lease under `identity`.
 */
async function healthgateRun(namespace: string, identity: string): Promise<Run> {
  const port = await freePort("127.0.0.1");
  const child = spawn(
    process.execPath,
    [
      path.join(repo, "src/cli/main.ts"),
      "run",
      `--kubeconfig=${operatorKubeconfigPath()}`,
      `--namespaces=${namespace}`,
      `--leader-election-namespace=${LEASE.namespace}`,
      `--leader-election-id=${LEASE.name}`,
      `--leader-election-identity=${identity}`,
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
  const run: Run = {
    identity,
    child,
    exited,
    port,
    output: () => output,
    async metric(name, labels = {}) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return sumSamples(text, name, labels);
    },
  };
  runs.push(run);
  return run;
}

async function waitReady(run: Run): Promise<void> {
  await waitFor(
    async () => {
      if (run.child.exitCode !== null) throw new Error(`${run.identity} exited:\n${run.output()}`);
      const res = await fetch(`http://127.0.0.1:${run.port}/readyz`);
      expect(res.status, await res.text()).toBe(200);
      return true;
    },
    { what: `${run.identity}'s /readyz to pass (caches synced)`, timeoutMs: 90_000, intervalMs: 250 },
  );
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

describe("a gated rollout survives SIGKILL of the leader mid-bake, resumed by a running standby (real kubelet)", () => {
  const hg = useControllerHarness({ app });

  it(
    "the standby resumes at the same step, with the bake's remaining time ±2 s, admitting no pod twice and dropping no gate",
    { timeout: 420_000 },
    async () => {
      const ns = hg.namespace;
      await hg.createPolicy(
        makePolicy(
          "web",
          withRollout({ steps: [{ weight: 33, bake: `${BAKE_SECONDS}s` }, { weight: 100 }] }),
        ),
      );
      // Given two operators, both running with warm caches: one leads, the other waits on the Lease
      const a = await healthgateRun(ns, "healthgate-a");
      const b = await healthgateRun(ns, "healthgate-b");
      await Promise.all([waitReady(a), waitReady(b)]);
      const holder = await waitFor(
        async () => {
          const lease = await leaseHolder();
          expect([a.identity, b.identity], `Lease holder: ${JSON.stringify(lease)}`).toContain(lease?.holder);
          return lease!;
        },
        { what: "one operator to hold the Lease", timeoutMs: 60_000, intervalMs: 250 },
      );
      const [leader, standby] = holder.holder === a.identity ? [a, b] : [b, a];
      expect(await leader.metric("healthgate_leader", { lease: LEASE.name })).toBe(1);
      expect(await standby.metric("healthgate_leader", { lease: LEASE.name })).toBe(0);

      await hg.apply(web("1"));
      const stable = (
        await waitForRecord(
          ns,
          (s) => s.phase === "Completed" && s.stableRevision !== undefined,
          "revision 1 stable",
        )
      ).stableRevision!;

      // and revision 2 baking its first step
      await setImage(ns, "2");
      const baking = await waitForRecord(
        ns,
        (s) => s.revision !== stable && s.phase === "Baking" && s.step === 0,
        "step 1 to bake",
      );
      const revision = baking.revision!;
      expect(baking.admitted).toHaveLength(1);
      const bakeEnds = Date.parse(baking.bakeStartedAt!) + BAKE_SECONDS * 1000;

      // When the leader is killed outright, mid-bake
      leader.child.kill("SIGKILL");
      expect(await leader.exited).toBe("SIGKILL");
      expect(Date.now(), "killed before the bake ended").toBeLessThan(bakeEnds);

      // Then the standby, the same process all along, takes the Lease once it expires, before the bake ends
      await waitFor(
        async () => {
          expect((await leaseHolder())?.holder).toBe(standby.identity);
          return true;
        },
        { what: `the standby (${standby.identity}) to take the Lease`, timeoutMs: 60_000, intervalMs: 250 },
      );
      const tookOver = Date.now();
      expect(standby.child.exitCode, standby.output()).toBeNull();
      expect((await leaseHolder())!.transitions).toBe(holder.transitions + 1);
      expect(await standby.metric("healthgate_leader", { lease: LEASE.name })).toBe(1);
      expect(
        tookOver,
        "the standby led before the bake ended (else there was no remaining time to keep)",
      ).toBeLessThan(bakeEnds - 2_000);

      // and every time the record is read until the step ends: step 1, the same bake start, the same admitted pod
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
      expect(
        resumed.length,
        "the record was read while step 1 still baked after the takeover",
      ).toBeGreaterThan(0);
      for (const s of resumed) {
        expect(s.bakeStartedAt, "the bake keeps its start across the failover").toBe(baking.bakeStartedAt);
        expect(s.admitted).toEqual(baking.admitted);
      }
      expect(done.admitted).toHaveLength(3);

      // The next step's first admission came when the recorded bake ended, ±2 s: the successor waited
      // out the remaining time, neither none nor a fresh bake. (The pod was deep-checked and passing
      // by then; the last pod is created only after it, so it comes later.)
      const pods = (await livePods(ns, "web")).filter((p) => hash(p) === revision);
      expect(pods).toHaveLength(3);
      const laterAdmissions = pods
        .filter((p) => p.metadata?.name !== baking.admitted![0])
        .map((p) => new Date(gateOf(p)!.lastTransitionTime!).getTime())
        .sort((x, y) => x - y);
      expect(laterAdmissions).toHaveLength(2);
      const firstLater = laterAdmissions[0]!;
      expect(firstLater - bakeEnds, "next admission − recorded bake end, ms").toBeGreaterThanOrEqual(-2_000);
      expect(firstLater - bakeEnds, "next admission − recorded bake end, ms").toBeLessThanOrEqual(2_000);
      expect(laterAdmissions[1]!).toBeGreaterThanOrEqual(bakeEnds - 2_000);

      // Every new pod's gate was written exactly once (True), by one operator or the other: none
      // admitted twice, none dropped.
      for (const pod of pods) expect(gateOf(pod)?.status, pod.metadata?.name).toBe("True");
      const writes = gateWritesPerPod(ns);
      for (const pod of pods)
        expect(writes.get(pod.metadata!.name!), `gate writes of ${pod.metadata?.name}`).toBe(1);
    },
  );
});
