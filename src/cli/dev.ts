// `healthgate dev`: the README's first command. With no cluster configured it
// starts a local control plane (built from source by hack/build-k8s.sh) with
// three nodes in three zones that run the real kubelet (fake containers: this
// process answers 200 on every path of each pod's ports, on the pod's IP), then
// installs the CRD, runs the operator, applies an example, and shows
// `kubectl get hpol` with the conditions healthgate wrote. On its own plane it then shows a
// gated rollout (src/cli/devRollout.ts): examples/quick-rollout.yaml in namespace
// <namespace>-rollout, a new image stepping through real readiness to completion, then a bad
// image (a tag ending in "-bad": its deep check answers 500) aborted.
//
//   healthgate dev [--once] [--example examples/web-api.yaml] [--namespace healthgate-demo] [--timeout 90]
//
// --once exits after showing the result (used by its test); without it the
// operator keeps running until Ctrl-C.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { ADMISSION_V1_DISCOVERY, admissionList, servesMutatingPolicies } from "../admission/enforce.ts";
import { DEPLOYMENT_CONDITION_PREFIX, TargetConditionType } from "../api/v1alpha1/index.ts";
import { Operator } from "../controller/operator.ts";
import { defaultBinDir, startControlPlane, type ControlPlane } from "../devcluster/controlPlane.ts";
import { zonedNodes } from "../devcluster/nodes.ts";
import { PodApps } from "../devcluster/podApps.ts";
import {
  BAD_TAG_SUFFIX,
  conditionLine,
  devApp,
  followRollout,
  readyCounts,
  RolloutReader,
  waitForStable,
} from "./devRollout.ts";
import { loadKubeConfig } from "../kube/client.ts";
import { createLogger } from "../observability/logger.ts";

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "..", "..");

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const defaultIo: Io = {
  out: (line) => process.stdout.write(line + "\n"),
  err: (line) => process.stderr.write(line + "\n"),
};

/** Whether the user has a cluster configured (then we use it and start nothing). */
function configuredKubeconfig(): string | undefined {
  if (process.env.KUBECONFIG) return process.env.KUBECONFIG;
  const home = path.join(os.homedir(), ".kube", "config");
  return existsSync(home) ? home : undefined;
}

export async function runDev(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      once: { type: "boolean", default: false },
      example: { type: "string", default: path.join(repoRoot, "examples", "web-api.yaml") },
      namespace: { type: "string", default: "healthgate-demo" },
      timeout: { type: "string", default: "90" },
      "log-level": { type: "string", default: "warn" },
    },
    strict: true,
  });
  const timeoutMs = Number(values.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    io.err(`healthgate dev: --timeout must be a positive number of seconds, got "${values.timeout}"`);
    return 2;
  }
  const ns = values.namespace;

  let plane: ControlPlane | undefined;
  let kubeconfigPath = configuredKubeconfig();
  let kubectl = "kubectl";
  if (!kubeconfigPath) {
    const binDir = process.env.KUBEBUILDER_ASSETS ?? defaultBinDir();
    io.out(
      `No cluster configured (KUBECONFIG, ~/.kube/config): starting a local control plane from ${path.basename(binDir)} binaries…`,
    );
    // Loopback addresses: reachable from this process without privileges or a network namespace.
    plane = await startControlPlane({ binDir, nodes: zonedNodes(3, "127.19") });
    kubeconfigPath = plane.kubeconfigPath;
    if (existsSync(path.join(binDir, "kubectl"))) kubectl = path.join(binDir, "kubectl");
    io.out(
      `Control plane ${plane.version} up in ${(plane.startupMs / 1000).toFixed(1)} s at ${plane.server}, ` +
        `with nodes node-a, node-b, node-c in zones zone-a, zone-b, zone-c`,
    );
  } else {
    io.out(`Using the configured cluster (${kubeconfigPath}).`);
  }
  const k = async (...args: string[]) =>
    (await execFileAsync(kubectl, ["--kubeconfig", kubeconfigPath, ...args], { maxBuffer: 16 << 20 })).stdout;

  const logger = createLogger(values["log-level"] as "warn");
  let operator: Operator | undefined;
  let apps: PodApps | undefined;
  let rolloutApps: PodApps | undefined;
  const stop = async () => {
    await operator?.stop();
    await apps?.stop();
    await rolloutApps?.stop();
    await plane?.stop();
  };
  try {
    await k("apply", "--server-side", "--field-manager=healthgate-dev", "-f", path.join(repoRoot, "crds"));
    for (const crd of [
      "healthpolicies.healthgate.io",
      "healthtargets.healthgate.io",
      "healthreleases.healthgate.io",
    ])
      await k("wait", "--for=condition=Established", "--timeout=60s", `crd/${crd}`);
    io.out("Installed the HealthPolicy, HealthTarget and HealthRelease CRDs.");
    // Enforce's admission policies, as the chart installs them, with this operator's identity
    // (yours: it runs in this process) as the one allowed to write HealthTarget status.
    const writer = (await k("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")).trim();
    // Before 1.36 the cluster serves no MutatingAdmissionPolicies: Enforce reports EnforceUnavailable.
    const mutating = servesMutatingPolicies(await k("get", "--raw", ADMISSION_V1_DISCOVERY));
    const admission = path.join(mkdtempSync(path.join(tmpdir(), "healthgate-dev-")), "admission.json");
    writeFileSync(admission, JSON.stringify(admissionList("healthgate", writer, false, mutating)));
    await k("apply", "--server-side", "--field-manager=healthgate-dev", "-f", admission);
    io.out(
      mutating
        ? "Installed Enforce's admission policies."
        : "Installed the record-status admission policy; this cluster serves no MutatingAdmissionPolicies " +
            "(admissionregistration.k8s.io/v1, Kubernetes 1.36+), so Enforce audits only.",
    );

    operator = new Operator({
      kubeConfig: loadKubeConfig(kubeconfigPath),
      logger,
      port: 0,
      leaderElection: { enabled: false },
    });
    await operator.start();
    io.out(`Operator running (health and metrics on port ${operator.boundPort}).`);

    await k("create", "namespace", ns).catch(() => undefined);
    if (plane) {
      // The example's application, on its pods' IPs: every path answers 200.
      apps = await PodApps.start({ kubeConfig: loadKubeConfig(kubeconfigPath), namespace: ns, app: devApp });
    }
    await k("apply", "-n", ns, "-f", values.example);
    io.out(`Applied ${path.relative(repoRoot, values.example)} in namespace ${ns}.`);
    // The rollout example's images run only on our own plane (its pods' apps are served here).
    // Its first revision comes up while the first example settles.
    const rolloutNs = `${ns}-rollout`;
    let rollout: RolloutReader | undefined;
    if (plane) {
      await k("create", "namespace", rolloutNs).catch(() => undefined);
      rolloutApps = await PodApps.start({
        kubeConfig: loadKubeConfig(kubeconfigPath),
        namespace: rolloutNs,
        app: devApp,
      });
      await k("apply", "-n", rolloutNs, "-f", ROLLOUT_EXAMPLE);
      rollout = new RolloutReader(loadKubeConfig(kubeconfigPath), rolloutNs, "checkout", "checkout");
    }

    // Wait until what is printed is settled: the policy's status is for its current generation
    // and every Deployment it governs carries the same verdicts (the Deployment's conditions are
    // written by another reconcile than the policy's, and Enforce starts a rollout that the
    // operator looks at again).
    const deadline = Date.now() + timeoutMs;
    const snapshot = async () => ({
      policies: (JSON.parse(await k("get", "hpol", "-n", ns, "-o", "json")) as { items: PolicyView[] }).items,
      deployments: (
        JSON.parse(await k("get", "deploy", "-n", ns, "-o", "json")) as { items: DeploymentView[] }
      ).items,
      records: (JSON.parse(await k("get", "htgt", "-n", ns, "-o", "json")) as { items: RecordView[] }).items,
    });
    // On our own plane the example's pods run on the real kubelet: wait for the rollout that
    // Enforce starts to finish too, so the headroom verdict is about the pods that stay.
    const done = (view: Awaited<ReturnType<typeof snapshot>>) =>
      settled(view) && (!plane || view.deployments.every(rolledOut));
    while (!done(await snapshot())) {
      if (Date.now() > deadline) {
        throw new Error(
          `the HealthPolicy status in ${ns} did not settle within ${values.timeout} s (observedGeneration, rollouts, ` +
            `conditions on the policy and on its Deployments); see kubectl describe hpol -n ${ns}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    io.out("");
    io.out(`$ kubectl get hpol -n ${ns}`);
    io.out((await k("get", "hpol", "-n", ns)).trimEnd());
    const { policies, deployments } = await snapshot();
    io.out("");
    io.out("Policy conditions:");
    for (const p of policies) {
      if (policies.length > 1) io.out(` ${p.metadata.name}:`);
      for (const c of p.status?.conditions ?? [])
        io.out(`  ${c.type}=${c.status} (${c.reason}): ${c.message}`);
    }
    for (const d of deployments) {
      const ours = (d.status?.conditions ?? []).filter((c) => c.type.startsWith(DEPLOYMENT_CONDITION_PREFIX));
      io.out(
        `Deployment ${d.metadata.name}: ${ours.map((c) => `${c.type}=${c.status} (${c.reason ?? ""})`).join(", ")}`,
      );
    }
    if (plane) {
      io.out("");
      io.out(`$ kubectl get pods -n ${ns} -o wide`);
      io.out((await k("get", "pods", "-n", ns, "-o", "wide")).trimEnd());
    }
    if (rollout) await showRollout(rollout, { io, k, timeoutMs });
    if (values.once) return 0;
    io.out("");
    io.out(
      `Running; try: ${kubectl === "kubectl" ? "kubectl" : "kubectl"} --kubeconfig ${kubeconfigPath} describe hpol -n ${ns}. Ctrl-C stops.`,
    );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
    return 0;
  } finally {
    await stop();
  }
}

const ROLLOUT_EXAMPLE = path.join(repoRoot, "examples", "quick-rollout.yaml");

/**
 * The gated rollout, from live objects: the example's first revision stable, a new image
 * stepping through the policy's steps to completion, then a bad image aborted.
 */
async function showRollout(
  reader: RolloutReader,
  { io, k, timeoutMs }: { io: Io; k: (...args: string[]) => Promise<string>; timeoutMs: number },
): Promise<void> {
  const { namespace, deployment } = reader;
  const stable = await waitForStable(reader, timeoutMs);
  const image = stable.image.slice(0, stable.image.lastIndexOf(":"));
  io.out("");
  io.out(
    `Gated rollout: ${path.relative(repoRoot, ROLLOUT_EXAMPLE)} in namespace ${namespace}, ` +
      `${stable.replicas} replicas, ${stable.steps} steps; revision ${stable.state!.stableRevision} ` +
      `(${stable.image}) is stable with ${readyCounts(stable, stable.state!.stableRevision!).fresh} pods Ready.`,
  );
  const change = async (tag: string) => {
    const args = ["set", "image", "-n", namespace, `deploy/${deployment}`, `${deployment}=${image}:${tag}`];
    io.out(`$ kubectl ${args.join(" ")}`);
    await k(...args);
  };
  const indent = (line: string) => io.out(`  ${line}`);

  await change("1.1");
  const good = await followRollout(reader, {
    out: indent,
    previous: stable.state!.stableRevision,
    what: "the rollout of 1.1 to complete",
    timeoutMs,
    done: (v) =>
      v.state?.phase === "Completed" &&
      v.state.stableRevision === v.state.revision &&
      readyCounts(v, v.state.revision!).fresh === v.replicas &&
      readyCounts(v, v.state.revision!).old === 0 &&
      v.condition?.status === "True",
  });
  io.out(conditionLine(good));

  await change(`1.2${BAD_TAG_SUFFIX}`);
  const bad = await followRollout(reader, {
    out: indent,
    previous: good.state!.stableRevision,
    what: `the rollout of 1.2${BAD_TAG_SUFFIX} to abort`,
    timeoutMs,
    done: (v) => v.state?.phase === "Aborted" && v.condition?.status === "False",
  });
  io.out(conditionLine(bad));
}

interface ConditionView {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface PolicyView {
  metadata: { name: string; generation?: number };
  spec?: { mode?: string };
  status?: {
    observedGeneration?: number;
    conditions?: ConditionView[];
    targets?: { name: string; governed?: boolean }[];
  };
}
/** A HealthTarget record: its Enforced condition says whether the release reached the template. */
interface RecordView {
  metadata: { name: string };
  status?: { conditions?: ConditionView[] };
}
interface DeploymentView {
  metadata: { name: string; generation?: number };
  spec?: { replicas?: number };
  status?: {
    conditions?: ConditionView[];
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
  };
}

/** Whether the Deployment's current template is fully rolled out: every replica updated and available, no old ones. */
function rolledOut(d: DeploymentView): boolean {
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  return (
    s.observedGeneration === d.metadata.generation &&
    s.replicas === want &&
    s.updatedReplicas === want &&
    s.availableReplicas === want
  );
}

const STATUS_RANK: Record<string, number> = { False: 0, Unknown: 1, True: 2 };

/** The record of Deployment `name` says Enforced=True, or why it is not for a lasting reason (not Releasing). */
function releaseSettled(records: RecordView[], name: string): boolean {
  const enforced = records
    .find((r) => r.metadata.name === name)
    ?.status?.conditions?.find((c) => c.type === TargetConditionType.Enforced);
  return enforced !== undefined && (enforced.status === "True" || enforced.reason !== "Releasing");
}

/**
 * Whether every policy's status is current (observedGeneration), reports ProbesCompliant, and
 * agrees with the `healthgate.io/…` conditions of the Deployments it governs: for each type,
 * the policy shows the worst status among them.
 */
export function settled({
  policies,
  deployments,
  records,
}: {
  policies: PolicyView[];
  deployments: DeploymentView[];
  records: RecordView[];
}): boolean {
  return (
    policies.length > 0 &&
    policies.every((policy) => {
      const status = policy.status;
      if (!status || status.observedGeneration !== policy.metadata.generation) return false;
      const conditions = status.conditions ?? [];
      if (!conditions.some((c) => c.type === "ProbesCompliant")) return false;
      const names = (status.targets ?? []).filter((t) => t.governed).map((t) => t.name);
      // Enforce: the release must have reached each template (Enforced, or a lasting reason why
      // not). While it is on its way, the Deployment still runs its own probes and both verdicts
      // agree on what is about to change.
      // (Unless the cluster cannot Enforce: the policy's Ready says so, and nothing is released.)
      const enforcing =
        policy.spec?.mode === "Enforce" &&
        !conditions.some((c) => c.type === "Ready" && c.reason === "EnforceUnavailable");
      if (enforcing && !names.every((name) => releaseSettled(records, name))) return false;
      const governed = names.map((name) => deployments.find((d) => d.metadata.name === name));
      if (governed.some((d) => d === undefined)) return false;
      return conditions
        .filter((c) => c.type !== "Ready")
        .every((c) => {
          const statuses = governed.map(
            (d) =>
              d?.status?.conditions?.find((x) => x.type === DEPLOYMENT_CONDITION_PREFIX + c.type)?.status,
          );
          if (statuses.some((x) => x === undefined)) return false;
          const worst = statuses.reduce<string>(
            (w, x) => ((STATUS_RANK[x!] ?? 1) < (STATUS_RANK[w] ?? 1) ? x! : w),
            "True",
          );
          return worst === c.status;
        });
    })
  );
}
