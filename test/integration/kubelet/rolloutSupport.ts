// What the gated-rollout scenarios on the real kubelet share: the application (a revision's
// behaviour comes from its image tag), the policy's rollout, the Deployment, readers of the
// HealthTarget record's status.rollout.
import { expect } from "vitest";
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import type { RolloutState } from "../../../src/api/v1alpha1/index.ts";
import type { App } from "../../../src/devcluster/podApps.ts";
import { imageTag } from "../../../src/devcluster/podApps.ts";
import {
  makeDeployment,
  withProbe,
  withReadinessGate,
  withReplicas,
  withRollingUpdate,
  type Modifier,
} from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { APP_IMAGE, isReady, livePods, onRealNodes } from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";
import { makePolicy, type ControllerHarness, type HealthPolicyObject } from "../controller/support.ts";

export const GATE = "healthgate.io/deep-check";
export const DEEP = "/health/deep";

/** Tag "bad": the deep check passes for the first 8 s of the container, then answers 500. */
/** A deep check that alternates pass and fail, request by request: it never passes twice in a row. */
function flapping(): App[string] {
  let requests = 0;
  return () => (requests++ % 2 === 0 ? {} : { status: 500 });
}

/** How long a pod of tag "late" answers /readyz 503 after its container starts. */
export const LATE_READY_MS = 12_000;

/**
 * Tag "bad": the deep check passes for the first 8 s of the container, then answers 500.
 * Tag "flap": it alternates pass and fail. Tag "broken": it always answers 500. Any other tag:
 * it passes. Tag "late": not Ready for its first LATE_READY_MS.
 */
export const app = (pod: V1Pod): App => {
  const tag = imageTag(pod);
  return {
    "/healthz": {},
    "/readyz":
      tag === "late" ? ({ sinceStartMs }) => (sinceStartMs < LATE_READY_MS ? { status: 503 } : {}) : {},
    [DEEP]:
      tag === "bad"
        ? ({ sinceStartMs }) => (sinceStartMs < 8_000 ? {} : { status: 500 })
        : tag === "flap"
          ? flapping()
          : tag === "broken"
            ? { status: 500 }
            : {},
  };
};

/** Steps of the policy's rollout, and its newPodDeadline. */
export interface TestRollout {
  steps: { weight: number; bake?: string }[];
  newPodDeadline?: string;
  /** The deep check's port (default: the container port named http). */
  port?: number;
}

export const withRollout =
  ({ steps, newPodDeadline, port }: TestRollout) =>
  (policy: HealthPolicyObject): void => {
    policy.spec.rollout = {
      steps,
      ...(newPodDeadline ? { newPodDeadline } : {}),
      deepCheck: {
        path: DEEP,
        ...(port !== undefined ? { port } : {}),
        intervalSeconds: 2,
        timeoutSeconds: 1,
        successThreshold: 2,
        failureLimit: 3,
        stableSample: 2,
      },
    };
  };

export const web = (tag: string, ...modifiers: Modifier<V1Deployment>[]) =>
  makeDeployment(
    "web",
    withReplicas(3),
    onRealNodes(tag),
    withRollingUpdate({ maxSurge: 1, maxUnavailable: 0 }),
    withReadinessGate(GATE),
    withProbe("web", "readiness", { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 1 }),
    ...modifiers,
  );

export const hash = (pod: V1Pod) => pod.metadata?.labels?.["pod-template-hash"] ?? "";
export const gateOf = (pod: V1Pod) => pod.status?.conditions?.find((c) => c.type === GATE);

export async function readRecord(namespace: string): Promise<RolloutState | undefined> {
  const record = (await testClients().custom.getNamespacedCustomObject({
    group: "healthgate.io",
    version: "v1alpha1",
    plural: "healthtargets",
    namespace,
    name: "web",
  })) as { status?: { rollout?: RolloutState } };
  return record.status?.rollout;
}

export function waitForRecord(
  namespace: string,
  want: (s: RolloutState) => boolean,
  what: string,
  timeoutMs = 90_000,
) {
  return waitFor(
    async () => {
      const state = await readRecord(namespace).catch(() => undefined);
      expect(state, `status.rollout: ${JSON.stringify(state)}`).toBeDefined();
      expect(want(state!), `status.rollout: ${JSON.stringify(state)}`).toBe(true);
      return state!;
    },
    { what, timeoutMs, intervalMs: 250 },
  );
}

export async function setImage(namespace: string, tag: string) {
  await testClients().apps.patchNamespacedDeployment({
    name: "web",
    namespace,
    body: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: `${APP_IMAGE}:${tag}` }],
  });
}

/** Ready pods of the revision `revision` (pod-template-hash). */
export async function readyOf(namespace: string, revision: string): Promise<V1Pod[]> {
  return (await livePods(namespace, "web")).filter((p) => hash(p) === revision && isReady(p));
}

/** Policy, operator, Deployment at tag 1; waits until tag 1 is the recorded stable revision. */
export async function stableAtTag1(
  hg: ControllerHarness,
  rollout: TestRollout,
  ...modifiers: Modifier<V1Deployment>[]
): Promise<string> {
  await hg.createPolicy(makePolicy("web", withRollout(rollout)));
  await hg.startOperator();
  await hg.apply(web("1", ...modifiers));
  // The first revision is not gated: healthgate opens every gate at once, and records it as stable.
  const state = await waitForRecord(
    hg.namespace,
    (s) => s.phase === "Completed" && s.stableRevision !== undefined,
    "the first revision to complete and be recorded as stable",
  );
  const pods = await livePods(hg.namespace, "web");
  expect(pods.filter(isReady).length).toBe(3);
  for (const pod of pods) expect(gateOf(pod)?.status, pod.metadata?.name).toBe("True");
  return state.stableRevision!;
}
