// Humans drive a gated rollout (issue 24, item 2) on the real kubelet: promote skips a bake, abort
// aborts, retry re-runs an aborted revision's deep checks — through healthgate's CLI, the kubectl
// plugin (kubectl-healthgate on PATH) and plain `kubectl annotate` on the HealthTarget record.
// A command for another revision never acts.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { ROLLOUT_COMMAND_ANNOTATION } from "../../../src/policy/rollout/commands.ts";
import { testClients, testKubeconfigPath } from "../../support/kube.ts";
import { livePods } from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";
import { installCrd, kubectl, useControllerHarness } from "../controller/support.ts";
import { app, gateOf, hash, readyOf, setImage, stableAtTag1, waitForRecord } from "./rolloutSupport.ts";

const execFileAsync = promisify(execFile);
const repo = path.resolve(import.meta.dirname, "../../..");
const node = path.join(repo, "node_modules/.bin/node");

beforeAll(() => installCrd());

/** `healthgate rollout …` as a user runs it: exit code and output. */
async function healthgate(args: string[]) {
  try {
    const { stdout } = await execFileAsync(node, [path.join(repo, "src/cli/main.ts"), "rollout", ...args], {
      env: { ...process.env, KUBECONFIG: testKubeconfigPath() },
    });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: `${e.stdout}${e.stderr}` };
  }
}

/** `kubectl healthgate rollout …`: kubectl finds the plugin executable kubectl-healthgate on PATH. */
async function plugin(args: string[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hg-plugin-"));
  fs.symlinkSync(path.join(repo, "src/cli/kubectl-healthgate.ts"), path.join(dir, "kubectl-healthgate"));
  const { stdout } = await execFileAsync(
    path.join(inject("k8sBinDir"), "kubectl"),
    ["healthgate", "rollout", ...args],
    {
      env: {
        ...process.env,
        KUBECONFIG: testKubeconfigPath(),
        PATH: `${dir}:${path.dirname(node)}:${process.env.PATH ?? ""}`,
      },
    },
  );
  fs.rmSync(dir, { recursive: true });
  return stdout;
}

async function deploymentEvents(namespace: string, reason: string) {
  const list = JSON.parse(await kubectl(["get", "events.events.k8s.io", "-n", namespace, "-o", "json"])) as {
    items: { reason?: string; regarding?: { name?: string } }[];
  };
  return list.items.filter((e) => e.reason === reason && e.regarding?.name === "web");
}

describe("humans drive a gated rollout (real kubelet)", () => {
  const hg = useControllerHarness({ app });

  it("promote skips a bake (CLI), abort aborts (kubectl plugin), retry re-runs the checks (kubectl annotate)", async () => {
    const ns = hg.namespace;
    const stable = await stableAtTag1(hg, { steps: [{ weight: 33, bake: "10m" }, { weight: 100 }] });

    // Given revision 2 baking its first step for 10 minutes
    await setImage(ns, "2");
    const two = (
      await waitForRecord(ns, (s) => s.revision !== stable && s.phase === "Baking", "step 1 to bake")
    ).revision!;
    const shown = await healthgate(["status", "web", "-n", ns]);
    expect(shown.code, shown.stdout).toBe(0);
    expect(shown.stdout).toContain(`revision:  ${two} (stable ${stable})`);
    expect(shown.stdout).toMatch(/step: {6}1\/2 \(weight 33%\), bake 10m, \d+s remaining/);
    expect(shown.stdout).toContain("admitted:  1/3 new pods");

    // When a human promotes it through the CLI, the remaining bake is skipped and the rollout completes
    const promoted = await healthgate(["promote", "web", "-n", ns]);
    expect(promoted.stdout).toContain(`${ROLLOUT_COMMAND_ANNOTATION}=promote/${two}/1 written`);
    expect(promoted.code, promoted.stdout).toBe(0);
    expect(promoted.stdout).toContain("Applied");
    const done = await waitForRecord(
      ns,
      (s) => s.phase === "Completed" && s.stableRevision === two,
      "the promoted revision to complete",
      120_000,
    );
    expect(done.lastCommand).toMatchObject({ value: `promote/${two}/1`, result: "Applied" });
    expect(await deploymentEvents(ns, "RolloutPromoted")).toHaveLength(1);
    const watched = await healthgate(["status", "web", "-n", ns, "--watch"]);
    expect(watched.code, watched.stdout).toBe(0);
    expect(watched.stdout).toContain("phase:     Completed");

    // Given revision 3 baking; a stale command (for revision 2) is consumed and changes nothing
    await setImage(ns, "3");
    const three = (
      await waitForRecord(ns, (s) => s.revision !== two && s.phase === "Baking", "step 1 to bake")
    ).revision!;
    await kubectl(["annotate", "htgt", "web", "-n", ns, `${ROLLOUT_COMMAND_ANNOTATION}=abort/${two}`]);
    const stale = await waitForRecord(
      ns,
      (s) => s.lastCommand?.value === `abort/${two}`,
      "the stale command",
    );
    expect(stale.lastCommand?.result).toBe("Rejected");
    expect(stale.phase).toBe("Baking");

    // When a human aborts through the kubectl plugin: aborted, the admitted pod's gate closed
    const admitted = stale.admitted!;
    expect(admitted).toHaveLength(1);
    const out = await plugin(["abort", "web", "-n", ns]);
    expect(out).toContain("Applied");
    const aborted = await waitForRecord(ns, (s) => s.phase === "Aborted", "the abort");
    expect(aborted.reason).toBe("AbortRequested");
    expect(aborted.dropped).toEqual(admitted);
    await waitFor(
      async () => {
        const pod = (await livePods(ns, "web")).find((p) => p.metadata?.name === admitted[0]);
        expect(pod && gateOf(pod)?.status).toBe("False");
        return true;
      },
      { what: "the admitted pod's gate to close", timeoutMs: 30_000, intervalMs: 250 },
    );
    // (the kubelet turns Ready False on its next status sync after the gate closes)
    await waitFor(
      async () => {
        expect((await readyOf(ns, three)).length).toBe(0);
        return true;
      },
      { what: "no pod of the aborted revision to stay Ready", timeoutMs: 30_000, intervalMs: 250 },
    );
    const annotation = async () =>
      (
        (await testClients().custom.getNamespacedCustomObject({
          group: "healthgate.io",
          version: "v1alpha1",
          plural: "healthtargets",
          namespace: ns,
          name: "web",
        })) as { metadata: { annotations?: Record<string, string> } }
      ).metadata.annotations?.[ROLLOUT_COMMAND_ANNOTATION];
    expect(await annotation(), "the command is consumed").toBeUndefined();

    // When a human retries with plain kubectl: the checks run again, the pod is admitted again
    await kubectl(["annotate", "htgt", "web", "-n", ns, `${ROLLOUT_COMMAND_ANNOTATION}=retry/${three}`]);
    const rebaking = await waitForRecord(
      ns,
      (s) => s.phase === "Baking" && s.lastCommand?.value === `retry/${three}`,
      "the retried rollout to bake step 1 again",
      120_000,
    );
    expect(rebaking.lastCommand?.result).toBe("Applied");
    expect(rebaking.retriedAt).toBeDefined();
    expect(rebaking.admitted).toHaveLength(1);
    await waitFor(
      async () => {
        expect((await readyOf(ns, three)).length).toBe(1);
        return true;
      },
      { what: "the re-admitted pod to turn Ready", timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(await deploymentEvents(ns, "RolloutRetried")).toHaveLength(1);
    // and promoting it with kubectl too completes it
    await kubectl(["annotate", "htgt", "web", "-n", ns, `${ROLLOUT_COMMAND_ANNOTATION}=promote/${three}/1`]);
    await waitForRecord(
      ns,
      (s) => s.phase === "Completed" && s.stableRevision === three,
      "the retried revision to complete",
      120_000,
    );
    expect((await livePods(ns, "web")).every((p) => hash(p) === three)).toBe(true);
  });
});
