// `healthgate rollout status|promote|abort|retry <deployment> [-n namespace] [--watch]`: drive and
// read a gated rollout. The commands write one annotation on the Deployment's HealthTarget record
// (healthgate.io/rollout-command), exactly what `kubectl annotate` would write, so whoever may
// patch healthtargets may promote, abort or retry; healthgate consumes it and records the effect
// in the record's status.rollout.lastCommand. `status` reads the record, the policy and the pods,
// and each pod's latest deep check from the operator's memory, through the API server's service
// proxy to the operator's metrics Service (GET /rollout/deep-checks; src/controller/deepCheckReport.ts).
import { parseArgs } from "node:util";
import type { Pod } from "../api/k8s.ts";
import type { HealthPolicy, RolloutState } from "../api/v1alpha1/index.ts";
import { durationSeconds } from "../api/v1alpha1/index.ts";
import { KubeClient, loadKubeConfig, resources, statusCodeOf, type KubeObject } from "../kube/client.ts";
import { createMetrics } from "../observability/metrics.ts";
import {
  formatCommand,
  ROLLOUT_COMMAND_ANNOTATION,
  ROLLOUT_VERBS,
  type RolloutVerb,
} from "../policy/rollout/commands.ts";
import { DEEP_CHECK_GATE } from "../api/v1alpha1/healthpolicy.ts";
import { DEEP_CHECKS_PATH, type DeepCheckReport } from "../controller/deepCheckReport.ts";

/** Where the operator's metrics Service is: <namespace>/<service>:<port> (a port name or number). */
export const DEFAULT_OPERATOR = "healthgate/healthgate-metrics:http-metrics";

export const ROLLOUT_USAGE = `Usage: healthgate rollout <status|promote|abort|retry> <deployment> [options]

  status    step, bake remaining, admitted/total, each pod's deep-check gate, why it waits
  promote   skip the current step's remaining bake: the next step admits new pods
  abort     abort the rollout (admitted new pods' gates close down to the serving floor)
  retry     re-run an aborted revision's deep checks from step 1

The commands annotate the Deployment's HealthTarget record (${ROLLOUT_COMMAND_ANNOTATION}); they
need RBAC to patch healthtargets in the namespace. Each names the revision (and for promote the
step) it is for, so it never acts on a later one.

Options:
  -n, --namespace <ns>   the Deployment's namespace (default: the kubeconfig context's, else default)
  -w, --watch            status: print again on every change, until the rollout completes or aborts
      --kubeconfig <f>   kubeconfig file (default: $KUBECONFIG, ~/.kube/config)
      --no-wait          promote/abort/retry: do not wait for healthgate to apply the command
      --operator <ns>/<service>:<port>
                         status: the operator's metrics Service, whose /rollout/deep-checks gives
                         each pod's latest deep check from the leader's memory, read through the
                         API server's service proxy (needs get on services/proxy there; default
                         ${DEFAULT_OPERATOR})

Exit codes: 0 done (status: Completed, or not watching); 1 rejected by healthgate, or the
watched rollout aborted; 2 usage; 3 healthgate did not answer within 60 s.
`;

interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

interface Record {
  metadata: KubeObject["metadata"];
  status?: { rollout?: RolloutState };
}

/** What `status` shows, from live objects. */
export interface StatusView {
  namespace: string;
  deployment: string;
  replicas: number;
  state: RolloutState | undefined;
  steps: { weight: number; bake?: string }[] | undefined;
  pending: string | undefined;
  pods: {
    name: string;
    revision: string;
    ready: boolean;
    gate?: string;
    gateReason?: string;
    gateMessage?: string;
  }[];
  /** The operator's deep-check report (latest result per pod), or why it could not be read. */
  deepChecks?: Pick<DeepCheckReport, "pods" | "unchecked"> | { unavailable: string };
  now: number;
}

/** One pod's deep check as `status` prints it: "deep-check pass 200 in 12 ms 3s ago (Passing)". */
function deepCheckText(view: StatusView, pod: string): string {
  const report = view.deepChecks;
  if (!report || "unavailable" in report) return "";
  const unchecked = report.unchecked?.find((u) => u.pod === pod);
  if (unchecked) return `  deep-check unchecked (${unchecked.reason})`;
  const checked = report.pods?.find((p) => p.pod === pod);
  if (!checked) return "";
  const l = checked.latest;
  if (!l) return `  deep-check no result yet (${checked.standing})`;
  const ago = Math.max(0, Math.round((view.now - Date.parse(l.at)) / 1000));
  const answer = l.statusCode !== undefined ? ` ${l.statusCode}` : "";
  const error = l.errorClass ? ` ${l.errorClass}` : "";
  return `  deep-check ${l.outcome}${answer}${error} in ${l.durationMs} ms ${ago}s ago (${checked.standing})`;
}

/** Seconds left of the current step's bake, when it bakes. */
export function bakeRemainingSeconds(view: Pick<StatusView, "state" | "steps" | "now">): number | undefined {
  const { state, steps, now } = view;
  if (state?.phase !== "Baking" || !state.bakeStartedAt || state.step === undefined) return undefined;
  const bake = durationSeconds(steps?.[state.step]?.bake ?? "") ?? 0;
  return Math.max(0, Math.ceil((Date.parse(state.bakeStartedAt) + bake * 1000 - now) / 1000));
}

export function formatStatus(view: StatusView): string {
  const { state } = view;
  const lines = [`Deployment ${view.namespace}/${view.deployment}`];
  if (!state) {
    lines.push(
      "  no rollout state recorded (is the Deployment governed by a HealthPolicy with spec.rollout?)",
    );
    return lines.join("\n") + "\n";
  }
  const stable = state.stableRevision ?? "none yet";
  lines.push(`  phase:     ${state.phase}${state.reason ? ` (${state.reason})` : ""}`);
  lines.push(`  revision:  ${state.revision ?? "?"} (stable ${stable})`);
  if (state.step !== undefined && view.steps) {
    const step = view.steps[state.step];
    const remaining = bakeRemainingSeconds(view);
    lines.push(
      `  step:      ${state.step + 1}/${view.steps.length} (weight ${state.weight ?? step?.weight}%)` +
        (step?.bake ? `, bake ${step.bake}` : "") +
        (remaining !== undefined ? `, ${remaining}s remaining` : ""),
    );
  }
  if (state.revision !== state.stableRevision)
    lines.push(
      `  admitted:  ${state.admitted?.length ?? 0}/${view.replicas} new pods` +
        (state.budget !== undefined ? ` (this step admits ${state.budget})` : ""),
    );
  if (state.message) lines.push(`  why:       ${state.message}`);
  const rb = state.rollback;
  if (rb)
    lines.push(
      `  rollback:  ${rb.phase}: revision ${rb.failedRevision} → stable ${rb.toRevision}` +
        (rb.at ? ` at ${rb.at}` : "") +
        (rb.manager ? `; written back by field manager ${rb.manager}` : "") +
        (rb.message ? `; ${rb.message}` : ""),
    );
  if (state.lastCommand)
    lines.push(
      `  command:   ${state.lastCommand.value} ${state.lastCommand.result} at ${state.lastCommand.at}: ${state.lastCommand.message}`,
    );
  if (view.pending) lines.push(`  pending:   ${view.pending} (not yet consumed by healthgate)`);
  if (view.pods.length > 0) {
    lines.push("  pods (deep-check gate: healthgate's latest verdict on the pod):");
    for (const p of view.pods)
      lines.push(
        `    ${p.name}  revision ${p.revision}${p.revision === state.stableRevision ? " (stable)" : ""}  ` +
          `${p.ready ? "Ready" : "not Ready"}  gate ${p.gate ?? "-"}` +
          (p.gateReason ? ` ${p.gateReason}` : "") +
          (p.gate === "False" && p.gateMessage ? `: ${p.gateMessage}` : "") +
          deepCheckText(view, p.name),
      );
  }
  if (view.deepChecks && "unavailable" in view.deepChecks) {
    lines.push(`  deep checks: not shown: ${view.deepChecks.unavailable}`);
  }
  return lines.join("\n") + "\n";
}

function contextNamespace(kubeconfig: string | undefined): string {
  const kc = loadKubeConfig(kubeconfig);
  return kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
}

/** Parses --operator: <namespace>/<service>:<port>. */
export function parseOperator(
  value: string,
): { namespace: string; service: string; port: string } | undefined {
  const m = /^([a-z0-9][-a-z0-9]{0,62})\/([a-z0-9][-a-z0-9]{0,62}):([a-z0-9][-a-z0-9]{0,14})$/.exec(value);
  return m ? { namespace: m[1]!, service: m[2]!, port: m[3]! } : undefined;
}

class RolloutCli {
  private readonly client: KubeClient;
  private readonly namespace: string;
  private readonly deployment: string;
  private readonly operator: { namespace: string; service: string; port: string };
  constructor(
    client: KubeClient,
    namespace: string,
    deployment: string,
    operator: { namespace: string; service: string; port: string },
  ) {
    this.client = client;
    this.namespace = namespace;
    this.deployment = deployment;
    this.operator = operator;
  }

  /**
   * The leader's deep-check report, through the service proxy. The Service picks a replica per
   * request and only the leader has results (the others answer 503): a few tries find it.
   */
  async deepChecks(): Promise<NonNullable<StatusView["deepChecks"]>> {
    const { namespace, service, port } = this.operator;
    let last = "";
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        const report = await this.client.serviceProxyGet<DeepCheckReport>(this.operator, DEEP_CHECKS_PATH, {
          namespace: this.namespace,
          deployment: this.deployment,
        });
        return { pods: report.pods ?? [], unchecked: report.unchecked ?? [] };
      } catch (err) {
        const code = statusCodeOf(err);
        last =
          code === 403
            ? `forbidden to get services/proxy in ${namespace} (grant get on services/proxy for ${service}, or use --operator)`
            : code === 404
              ? `no Service ${namespace}/${service} with port ${port} (set --operator <namespace>/<service>:<port>)`
              : ((err as { body?: { message?: string } }).body?.message ?? (err as Error).message);
        if (code !== 503) break;
      }
    }
    return { unavailable: last };
  }

  record(): Promise<Record> {
    return this.client.get<Record & KubeObject>(resources.healthTargets, {
      namespace: this.namespace,
      name: this.deployment,
    });
  }

  async view(): Promise<StatusView> {
    const record = await this.record();
    const target = { namespace: this.namespace, name: this.deployment };
    const deployment = await this.client.get<KubeObject & { spec?: { replicas?: number } }>(
      resources.deployments,
      target,
    );
    const policyName = (record as { spec?: { policy?: string } }).spec?.policy;
    const policy = policyName
      ? await this.client
          .get<HealthPolicy & KubeObject>(resources.healthPolicies, {
            namespace: this.namespace,
            name: policyName,
          })
          .catch(() => undefined)
      : undefined;
    const pods = (
      await this.client.list(resources.pods, this.namespace, {
        labelSelector: `pod-template-hash`,
      })
    ).items as unknown as Pod[];
    const owned = pods.filter((p) => {
      const hash = p.metadata.labels?.["pod-template-hash"];
      return (
        hash !== undefined && p.metadata.ownerReferences?.some((o) => o.name === `${this.deployment}-${hash}`)
      );
    });
    const deepChecks = record.status?.rollout ? await this.deepChecks() : undefined;
    return {
      namespace: this.namespace,
      deployment: this.deployment,
      replicas: deployment.spec?.replicas ?? 1,
      ...(deepChecks ? { deepChecks } : {}),
      state: record.status?.rollout,
      steps: policy?.spec.rollout?.steps,
      pending: record.metadata.annotations?.[ROLLOUT_COMMAND_ANNOTATION],
      pods: owned
        .filter((p) => !p.metadata.deletionTimestamp)
        .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
        .map((p) => {
          const gate = p.status?.conditions?.find((c) => c.type === DEEP_CHECK_GATE);
          return {
            name: p.metadata.name,
            revision: p.metadata.labels?.["pod-template-hash"] ?? "",
            ready: p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
            ...(gate ? { gate: gate.status } : {}),
            ...(gate?.reason ? { gateReason: gate.reason } : {}),
            ...(gate?.message ? { gateMessage: gate.message } : {}),
          };
        }),
      now: Date.now(),
    };
  }

  /** Writes the annotation: what `kubectl annotate --overwrite` writes. */
  async command(value: string): Promise<void> {
    const record = await this.record();
    const annotations = record.metadata.annotations;
    const op = annotations
      ? { op: "add" as const, path: `/metadata/annotations/healthgate.io~1rollout-command`, value }
      : { op: "add" as const, path: "/metadata/annotations", value: { [ROLLOUT_COMMAND_ANNOTATION]: value } };
    await this.client.jsonPatch(
      resources.healthTargets,
      { namespace: this.namespace, name: this.deployment },
      [op],
    );
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runRollout(args: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        namespace: { type: "string", short: "n" },
        watch: { type: "boolean", short: "w" },
        kubeconfig: { type: "string" },
        "no-wait": { type: "boolean" },
        operator: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    io.stderr(`${(err as Error).message}\n\n${ROLLOUT_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(ROLLOUT_USAGE);
    return 0;
  }
  const [verb, deployment, ...extra] = positionals;
  if (!verb || !deployment || extra.length > 0 || !["status", ...ROLLOUT_VERBS].includes(verb)) {
    io.stderr(`expected a command and one Deployment\n\n${ROLLOUT_USAGE}`);
    return 2;
  }
  const operator = parseOperator(values.operator ?? DEFAULT_OPERATOR);
  if (!operator) {
    io.stderr(`--operator ${values.operator}: expected <namespace>/<service>:<port>\n\n${ROLLOUT_USAGE}`);
    return 2;
  }
  const namespace = values.namespace ?? contextNamespace(values.kubeconfig);
  const client = new KubeClient(loadKubeConfig(values.kubeconfig), { metrics: createMetrics() });
  const cli = new RolloutCli(client, namespace, deployment, operator);
  try {
    if (verb === "status") return await status(cli, values.watch ?? false, io);
    return await command(cli, verb as RolloutVerb, !values["no-wait"], io);
  } catch (err) {
    const code = statusCodeOf(err);
    io.stderr(
      code === 404
        ? `no HealthTarget record ${namespace}/${deployment}: is Deployment ${deployment} governed by a HealthPolicy?\n`
        : code === 403
          ? `forbidden: ${(err as Error).message}\n(promote, abort and retry need RBAC to patch healthtargets in ${namespace})\n`
          : `${(err as Error).message}\n`,
    );
    return 1;
  }
}

async function status(cli: RolloutCli, watch: boolean, io: Io): Promise<number> {
  let last = "";
  for (;;) {
    const view = await cli.view();
    const text = formatStatus(view);
    // Seconds remaining change every second: print on every other change, and each 5 s of bake.
    const key = text.replace(/, \d+s remaining/, "");
    if (!watch || key !== last) {
      io.stdout(watch && last ? `\n${text}` : text);
      last = key;
    }
    const phase = view.state?.phase;
    if (!watch) return 0;
    if (phase === "Completed" && view.state?.revision === view.state?.stableRevision) return 0;
    if (phase === "Aborted") return 1;
    await sleep(1000);
  }
}

async function command(cli: RolloutCli, verb: RolloutVerb, wait: boolean, io: Io): Promise<number> {
  const state = (await cli.record()).status?.rollout;
  if (!state?.revision) {
    io.stderr("no rollout recorded yet for this Deployment\n");
    return 1;
  }
  const value = formatCommand({
    verb,
    revision: state.revision,
    ...(verb === "promote" ? { step: (state.step ?? 0) + 1 } : {}),
  });
  await cli.command(value);
  io.stdout(`${ROLLOUT_COMMAND_ANNOTATION}=${value} written\n`);
  if (!wait) return 0;
  for (let i = 0; i < 120; i++) {
    const record = await cli.record();
    const last = record.status?.rollout?.lastCommand;
    if (record.metadata.annotations?.[ROLLOUT_COMMAND_ANNOTATION] !== value && last?.value === value) {
      io.stdout(`${last.result}: ${last.message}\n`);
      return last.result === "Applied" ? 0 : 1;
    }
    await sleep(500);
  }
  io.stderr("healthgate did not apply the command within 60 s: is the operator running?\n");
  return 3;
}
