// The README's first command, `npm run dev` (hack/dev.sh), run the way a new user runs it: no
// KUBECONFIG and no ~/.kube/config, so it starts its own control plane from the cached
// binaries, installs the CRD, runs the operator, applies examples/web-api.yaml and prints
// `kubectl get hpol` with the conditions healthgate wrote, then shows a gated rollout
// (examples/quick-rollout.yaml: a good image completing step by step, a bad one aborted).
// `--once` makes it exit by itself.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, inject, it } from "vitest";
import { KUBERNETES_VERSION } from "../../src/devcluster/binaries.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
/**
 * How long the command may take before the test gives up on it (a plane starts in seconds, the
 * whole command takes about a minute on an idle machine: bench/dev.ts measures it).
 */
const BOUND_MS = 300_000;

/** The environment of a user with no cluster configured, whose build cache holds the plane's binaries. */
function newUserEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const name of Object.keys(env)) {
    if (
      name === "KUBECONFIG" ||
      name === "KUBEBUILDER_ASSETS" ||
      name.startsWith("HEALTHGATE_") ||
      name === "XDG_CACHE_HOME"
    ) {
      delete env[name];
    }
  }
  // hack/build-k8s.sh and src/devcluster/binaries.ts look in $HEALTHGATE_CACHE/k8s/<version>.
  const binDir = inject("k8sBinDir");
  const cache = path.dirname(path.dirname(binDir));
  if (path.basename(binDir) === KUBERNETES_VERSION && path.basename(path.dirname(binDir)) === "k8s") {
    env.HEALTHGATE_CACHE = cache;
  } else {
    env.KUBEBUILDER_ASSETS = binDir; // binaries from elsewhere (envtest): the documented override
  }
  return env;
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const bound = setTimeout(() => {
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
      reject(
        new Error(
          `${command} ${args.join(" ")} still running after ${BOUND_MS / 1000} s\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        ),
      );
    }, BOUND_MS);
    child.on("error", (err) => {
      clearTimeout(bound);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(bound);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A progress line of the rollout, as src/cli/devRollout.ts prints it. */
const PROGRESS =
  /^ +\+[\d.]+s {2}step (\d)\/3 \((\d+)%\) +(\w+(?: \(\w+\))?) +admitted (\d)\/3 {2}Ready: (\d) new, (\d) old$/;

interface Progress {
  step: number;
  phase: string;
  admitted: number;
  readyNew: number;
  readyOld: number;
}

/** The progress lines from `from` up to the next line that is not one. */
function progressAfter(lines: string[], from: number): Progress[] {
  const found: Progress[] = [];
  for (const line of lines.slice(from + 1)) {
    const m = PROGRESS.exec(line);
    if (!m) break;
    found.push({
      step: Number(m[1]),
      phase: m[3]!,
      admitted: Number(m[4]),
      readyNew: Number(m[5]),
      readyOld: Number(m[6]),
    });
  }
  return found;
}

it(
  "`npm run dev -- --once` starts a plane, enforces the example and shows a compliant, Ready policy, then a gated rollout",
  { timeout: BOUND_MS + 20_000 },
  async () => {
    // Given a user with no cluster configured (fresh HOME, no KUBECONFIG) and the binaries in the build cache
    const home = await mkdtemp(path.join(tmpdir(), "healthgate-readme-home-"));
    try {
      // When they run the README's first command (npm run dev → bash hack/dev.sh), in its self-exiting mode
      const { code, stdout, stderr } = await run("bash", ["hack/dev.sh", "--once"], newUserEnv(home));

      // Then it succeeds, having started its own control plane
      expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
      expect(stdout).toContain("No cluster configured");
      expect(stdout).toContain(`Control plane ${KUBERNETES_VERSION} up`);
      // and it shows `kubectl get hpol`: the example in Enforce mode, 1 target, compliant, Ready, and
      // headroom insufficient: the plane's three zones hold the 4 pods unevenly, so losing a zone is too much
      const lines = stdout.split("\n");
      const header = lines.findIndex((l) => l.startsWith("$ kubectl get hpol -n healthgate-demo"));
      expect(header, stdout).toBeGreaterThanOrEqual(0);
      expect(lines[header + 1]).toMatch(
        /^NAME\s+MODE\s+TARGETS\s+COMPLIANT\s+HEADROOM\s+ROLLOUT\s+READY\s+AGE\s*$/,
      );
      expect(lines[header + 2], stdout).toMatch(/^web-api\s+Enforce\s+1\s+1\s+False\s+True\s+\d+s\s*$/);
      // and the policy's conditions as the README prints them
      const conditions = lines
        .slice(lines.indexOf("Policy conditions:") + 1)
        .filter((l) => l.startsWith("  "));
      expect(conditions.find((l) => l.startsWith("  ProbesCompliant="))).toMatch(
        /^ {2}ProbesCompliant=True \(Compliant\): /,
      );
      expect(conditions.find((l) => l.startsWith("  LivenessShallow="))).toMatch(
        /^ {2}LivenessShallow=True \(Shallow\): /,
      );
      expect(conditions.find((l) => l.startsWith("  CorrelatedFailure="))).toMatch(
        /^ {2}CorrelatedFailure=False \(NoCorrelatedFailure\): no correlated failure: at most 50% /,
      );
      expect(conditions.find((l) => l.startsWith("  Ready="))).toMatch(
        /^ {2}Ready=True \(Reconciled\): governing 1 Deployment/,
      );
      // (the zone view, end to end: zones of the real nodes the scheduler put the pods on)
      expect(conditions.find((l) => l.startsWith("  HeadroomSufficient="))).toMatch(
        /^ {2}HeadroomSufficient=False \(ZoneLossTooLarge\): HPA target 60% at minReplicas 4: losing zone zone-[abc] \([234] pods\) leaves/,
      );
      // and the same verdicts, prefixed, on the Deployment
      const deployment = lines.find((l) => l.startsWith("Deployment web-api: "));
      expect(deployment, stdout).toContain("healthgate.io/ProbesCompliant=True");
      expect(deployment).toContain("healthgate.io/LivenessShallow=True");
      expect(deployment).toContain("healthgate.io/CorrelatedFailure=False (NoCorrelatedFailure)");
      expect(deployment).toContain("healthgate.io/HeadroomSufficient=False (ZoneLossTooLarge)");
      // and the example's pods, rolled out with healthgate's probes, Ready on the real kubelet in three zones
      const pods = lines.slice(lines.indexOf("$ kubectl get pods -n healthgate-demo -o wide") + 2);
      const running = pods.filter((l) => /^web-api-\S+\s+1\/1\s+Running\s+0\s/.test(l));
      expect(running.length, stdout).toBe(4);
      expect(
        new Set(running.map((l) => /\s(node-[abc])\s/.exec(l)?.[1])).size,
        stdout,
      ).toBeGreaterThanOrEqual(2);

      // and then the gated rollout: the example's first revision stable with 3 pods Ready
      expect(lines, stdout).toContainEqual(
        expect.stringMatching(
          /^Gated rollout: examples\/quick-rollout\.yaml in namespace healthgate-demo-rollout, 3 replicas, 3 steps; revision [a-z0-9]+ \(registry\.example\/checkout:1\.0\) is stable with 3 pods Ready\.$/,
        ),
      );
      // a new image, stepping through the steps in order on real readiness: one new pod Ready while
      // step 1 bakes, two while step 2 bakes, then all three and no old one
      const good = lines.indexOf(
        "$ kubectl set image -n healthgate-demo-rollout deploy/checkout checkout=registry.example/checkout:1.1",
      );
      expect(good, stdout).toBeGreaterThan(0);
      const progress = progressAfter(lines, good);
      expect(progress.length, stdout).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < progress.length; i++) {
        expect(progress[i]!.step, stdout).toBeGreaterThanOrEqual(progress[i - 1]!.step);
        expect(progress[i]!.admitted, stdout).toBeGreaterThanOrEqual(progress[i - 1]!.admitted);
      }
      expect(progress, stdout).toContainEqual(
        expect.objectContaining({ step: 1, phase: "Baking", admitted: 1, readyNew: 1 }),
      );
      expect(progress, stdout).toContainEqual(
        expect.objectContaining({ step: 2, phase: "Baking", admitted: 2, readyNew: 2 }),
      );
      expect(progress.at(-1), stdout).toEqual({
        step: 3,
        phase: "Completed",
        admitted: 3,
        readyNew: 3,
        readyOld: 0,
      });
      expect(lines[good + progress.length + 1], stdout).toMatch(
        /^healthgate\.io\/RolloutHealthy=True \(RolloutComplete\): revision [a-z0-9]+ of Deployment checkout is stable$/,
      );
      // then a bad image (its deep check fails): no new pod ever Ready, the old three serving, aborted
      const bad = lines.indexOf(
        "$ kubectl set image -n healthgate-demo-rollout deploy/checkout checkout=registry.example/checkout:1.2-bad",
      );
      expect(bad, stdout).toBeGreaterThan(good);
      const aborting = progressAfter(lines, bad);
      expect(aborting.length, stdout).toBeGreaterThanOrEqual(1);
      for (const p of aborting) expect(p.readyNew, stdout).toBe(0);
      expect(aborting.at(-1), stdout).toEqual({
        step: 1,
        phase: "Aborted (DeepCheckFailed)",
        admitted: 0,
        readyNew: 0,
        readyOld: 3,
      });
      expect(lines[bad + aborting.length + 1], stdout).toMatch(
        /^healthgate\.io\/RolloutHealthy=False \(DeepCheckFailed\): deep check \/health\/deep failed (?:[3-9]|[1-9]\d+) times in a row \(failureLimit 3\) on new pod\(s\) checkout-\S+ while stable pods .* passed\. Rollout of revision [a-z0-9]+ aborted/,
      );
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  },
);
