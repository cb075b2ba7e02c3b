// The correlated-failure guard holds Enforce releases, on the real kubelet: while
// CorrelatedFailure is True, a new decision (a policy edit) is not released into the record
// (releasing it would roll the Deployment); the record says so (ReleaseHeld) with an Event, the
// Deployment keeps its template, and the decision is released once the failure clears.
import { beforeAll, describe, expect, it } from "vitest";
import { makeDeployment, withReplicas } from "../../support/builders.ts";
import { testClients } from "../../support/kube.ts";
import { isReady, livePods, onRealNodes, waitForReadyPods } from "../../support/realNodes.ts";
import { holdsFor, waitFor } from "../../support/waitFor.ts";
import {
  installCrd,
  patchPolicySpec,
  readDeployment,
  useControllerHarness,
  waitForDeploymentCondition,
  waitForEvent,
  waitForRolloutComplete,
} from "../controller/support.ts";
import { readReleased } from "../controller/admission.ts";
import { fastEnforcePolicy } from "./support.ts";

beforeAll(() => installCrd());

interface RecordStatus {
  conditions?: { type: string; status: string; reason: string; message: string }[];
}

async function readRecordStatus(namespace: string): Promise<RecordStatus> {
  const record = (await testClients().custom.getNamespacedCustomObject({
    group: "healthgate.io",
    version: "v1alpha1",
    plural: "healthtargets",
    namespace,
    name: "web",
  })) as { status?: RecordStatus };
  return record.status ?? {};
}

const livenessThreshold = async (namespace: string) =>
  (await readDeployment(namespace, "web")).spec?.template.spec?.containers[0]?.livenessProbe
    ?.failureThreshold;

describe("the correlated-failure guard holds Enforce releases", () => {
  const hg = useControllerHarness({ app: () => ({ "/readyz": {}, "/healthz": {} }) });

  async function setReady(pods: readonly string[], ready: boolean) {
    for (const pod of pods) hg.apps.set(pod, "/readyz", ready ? undefined : { status: 500 });
    await waitFor(
      async () => {
        const live = await livePods(hg.namespace, "web");
        for (const name of pods) {
          const pod = live.find((p) => p.metadata?.name === name);
          expect(pod && isReady(pod), `${name} Ready`).toBe(ready);
        }
        return true;
      },
      {
        what: `pods ${pods.join(", ")} to be ${ready ? "Ready" : "unready"}`,
        timeoutMs: 45_000,
        intervalMs: 250,
      },
    );
  }

  it("a policy edit during a correlated failure is held, said so, and released after it clears", async () => {
    // Given five pods under an Enforce policy, its decision released and rolled out
    await hg.createPolicy(
      fastEnforcePolicy("web", (p) => {
        p.spec.guardrails = { clearAfterSeconds: 5 };
      }),
    );
    await hg.startOperator();
    await hg.apply(makeDeployment("web", withReplicas(5), onRealNodes()));
    await waitFor(async () => expect(await livenessThreshold(hg.namespace)).toBe(3), {
      what: "the template to carry the released liveness probe",
      timeoutMs: 60_000,
    });
    await waitForRolloutComplete(hg.namespace, "web", 120_000);
    const pods = (await waitForReadyPods(hg.namespace, "web", 5, 120_000)).map((p) => p.metadata!.name!);
    const first = (await readReleased(hg.namespace, "web"))?.revision;
    expect(first, "released revision").toBeDefined();

    // When three of the five go unready at once (a correlated failure)
    await setReady(pods.slice(0, 3), false);
    await waitForDeploymentCondition(hg.namespace, "web", "CorrelatedFailure", { status: "True" });
    const generation = (await readDeployment(hg.namespace, "web")).metadata?.generation;
    // and the policy is edited so that its decision changes
    await patchPolicySpec(hg.namespace, "web", { timing: { liveness: { failureThreshold: 4 } } });

    // Then the new decision is held: the record keeps the released one and says why
    const held = await waitFor(
      async () => {
        const status = await readRecordStatus(hg.namespace);
        const condition = status.conditions?.find((c) => c.type === "ReleaseHeld");
        expect(condition, JSON.stringify(status.conditions)).toMatchObject({
          status: "True",
          reason: "CorrelatedFailure",
        });
        expect((await readReleased(hg.namespace, "web"))?.revision).toBe(first);
        return condition!;
      },
      { what: "the record's ReleaseHeld condition", timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(held.message).toContain(`Decision ${first} stays released`);
    await waitForEvent(hg.namespace, { type: "Warning", reason: "ReleaseHeld", regardingKind: "Deployment" });
    // and the Deployment is not rolled while the failure lasts
    await holdsFor(
      async () => {
        const d = await readDeployment(hg.namespace, "web");
        expect(d.metadata?.generation).toBe(generation);
        expect(d.spec?.template.spec?.containers[0]?.livenessProbe?.failureThreshold).toBe(3);
        expect((await readReleased(hg.namespace, "web"))?.revision).toBe(first);
      },
      { forMs: 5_000, intervalMs: 500, what: "the held release to stay held" },
    );

    // When the pods recover and CorrelatedFailure clears
    await setReady(pods.slice(0, 3), true);
    await waitForDeploymentCondition(hg.namespace, "web", "CorrelatedFailure", { status: "False" });

    // Then the new decision is released, the hold is gone from the record, and the template carries it
    await waitFor(
      async () => {
        const status = await readRecordStatus(hg.namespace);
        expect((await readReleased(hg.namespace, "web"))?.revision).not.toBe(first);
        expect(status.conditions?.find((c) => c.type === "ReleaseHeld")).toBeUndefined();
        expect(await livenessThreshold(hg.namespace)).toBe(4);
        return true;
      },
      {
        what: "the held decision to be released after the failure clears",
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
  });
});
