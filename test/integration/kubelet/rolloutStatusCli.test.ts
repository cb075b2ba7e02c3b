// `healthgate rollout status` shows each pod's latest deep check, served from the operator's
// memory: the CLI asks the operator's metrics Service for /rollout/deep-checks through the API
// server's service proxy. Real kubelet pods, a real operator (in-process, its health server
// published as a selector-less Service's endpoint: a stand-in Pod object with the address the
// operator listens on, since the proxy dials only Pod addresses), and a
// user whose RBAC decides: without get on services/proxy the status still prints, and says why
// the deep checks are not shown; with it, they are.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { AuthorizationV1Api } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { runRollout } from "../../../src/cli/rollout.ts";
import { testClients } from "../../support/kube.ts";
import { livePods } from "../../support/realNodes.ts";
import { waitFor } from "../../support/waitFor.ts";
import { installCrd, mergePatch, useControllerHarness } from "../controller/support.ts";
import { app, hash, setImage, stableAtTag1, waitForRecord } from "./rolloutSupport.ts";

beforeAll(() => installCrd());

/** Outside the simulated pods' 198.18.0.0/16, inside the run's locally routed 198.18.0.0/15. */
const OPERATOR_IP = "198.19.0.10";

/** A kubeconfig file for ServiceAccount `name` of `namespace` (a token, the plane's CA). */
async function userKubeconfig(namespace: string, name: string): Promise<string> {
  const { core, kc } = testClients();
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  const token = (
    await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    })
  ).status!.token!;
  const cluster = kc.getCurrentCluster()!;
  const file = path.join(mkdtempSync(path.join(tmpdir(), "hg-cli-")), "kubeconfig");
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "plane",
          cluster: {
            server: cluster.server,
            ...(cluster.caData ? { "certificate-authority-data": cluster.caData } : {}),
            ...(cluster.caFile ? { "certificate-authority": cluster.caFile } : {}),
          },
        },
      ],
      users: [{ name, user: { token } }],
      contexts: [{ name: "user", context: { cluster: "plane", user: name, namespace } }],
      "current-context": "user",
    }),
  );
  return file;
}

/** Grants `rules` to ServiceAccount `name` in `namespace`, and waits until the authorizer sees `probe`. */
async function grant(
  namespace: string,
  name: string,
  role: string,
  rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[],
  probe: { verb: string; resource: string; subresource?: string },
) {
  const { rbac, kc } = testClients();
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name: role }, rules } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: role },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    },
  });
  const authz = kc.makeApiClient(AuthorizationV1Api);
  await waitFor(
    async () =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user: `system:serviceaccount:${namespace}:${name}`,
              groups: ["system:serviceaccounts", "system:authenticated"],
              resourceAttributes: { namespace, ...probe },
            },
          },
        })
      ).status?.allowed === true || undefined,
    { what: `${role} to reach the authorizer`, intervalMs: 200 },
  );
}

async function status(kubeconfig: string, namespace: string) {
  let out = "";
  let err = "";
  const code = await runRollout(
    [
      "status",
      "web",
      "-n",
      namespace,
      "--kubeconfig",
      kubeconfig,
      "--operator",
      `${namespace}/hg-metrics:http-metrics`,
    ],
    { stdout: (t) => (out += t), stderr: (t) => (err += t) },
  );
  return { code, out, err };
}

describe("healthgate rollout status: deep checks from the operator's memory (real kubelet)", () => {
  const hg = useControllerHarness({ app });

  it("shows each pod's latest deep check through the service proxy, when the user may get services/proxy", async () => {
    // Given a gated rollout baking at step 1
    const stable = await stableAtTag1(hg, { steps: [{ weight: 33, bake: "5m" }, { weight: 100 }] });
    await setImage(hg.namespace, "2");
    const baking = await waitForRecord(hg.namespace, (s) => s.phase === "Baking", "step 1 to bake", 90_000);
    // and the operator's health server published as Service hg-metrics (port http-metrics)
    const { core } = testClients();
    const port = hg.operator.boundPort!;
    await core.createNamespacedService({
      namespace: hg.namespace,
      body: {
        metadata: { name: "hg-metrics" },
        spec: { ports: [{ name: "http-metrics", port: 8080, targetPort: port, protocol: "TCP" }] },
      },
    });
    // The API server's service proxy dials only an endpoint address whose targetRef is a Pod with
    // that IP: the operator's stand-in Pod (never scheduled) carries the address it listens on.
    await core.createNamespacedPod({
      namespace: hg.namespace,
      body: {
        metadata: { name: "healthgate-operator" },
        spec: { schedulerName: "none", containers: [{ name: "operator", image: "healthgate:test" }] },
      },
    });
    await core.patchNamespacedPodStatus(
      {
        name: "healthgate-operator",
        namespace: hg.namespace,
        body: { status: { podIP: OPERATOR_IP, podIPs: [{ ip: OPERATOR_IP }] } },
      },
      mergePatch,
    );
    await core.createNamespacedEndpoints({
      namespace: hg.namespace,
      body: {
        metadata: { name: "hg-metrics" },
        subsets: [
          {
            addresses: [
              {
                ip: OPERATOR_IP,
                targetRef: { kind: "Pod", name: "healthgate-operator", namespace: hg.namespace },
              },
            ],
            ports: [{ name: "http-metrics", port, protocol: "TCP" }],
          },
        ],
      },
    });
    // and a user who may read the rollout's objects, but not services/proxy
    const kubeconfig = await userKubeconfig(hg.namespace, "viewer");
    await grant(
      hg.namespace,
      "viewer",
      "rollout-reader",
      [
        { apiGroups: ["healthgate.io"], resources: ["healthtargets", "healthpolicies"], verbs: ["get"] },
        { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get"] },
        { apiGroups: [""], resources: ["pods"], verbs: ["list"] },
      ],
      { verb: "list", resource: "pods" },
    );

    // When that user asks for the status: it prints, and says why the deep checks are not shown
    const denied = await status(kubeconfig, hg.namespace);
    expect(denied.err).toBe("");
    expect(denied.code).toBe(0);
    expect(denied.out).toContain("phase:     Baking");
    expect(denied.out).toContain("deep checks: not shown: forbidden to get services/proxy");
    expect(denied.out).not.toMatch(/ {2}deep-check (pass|fail|error|unchecked|no result)/);

    // When the user is granted get on services/proxy for that Service
    await grant(
      hg.namespace,
      "viewer",
      "deep-check-reader",
      [{ apiGroups: [""], resources: ["services/proxy"], verbs: ["get"] }],
      { verb: "get", resource: "services", subresource: "proxy" },
    );
    // Then every deep-checked pod's line shows its latest result: the new pods and the stable sample
    const shown = await waitFor(
      async () => {
        const { code, out, err } = await status(kubeconfig, hg.namespace);
        expect(err).toBe("");
        expect(code).toBe(0);
        expect(out, out).not.toContain("deep checks: not shown");
        const pods = await livePods(hg.namespace, "web");
        const admitted = baking.admitted![0]!;
        const line = (name: string) => out.split("\n").find((l) => l.includes(name)) ?? "";
        expect(line(admitted), out).toMatch(/deep-check pass 200 in \d+ ms \d+s ago \(Passing\)/);
        const checkedStable = pods
          .filter((p) => hash(p) === stable)
          .filter((p) => /deep-check pass 200/.test(line(p.metadata!.name!)));
        expect(checkedStable.length, out).toBe(2);
        return out;
      },
      { what: "rollout status to show the deep checks", timeoutMs: 30_000, intervalMs: 1_000 },
    );
    // and nothing but the whitelist reaches the user: no pod address
    for (const pod of await livePods(hg.namespace, "web"))
      if (pod.status?.podIP) expect(shown).not.toContain(pod.status.podIP);
  });
});
