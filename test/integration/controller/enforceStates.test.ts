// "No user write is ever refused because of Enforce", in every state (issue 19): with Enforce
// active, just after the decision changed, with the operator stopped, and after Enforce stops
// by each path (policy deleted, Audit, no longer selected, an older policy takes over, records
// and HealthReleases deleted; uninstall: uninstall.test.ts). In each state, the representative re-applies of the user's original manifest
// (exec liveness): client-side kubectl apply, server-side apply by another manager with and
// without --force-conflicts, a container rename, a container removal, an image-only change.
// While Enforce is active the template keeps the decision; once it stopped, re-applies bring
// the user's handler back. The 16 handler pairs are in probes-apply.test.ts.
// The same holds for the strategy fields a gated rollout's decision carries (docs/rollouts.md):
// the user's maxUnavailable 3 is lowered to N − F = 1 on every write while Enforce is active and
// is theirs again once it stopped; progressDeadlineSeconds, which the user never set, is raised
// to the longest bake + 600 s and stays there, unowned, after Enforce stopped (no restore).
import type { V1Deployment } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { makeContainer, makeDeployment, withLabels } from "../../support/builders.ts";
import { waitFor } from "../../support/waitFor.ts";
import {
  containerNamed,
  deleteRecord,
  deleteReleaseIndexes,
  handlerKinds,
  indexedDeployments,
  readRecord,
} from "./admission.ts";
import {
  applyAs,
  deletePolicy,
  installCrd,
  kubectl,
  makePolicy,
  patchPolicySpec,
  readDeployment,
  useControllerHarness,
  withMode,
  type ControllerHarness,
  type HealthPolicyObject,
} from "./support.ts";

beforeAll(() => installCrd());

const SUITE = { suite: "states" };
/** The longest bake (15 m) + 600 s. */
const STRATEGY = { deadline: 900 + 600 };
const EXEC = { exec: { command: ["pg_isready", "-h", "127.0.0.1"] }, periodSeconds: 10 };

/** The user's manifest: container <name> with an exec liveness probe, and a sidecar "side". */
function manifest(name: string, namespace: string, change: (d: V1Deployment) => void = () => {}) {
  const d = makeDeployment(name, withLabels(SUITE));
  d.metadata!.namespace = namespace;
  const spec = d.spec!.template.spec!;
  spec.containers[0]!.livenessProbe = structuredClone(EXEC);
  spec.containers.push(makeContainer("side", (c) => (c.ports = [{ name: "http", containerPort: 8081 }])));
  d.spec!.strategy = { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 3 } };
  change(d);
  return d;
}

interface Variant {
  name: string;
  /** The main container's name after the write. */
  container: (name: string) => string;
  create: (ns: string, d: V1Deployment) => Promise<unknown>;
  write: (ns: string, name: string) => Promise<unknown>;
}

const clientSide = (d: V1Deployment) => kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(d) });
const byUser = (_ns: string, d: V1Deployment) => applyAs("test-user", d);
const variants: Variant[] = [
  {
    name: "client-side kubectl apply",
    container: (n) => n,
    create: (_ns, d) => clientSide(d),
    write: (ns, n) => clientSide(manifest(n, ns)),
  },
  {
    name: "server-side apply by another manager",
    container: (n) => n,
    create: byUser,
    write: (ns, n) => applyAs("flux", manifest(n, ns)),
  },
  {
    name: "server-side apply by another manager with --force-conflicts",
    container: (n) => n,
    create: byUser,
    write: (ns, n) => applyAs("argocd", manifest(n, ns), { force: true }),
  },
  {
    name: "container rename",
    container: () => "app",
    create: byUser,
    write: (ns, n) =>
      applyAs(
        "test-user",
        manifest(n, ns, (d) => (d.spec!.template.spec!.containers[0]!.name = "app")),
      ),
  },
  {
    name: "container removal",
    container: (n) => n,
    create: byUser,
    write: (ns, n) =>
      applyAs(
        "test-user",
        manifest(n, ns, (d) => d.spec!.template.spec!.containers.pop()),
      ),
  },
  {
    name: "image-only change",
    container: (n) => n,
    create: byUser,
    write: (ns, n) =>
      applyAs(
        "test-user",
        manifest(n, ns, (d) => (d.spec!.template.spec!.containers[0]!.image = "registry.invalid/web:2")),
      ),
  },
];
const names = variants.map((_, i) => `web${i}`);

interface State {
  name: string;
  /** Enforce still acts at admission in this state. */
  active: boolean;
  enter: (hg: ControllerHarness) => Promise<unknown>;
}

/** The namespace's HealthReleases, which admission reads, name none of the Deployments. */
const expectNoIndexEntries = async (hg: ControllerHarness) => {
  const indexed = Object.keys(await indexedDeployments(hg.namespace));
  expect(indexed.filter((n) => names.includes(n))).toEqual([]);
};
const waitForRecordsGone = (hg: ControllerHarness) =>
  waitFor(
    async () => {
      for (const n of names) await expect(readRecord(hg.namespace, n)).rejects.toMatchObject({ code: 404 });
      await expectNoIndexEntries(hg);
      return true;
    },
    { what: "healthgate to delete the records" },
  );
const waitForNoDecision = (hg: ControllerHarness) =>
  waitFor(
    async () => {
      for (const n of names) {
        const conditions = (await readRecord(hg.namespace, n)).status?.conditions ?? [];
        expect(conditions.find((c) => c.type === "Enforced")).toBeUndefined();
      }
      await expectNoIndexEntries(hg);
      return true;
    },
    { what: "healthgate to withdraw the released decisions" },
  );

const states: State[] = [
  { name: "active", active: true, enter: async () => {} },
  {
    name: "decision just changed",
    active: true,
    enter: (hg) => patchPolicySpec(hg.namespace, "web", { endpoints: { liveness: { path: "/livez" } } }),
  },
  { name: "operator stopped", active: true, enter: (hg) => hg.stopOperator() },
  {
    name: "policy deleted",
    active: false,
    enter: async (hg) => {
      await deletePolicy(hg.namespace, "web");
      await waitForRecordsGone(hg);
    },
  },
  {
    name: "policy set to Audit",
    active: false,
    enter: async (hg) => {
      await patchPolicySpec(hg.namespace, "web", { mode: "Audit" });
      await waitForNoDecision(hg);
    },
  },
  {
    name: "no longer selected",
    active: false,
    enter: async (hg) => {
      await patchPolicySpec(hg.namespace, "web", { selector: { matchLabels: { suite: "none" } } });
      await waitForRecordsGone(hg);
    },
  },
  {
    name: "an older policy takes over",
    active: false,
    enter: async (hg) => {
      await patchPolicySpec(hg.namespace, "older", { selector: { matchLabels: SUITE } });
      await waitForNoDecision(hg);
    },
  },
  {
    name: "records and the namespace's HealthReleases deleted while the operator is stopped",
    active: false,
    enter: async (hg) => {
      await hg.stopOperator();
      for (const n of names) await deleteRecord(hg.namespace, n);
      await deleteReleaseIndexes(hg.namespace);
    },
  },
];

describe("no user write is refused because of Enforce", () => {
  const hg = useControllerHarness();

  it.each(states)("$name", async ({ active, enter }) => {
    // Given Deployments that users manage, each with an exec liveness, enforced by a policy whose
    // decision is an httpGet liveness (and an older Audit policy selecting nothing yet)
    const older: HealthPolicyObject = makePolicy("older", withMode("Audit"));
    older.spec.selector = { matchLabels: { suite: "none" } };
    await hg.createPolicy(older);
    for (const [i, variant] of variants.entries())
      await variant.create(hg.namespace, manifest(names[i]!, hg.namespace));
    const policy = makePolicy("web", withMode("Enforce"));
    policy.spec.selector = { matchLabels: SUITE };
    policy.spec.rollout = {
      steps: [{ weight: 50, bake: "15m" }, { weight: 100 }],
      deepCheck: { path: "/health/deep" },
    };
    await hg.createPolicy(policy);
    await hg.startOperator();
    for (const n of names) {
      await waitFor(
        async () => {
          const d = await readDeployment(hg.namespace, n);
          expect(handlerKinds(containerNamed(d, n)?.livenessProbe)).toEqual(["httpGet"]);
          expect(d.spec?.strategy?.rollingUpdate?.maxUnavailable).toBe(1);
          expect(d.spec?.progressDeadlineSeconds).toBe(STRATEGY.deadline);
          return d;
        },
        { what: `Enforce to swap ${n}'s exec liveness for httpGet and lower maxUnavailable` },
      );
    }

    // When the state is entered and each user writes their manifest again
    await enter(hg);
    const refused: string[] = [];
    const write = (variant: Variant, n: string) =>
      variant.write(hg.namespace, n).catch((err: Error) => refused.push(`${variant.name}: ${err.message}`));
    for (const [i, variant] of variants.entries()) {
      const n = names[i]!;
      // Then the write is admitted (a refusal is recorded, never retried away), and leaves every
      // probe with exactly one handler. The admission policies read records from the API
      // server's cache, so the expected handler may need one more (admitted) write to show.
      await write(variant, n);
      await waitFor(
        async () => {
          const d = await readDeployment(hg.namespace, n);
          try {
            for (const c of d.spec!.template.spec!.containers)
              for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe])
                if (probe) expect(handlerKinds(probe)).toHaveLength(1);
            const main = containerNamed(d, variant.container(n));
            expect(main, `${variant.name}: container ${variant.container(n)}`).toBeDefined();
            // active: the decision stands (a renamed container is new to the decision: it keeps
            // the user's probe until healthgate decides again); stopped: the user's exec is back
            const renamed = variant.container(n) !== n;
            const expected = !active ? ["exec"] : renamed ? ["exec", "httpGet"] : ["httpGet"];
            expect(expected, `${variant.name}`).toContain(handlerKinds(main?.livenessProbe).join());
            // the user's maxUnavailable while Enforce is active is lowered, and theirs once it stopped;
            // the deadline healthgate added where the user had none stays
            expect(d.spec?.strategy?.rollingUpdate?.maxUnavailable, variant.name).toBe(active ? 1 : 3);
            expect(d.spec?.progressDeadlineSeconds, variant.name).toBe(STRATEGY.deadline);
          } catch (err) {
            await write(variant, n);
            throw err;
          }
          return d;
        },
        { what: `${variant.name} of ${n} to show the expected liveness`, timeoutMs: 20_000 },
      );
    }
    expect(refused).toEqual([]);
  });
});
