// The gated rollout that `healthgate dev` shows on its own plane: examples/quick-rollout.yaml,
// then a new image stepping through real readiness to completion, then a bad image aborted.
// Everything printed is read from live objects: the Deployment's HealthTarget record
// (status.rollout), its pods (Ready as the kubelet reports it) and its conditions.
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { DEPLOYMENT_CONDITION_PREFIX, type RolloutState } from "../api/v1alpha1/index.ts";
import { imageTag, type App } from "../devcluster/podApps.ts";

/** The tag suffix of an image whose deep check fails on the dev plane (every other path still answers 200). */
export const BAD_TAG_SUFFIX = "-bad";

/**
 * The dev plane's application, chosen by the pod's image tag: every path answers 200, except
 * /health/deep on a tag ending in "-bad", which answers 500 (its dependency check fails while
 * the process itself is fine: liveness and readiness pass).
 */
export function devApp(pod: V1Pod): App {
  return imageTag(pod).endsWith(BAD_TAG_SUFFIX)
    ? { "*": {}, "/health/deep": { status: 500, body: '{"status":"DOWN"}' } }
    : { "*": { body: '{"status":"UP"}' } };
}

export interface RolloutView {
  state: RolloutState | undefined;
  replicas: number;
  image: string;
  /** Live pods of the Deployment (not being deleted). */
  pods: V1Pod[];
  /** `healthgate.io/RolloutHealthy` on the Deployment. */
  condition: { status: string; reason?: string; message?: string } | undefined;
  steps: number;
}

const isReady = (pod: V1Pod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
const revisionOf = (pod: V1Pod) => pod.metadata?.labels?.["pod-template-hash"] ?? "";

/** Reads what the demo prints, from the live objects. */
export class RolloutReader {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  readonly namespace: string;
  readonly deployment: string;
  private readonly policy: string;

  constructor(kubeConfig: KubeConfig, namespace: string, deployment: string, policy: string) {
    this.namespace = namespace;
    this.deployment = deployment;
    this.policy = policy;
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
  }

  async read(): Promise<RolloutView> {
    const { namespace, deployment } = this;
    // Pods first, then the record: an admission the pods show is then in the record too.
    const pods = (await this.core.listNamespacedPod({ namespace })).items.filter(
      (p) => !p.metadata?.deletionTimestamp && p.metadata?.name?.startsWith(`${deployment}-`),
    );
    const record = (await this.custom
      .getNamespacedCustomObject({
        group: "healthgate.io",
        version: "v1alpha1",
        plural: "healthtargets",
        namespace,
        name: deployment,
      })
      .catch(() => undefined)) as { status?: { rollout?: RolloutState } } | undefined;
    const policy = (await this.custom.getNamespacedCustomObject({
      group: "healthgate.io",
      version: "v1alpha1",
      plural: "healthpolicies",
      namespace,
      name: this.policy,
    })) as { spec?: { rollout?: { steps?: unknown[] } } };
    const d = await this.apps.readNamespacedDeployment({ name: deployment, namespace });
    const condition = d.status?.conditions?.find(
      (c) => c.type === `${DEPLOYMENT_CONDITION_PREFIX}RolloutHealthy`,
    );
    return {
      state: record?.status?.rollout,
      replicas: d.spec?.replicas ?? 1,
      image: d.spec?.template.spec?.containers[0]?.image ?? "",
      pods,
      condition: condition && {
        status: condition.status,
        ...(condition.reason ? { reason: condition.reason } : {}),
        ...(condition.message ? { message: condition.message } : {}),
      },
      steps: policy.spec?.rollout?.steps?.length ?? 0,
    };
  }
}

/** Ready pods of `revision`, and of every other revision. */
export function readyCounts(view: RolloutView, revision: string): { fresh: number; old: number } {
  const ready = view.pods.filter(isReady);
  const fresh = ready.filter((p) => revisionOf(p) === revision).length;
  return { fresh, old: ready.length - fresh };
}

/**
 * One line of the rollout's progress, e.g.
 * `step 2/3 (66%)  Baking       admitted 2/3  Ready: 2 new, 2 old`.
 */
export function progressLine(view: RolloutView): string {
  const s = view.state;
  const revision = s?.revision ?? "";
  const { fresh, old } = readyCounts(view, revision);
  const step = s?.step === undefined ? "-" : `${s.step + 1}/${view.steps}`;
  const weight = s?.weight === undefined ? "" : ` (${s.weight}%)`;
  const phase =
    s?.phase === "Aborted" || s?.phase === "Holding" ? `${s.phase} (${s.reason ?? ""})` : (s?.phase ?? "");
  return (
    `step ${step}${weight}`.padEnd(16) +
    phase.padEnd(26) +
    `admitted ${s?.admitted?.length ?? 0}/${view.replicas}  Ready: ${fresh} new, ${old} old`
  );
}

/** What a progress line is about; a new line is printed when it changes. */
export function progressKey(view: RolloutView): string {
  const s = view.state;
  const { fresh, old } = readyCounts(view, s?.revision ?? "");
  return [s?.revision, s?.phase, s?.reason, s?.step, s?.admitted?.length, fresh, old].join(" ");
}

export interface FollowOptions {
  out: (line: string) => void;
  /** The revision that was stable before the change: views still about it are not printed. */
  previous: string | undefined;
  done: (view: RolloutView) => boolean;
  what: string;
  timeoutMs: number;
  pollMs?: number;
}

/**
 * Prints a progress line each time the rollout's step, phase, admissions or Ready pods change,
 * until `done`; returns the last view. Throws after `timeoutMs`, naming what it waited for.
 */
export async function followRollout(reader: RolloutReader, options: FollowOptions): Promise<RolloutView> {
  const started = Date.now();
  let last = "";
  for (;;) {
    const view = await reader.read();
    // (the record's first sight of a revision, before its step is set, is not worth a line)
    const seen =
      view.state?.revision !== undefined &&
      view.state.revision !== options.previous &&
      (view.state.step !== undefined || options.done(view));
    if (seen) {
      const key = progressKey(view);
      if (key !== last) {
        last = key;
        const at = `+${((Date.now() - started) / 1000).toFixed(1)}s`.padStart(7);
        options.out(`${at}  ${progressLine(view)}`);
      }
      if (options.done(view)) return view;
    }
    if (Date.now() - started > options.timeoutMs) {
      throw new Error(
        `${options.what} did not happen within ${options.timeoutMs / 1000} s; last rollout state: ` +
          `${JSON.stringify(view.state)}; see kubectl get htgt ${reader.deployment} -n ${reader.namespace} -o yaml`,
      );
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
  }
}

/** Waits until the Deployment's current revision is the recorded stable one with every replica Ready. */
export async function waitForStable(reader: RolloutReader, timeoutMs: number): Promise<RolloutView> {
  const started = Date.now();
  for (;;) {
    const view = await reader.read().catch(() => undefined);
    const s = view?.state;
    if (
      view &&
      s?.phase === "Completed" &&
      s.stableRevision !== undefined &&
      s.stableRevision === s.revision &&
      readyCounts(view, s.stableRevision).fresh === view.replicas
    ) {
      return view;
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `${reader.deployment}'s first revision did not become stable within ${timeoutMs / 1000} s; rollout state: ` +
          `${JSON.stringify(s)}; see kubectl get htgt ${reader.deployment} -n ${reader.namespace} -o yaml`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function conditionLine(view: RolloutView): string {
  const c = view.condition;
  return `${DEPLOYMENT_CONDITION_PREFIX}RolloutHealthy=${c?.status ?? "?"} (${c?.reason ?? ""}): ${c?.message ?? ""}`;
}
