// `helm uninstall` of a release whose Enforce policy is active (issue 19): with and without hooks
// (`--no-hooks`). The chart (without its CRDs: see below) is installed by helm, and the
// operator runs in-process as the release's ServiceAccount (the record-status policy admits only
// it). After the uninstall: the enforce MutatingAdmissionPolicy and its bindings are gone, the
// handler-merge policy and binding stay (helm.sh/resource-policy: keep), the CRDs, records and
// HealthReleases stay, the Deployment keeps what Enforce wrote, and the user's re-applies of their
// original manifest (another manager's server-side apply, client-side kubectl apply) land and bring
// their exec liveness back.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { KubeConfig, type V1Deployment } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { makeDeployment, withProbe } from "../../support/builders.ts";
import { testClients, testKubeconfigPath } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  containerNamed,
  deleteReleaseIndexes,
  handlerKinds,
  indexedDeployments,
  readRecord,
  readReleased,
} from "./admission.ts";
import {
  applyAs,
  kubectl,
  makePolicy,
  mergePatch,
  readDeployment,
  repoRoot,
  useControllerHarness,
  withMode,
} from "./support.ts";

const run = promisify(execFile);

async function helmBinary(): Promise<string> {
  const { stdout } = await run("bash", ["hack/ensure-helm.sh"], { cwd: repoRoot, maxBuffer: 16 << 20 });
  return stdout.trim().split("\n").pop()!;
}

/** A kubeconfig that authenticates as ServiceAccount `name` of `namespace`. */
async function serviceAccountKubeConfig(namespace: string, name: string): Promise<KubeConfig> {
  const { core, kc } = testClients();
  const token = (
    await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    })
  ).status!.token!;
  const cluster = kc.getCurrentCluster()!;
  const caData =
    cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString("base64") : undefined);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "plane", server: cluster.server, caData, skipTLSVerify: false }],
    users: [{ name, token }],
    contexts: [{ name: "release", cluster: "plane", user: name }],
    currentContext: "release",
  });
  return kubeConfig;
}

/** Marks the pods of the release's hook Job Succeeded once they appear, as a kubelet would after exit 0. */
async function completeHookPods(namespace: string) {
  const { core } = testClients();
  await waitFor(
    async () => {
      const pods = (await core.listNamespacedPod({ namespace, labelSelector: "job-name" })).items;
      if (pods.length === 0) return undefined;
      for (const pod of pods) {
        await core.patchNamespacedPodStatus(
          {
            name: pod.metadata!.name!,
            namespace,
            body: {
              status: {
                phase: "Succeeded",
                containerStatuses: pod.spec!.containers.map((c) => ({
                  name: c.name,
                  image: c.image ?? "",
                  imageID: "",
                  ready: false,
                  restartCount: 0,
                  state: { terminated: { exitCode: 0, reason: "Completed" } },
                })),
              },
            },
          },
          mergePatch,
        );
      }
      return true;
    },
    { what: "the pre-delete hook Job's pod", timeoutMs: 60_000 },
  );
}

const EXEC = { exec: { command: ["pg_isready", "-h", "127.0.0.1"] } };
const manifest = (namespace: string): V1Deployment => {
  const d = makeDeployment("web", withProbe("web", "liveness", EXEC));
  d.metadata!.namespace = namespace;
  return d;
};

describe("helm uninstall while Enforce is active", () => {
  const hg = useControllerHarness();

  // The run's plane is shared: the controller harness has installed the CRDs (outside any helm
  // release, so helm cannot adopt them) and its own enforce policy and bindings, cluster-wide. So
  // these releases leave the CRDs out (crds.enabled=false; chart.test.ts covers installing them).
  it.each([
    { hooks: "with hooks", flags: [] as string[] },
    { hooks: "without hooks (--no-hooks)", flags: ["--no-hooks"] },
  ])(
    "$hooks: the handler-merge policy, records and CRDs stay, Enforce stops, the user's re-apply lands",
    async ({ flags }) => {
      const helm = await helmBinary();
      const ns = hg.namespace;
      const release = `hgu-${ns.slice(-6)}`.replace(/[^a-z0-9-]/g, "");
      const fullname = `${release}-healthgate`;
      const common = ["--kubeconfig", testKubeconfigPath(), "--namespace", ns];
      // Given healthgate installed by helm, an Enforce policy, and a user's Deployment with an exec liveness
      await run(
        helm,
        [
          "install",
          release,
          "charts/healthgate",
          ...common,
          "--set",
          `watchNamespaces={${ns}}`,
          "--set",
          "leaderElection.enabled=false",
          "--set",
          "replicas=1",
          "--set",
          "crds.enabled=false",
          "--set",
          "denyPolicy.enabled=false",
        ],
        { cwd: repoRoot, maxBuffer: 16 << 20 },
      );
      await kubectl([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/healthreleases.healthgate.io",
      ]);
      await applyAs("test-user", manifest(ns));
      await hg.createPolicy(makePolicy("web", withMode("Enforce")));
      const kubeConfig = await waitFor(() => serviceAccountKubeConfig(ns, fullname), {
        what: `ServiceAccount ${fullname}`,
      });
      await hg.startOperator({ kubeConfig });
      await waitFor(
        async () => {
          await applyAs("test-user", manifest(ns));
          const d = await readDeployment(ns, "web");
          expect(handlerKinds(containerNamed(d, "web")?.livenessProbe)).toEqual(["httpGet"]);
          return true;
        },
        { what: "Enforce to swap the exec liveness for httpGet", timeoutMs: 60_000 },
      );

      // When the operator stops and the release is uninstalled
      await hg.stopOperator();
      const uninstall = run(helm, ["uninstall", release, ...common, ...flags], {
        cwd: repoRoot,
        maxBuffer: 16 << 20,
      });
      // With hooks, helm waits for the pre-delete Job (healthgate release-gates, tested in
      // gate.test.ts): its pod is played as having run to completion (no container runs here).
      if (flags.length === 0) await completeHookPods(ns);
      await uninstall;

      // Then the handler-merge policy and its binding stay; the enforce policy and its bindings are gone
      const names = async (kind: string) =>
        (await kubectl(["get", kind, "-o", "jsonpath={.items[*].metadata.name}"])).split(" ").filter(Boolean);
      await waitFor(
        async () => {
          expect(await names("mutatingadmissionpolicies")).toContain(`${fullname}-handler-merge`);
          expect(await names("mutatingadmissionpolicies")).not.toContain(`${fullname}-enforce`);
          const bindings = await names("mutatingadmissionpolicybindings");
          expect(bindings).toContain(`${fullname}-handler-merge`);
          expect(bindings.filter((b) => b.startsWith(`${fullname}-enforce`))).toEqual([]);
          return true;
        },
        { what: "helm uninstall to remove the enforce policy and keep handler-merge" },
      );
      // the CRDs, the record and its HealthRelease entry stay, and the Deployment keeps what Enforce wrote
      expect(
        (await readRecord(ns, "web")).status?.conditions?.find((c) => c.type === "Enforced")?.status,
      ).toBe("True");
      expect(await readReleased(ns, "web")).toBeDefined();
      expect(Object.keys(await indexedDeployments(ns))).toContain("web");
      expect(handlerKinds(containerNamed(await readDeployment(ns, "web"), "web")?.livenessProbe)).toEqual([
        "httpGet",
      ]);

      // (After a real uninstall no binding reads the HealthReleases left behind; on this shared plane
      // the harness's own enforce bindings still would, so they go before the user's re-apply.)
      await deleteReleaseIndexes(ns);

      // When the user re-applies their original manifest, Then each write lands and brings the exec back
      for (const write of [
        () => applyAs("flux", manifest(ns)),
        () => kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(manifest(ns)) }),
        () => applyAs("test-user", manifest(ns)),
      ]) {
        await waitFor(
          async () => {
            await write();
            const d = await readDeployment(ns, "web");
            expect(handlerKinds(containerNamed(d, "web")?.livenessProbe)).toEqual(["exec"]);
            return true;
          },
          { what: "the user's re-apply to bring the exec liveness back", timeoutMs: 30_000 },
        );
      }
    },
    240_000,
  );
});
