// Panic mode when its cache is behind the API server, against the real API server.
//
// The cache here is held back by hand: a real informer catches up within milliseconds, and a
// test cannot make it lag on demand. Under load it does lag (the full suite showed it: a
// GitOps revert judged from a Service version that predated healthgate's own publish was
// reported as taken back by nobody). Everything else — the Service, the record, the forced
// applies and their preconditions — is the real API server's.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { V1Service } from "@kubernetes/client-node";
import { PanicMode, PANIC_FIELD_MANAGER } from "../../../src/controller/panic.ts";
import { slimService, type CachedService } from "../../../src/controller/panicServices.ts";
import type { World } from "../../../src/controller/world.ts";
import type { Deployment, Pod } from "../../../src/api/k8s.ts";
import type { HealthPolicy, PanicState } from "../../../src/api/v1alpha1/index.ts";
import { KubeClient, type KubeObject } from "../../../src/kube/client.ts";
import { systemClock } from "../../../src/kube/clock.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { makeService } from "../../support/builders.ts";
import { testClients, testKubeConfig, useTestNamespace } from "../../support/kube.ts";
import { applyAs, installCrd } from "../controller/support.ts";

const targets = { group: "healthgate.io", version: "v1alpha1", plural: "healthtargets" };
const policy = {
  metadata: { name: "p" },
  spec: { guardrails: { panic: { floorPercent: 60, hold: "3s" } } },
} as unknown as HealthPolicy;

const pod = (name: string, ready: boolean): Pod =>
  ({
    metadata: {
      name,
      ownerReferences: [{ controller: true, uid: "rs-1", kind: "ReplicaSet", name: "web-1" }],
    },
    spec: { containers: [] },
    status: { phase: "Running", conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  }) as unknown as Pod;
/** 1 of 2 serving pods Ready: below the 60 % floor. */
const pods = [pod("web-a", true), pod("web-b", false)];

beforeAll(() => installCrd());

/** The real client, with a hook that runs once before its next list of Services. */
class HookedClient extends KubeClient {
  beforeServiceList: (() => Promise<void>) | undefined;
  override async list(...args: Parameters<KubeClient["list"]>): ReturnType<KubeClient["list"]> {
    const hook = this.beforeServiceList;
    if (hook && args[0].plural === "services") {
      this.beforeServiceList = undefined;
      await hook();
    }
    return super.list(...args);
  }
}

describe("panic mode with a cache behind the API server", () => {
  const ns = useTestNamespace();
  const stops: (() => void)[] = [];
  afterEach(() => stops.splice(0).forEach((stop) => stop()));

  /** The HealthTarget record web, as healthgate makes it (spec only). */
  const createRecord = () =>
    testClients().custom.createNamespacedCustomObject({
      ...targets,
      namespace: ns.name,
      body: {
        apiVersion: "healthgate.io/v1alpha1",
        kind: "HealthTarget",
        metadata: { name: "web" },
        spec: { deployment: "web", policy: "p" },
      },
    });

  /** A PanicMode over a cache the test moves by hand, and the real Service and record. */
  async function setUp() {
    const { core, custom } = testClients();
    await core.createNamespacedService({ namespace: ns.name, body: makeService("web") });
    await createRecord();
    const deployment = {
      metadata: { name: "web", namespace: ns.name, uid: "d-1", generation: 1 },
      spec: { replicas: 2, template: { metadata: { labels: { app: "web" } } } },
      status: { observedGeneration: 1, replicas: 2, updatedReplicas: 2 },
    } as unknown as Deployment;
    const armed: PanicState = {
      phase: "Inactive",
      reason: "Armed",
      message: "2 of 2 serving pods Ready",
      readyPercent: 100,
      since: new Date().toISOString(),
    };
    const cache = {
      services: new Map<string, CachedService>(),
      targets: new Map<string, KubeObject & { status?: { panic?: PanicState } }>([
        [`${ns.name}/web`, { metadata: { name: "web", namespace: ns.name }, status: { panic: armed } }],
      ]),
    };
    const world = {
      targets: { get: (key: string) => cache.targets.get(key) },
      services: { get: (key: string) => cache.services.get(key), list: () => [...cache.services.values()] },
      replicaSets: { byIndex: () => [{ metadata: { uid: "rs-1" } }] },
      deployments: { list: () => [deployment] },
    } as unknown as World;
    const client = new HookedClient(testKubeConfig(), { metrics: createMetrics() });
    const start = () =>
      new PanicMode({
        world,
        client,
        clock: systemClock,
        logger: createLogger("silent"),
        event: async () => {},
      });
    let panic = start();
    const controller = new AbortController();
    stops.push(() => controller.abort());
    const readService = () => core.readNamespacedService({ name: "web", namespace: ns.name });
    const serviceRef = { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: ns.name } };
    /** The cache catches up with the server: the Service as it is now. */
    const catchUp = async () => {
      const svc = await readService();
      cache.services.set(
        `${ns.name}/web`,
        slimService(svc as unknown as KubeObject & Record<string, unknown>),
      );
    };
    const recordPanic = async () =>
      (
        (await custom.getNamespacedCustomObject({ ...targets, namespace: ns.name, name: "web" })) as {
          status?: { panic?: PanicState };
        }
      ).status?.panic;
    /** The cache catches up with the record too. */
    const catchUpRecord = async () => {
      const record = (await custom.getNamespacedCustomObject({
        ...targets,
        namespace: ns.name,
        name: "web",
      })) as KubeObject & {
        status?: { panic?: PanicState };
      };
      cache.targets.set(`${ns.name}/web`, record);
    };
    return {
      reconcile: () => panic.reconcile(policy, deployment, pods, controller.signal),
      /** Someone edits the Service back to publishNotReadyAddresses: false (an update: no managedFields entry names them). */
      kubectlEdit: async () => {
        const live = await readService();
        live.spec!.publishNotReadyAddresses = false;
        await core.replaceNamespacedService({
          name: "web",
          namespace: ns.name,
          body: live,
          fieldManager: "kubectl-edit",
        });
      },
      /** A GitOps tool force-applies publishNotReadyAddresses: false, owning the field. */
      gitopsApplies: () =>
        applyAs("gitops", { ...serviceRef, spec: { publishNotReadyAddresses: false } } as V1Service, {
          force: true,
        }),
      /** Another manager changes the Service elsewhere (a label). */
      teamLabels: () =>
        applyAs("team", {
          ...serviceRef,
          metadata: { ...serviceRef.metadata, labels: { team: "a" } },
        } as V1Service),
      /** Runs once, when healthgate next lists Services (the live look before it stops). */
      beforeServiceList: (hook: () => Promise<void>) => {
        client.beforeServiceList = hook;
      },
      /**
       * healthgate panicking, its publish made by a process that is gone: another one took over
       * with nothing in memory (the same cache, a new PanicMode).
       */
      publishedByAGoneProcess: async () => {
        await catchUp();
        await panic.reconcile(policy, deployment, pods, controller.signal);
        await catchUpRecord();
        panic = start();
      },
      catchUpRecord,
      catchUp,
      readService,
      recordPanic,
    };
  }

  const owners = (svc: V1Service) =>
    (svc.metadata?.managedFields ?? [])
      .filter(
        (m) => !m.subresource && JSON.stringify(m.fieldsV1 ?? {}).includes('"f:publishNotReadyAddresses"'),
      )
      .map((m) => m.manager);

  it("names the manager that took the field from the version that shows it, not from an older one that names nobody", async () => {
    const hg = await setUp();
    // Given healthgate panicking, its publish not yet in the cache
    await hg.catchUp();
    await hg.reconcile();
    expect((await hg.recordPanic())?.phase).toBe("Panicking");
    expect(owners(await hg.readService())).toEqual([PANIC_FIELD_MANAGER]);

    // When a GitOps tool takes the field back before the cache has seen either write
    await hg.gitopsApplies();
    // Then healthgate does not stop on the old version's say-so: it looks again shortly
    expect(await hg.reconcile()).toBe(1_000);
    expect((await hg.recordPanic())?.phase).toBe("Panicking");

    // and once the cache shows the revert, it stops and names who took the field
    await hg.catchUp();
    await hg.reconcile();
    const stopped = await hg.recordPanic();
    expect(stopped?.phase).toBe("Stopped");
    expect(stopped?.conflict).toEqual({ service: "web", manager: "gitops" });
    const svc = await hg.readService();
    expect(svc.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(svc)).toEqual(["gitops"]);
  });

  it("does not stop on an old version's say-so when the cache catches up while it looks at the live Service", async () => {
    const hg = await setUp();
    // Given healthgate panicking, its publish not yet in the cache
    await hg.catchUp();
    await hg.reconcile();
    await hg.catchUpRecord();
    // and a GitOps tool taking the field back
    await hg.gitopsApplies();

    // When the cache catches up while healthgate looks at the live Service
    hg.beforeServiceList(hg.catchUp);
    // Then the decision read from the old version (no owner) does not stop panic naming nobody
    expect(await hg.reconcile()).toBe(1_000);
    expect((await hg.recordPanic())?.phase).toBe("Panicking");
    // and the next look, at the version that shows the revert, names gitops
    await hg.reconcile();
    const stopped = await hg.recordPanic();
    expect(stopped?.phase).toBe("Stopped");
    expect(stopped?.conflict).toEqual({ service: "web", manager: "gitops" });
  });

  it("publishes only the Service version it decided on: a newer one is decided on again, and no edit is forced over", async () => {
    const hg = await setUp();
    // Given a cache that read the Service before someone changed it (here, a label)
    await hg.catchUp();
    await hg.teamLabels();

    // When healthgate enters panic on that older version, its publish is refused by the server
    expect(await hg.reconcile()).toBe(1_000);
    const untouched = await hg.readService();
    expect(untouched.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(untouched)).toEqual([]);
    expect(untouched.metadata?.labels?.team).toBe("a");

    // Then, with the cache caught up, it publishes
    await hg.catchUp();
    await hg.reconcile();
    const published = await hg.readService();
    expect(published.spec?.publishNotReadyAddresses).toBe(true);
    expect(owners(published)).toEqual([PANIC_FIELD_MANAGER]);
    expect((await hg.recordPanic())?.phase).toBe("Panicking");
  });

  it("a Stopped write that fails is retried as Stopped: the revert is not published over", async () => {
    const hg = await setUp();
    const { custom } = testClients();
    // Given healthgate panicking, and someone editing the Service back (an update: no owner)
    await hg.catchUp();
    await hg.reconcile();
    await hg.catchUpRecord();
    await hg.kubectlEdit();
    await hg.catchUp();

    // When its write of Stopped fails (here: the record is gone for a moment)
    await custom.deleteNamespacedCustomObject({ ...targets, namespace: ns.name, name: "web" });
    await expect(hg.reconcile()).rejects.toThrow();
    await createRecord();

    // Then the retry stops again, and leaves the Service as edited
    await hg.reconcile();
    expect((await hg.recordPanic())?.phase).toBe("Stopped");
    const svc = await hg.readService();
    expect(svc.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(svc)).toEqual([]);
  });

  it("a process that did not see its publish's reply (a restart, a lost reply) still stops at a kubectl edit, not publishing over it", async () => {
    const hg = await setUp();
    // Given healthgate panicking, its publish made by a process that is gone
    await hg.publishedByAGoneProcess();
    // and the new process's cache showing the Service as published by healthgate-panic
    await hg.catchUp();
    await hg.reconcile();
    expect((await hg.recordPanic())?.phase).toBe("Panicking");

    // When someone edits the Service back (an update: no managedFields entry names them)
    await hg.kubectlEdit();
    await hg.catchUp();
    await hg.reconcile();

    // Then it stops, and leaves the Service as edited
    const stopped = await hg.recordPanic();
    expect(stopped?.phase).toBe("Stopped");
    expect(stopped?.conflict).toEqual({ service: "web", manager: "" });
    const svc = await hg.readService();
    expect(svc.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(svc)).toEqual([]);
  });

  it("a publish refused only because healthgate's own earlier publish had landed: a GitOps tool taking the field later is named", async () => {
    const hg = await setUp();
    // Given healthgate panicking, its publish made by a process that is gone
    await hg.publishedByAGoneProcess();
    // and the new process publishing on a cache from before that publish: refused
    expect(await hg.reconcile()).toBe(1_000);
    // then the cache showing healthgate's hold
    await hg.catchUp();
    await hg.reconcile();
    expect((await hg.recordPanic())?.phase).toBe("Panicking");

    // When a GitOps tool takes the field back, and the cache shows it
    await hg.gitopsApplies();
    await hg.catchUp();
    await hg.reconcile();

    // Then healthgate stops and names it (the refusal was about healthgate's own hold)
    const stopped = await hg.recordPanic();
    expect(stopped?.phase).toBe("Stopped");
    expect(stopped?.conflict).toEqual({ service: "web", manager: "gitops" });
  });

  it("a refused publish is no revert: a GitOps applier that owned false all along is not named as taking it back", async () => {
    const hg = await setUp();
    // Given a Service whose publishNotReadyAddresses: false a GitOps tool applied and owns
    await hg.gitopsApplies();
    await hg.catchUp();
    // and a change the cache has not seen yet
    await hg.teamLabels();

    // When healthgate enters panic and its publish is refused (the cache was behind)
    expect(await hg.reconcile()).toBe(1_000);
    expect((await hg.recordPanic())?.phase).toBe("Panicking");

    // Then, the cache caught up, it publishes instead of stopping on gitops's old ownership
    await hg.catchUp();
    await hg.reconcile();
    expect((await hg.recordPanic())?.phase).toBe("Panicking");
    const published = await hg.readService();
    expect(published.spec?.publishNotReadyAddresses).toBe(true);
    expect(owners(published)).toEqual([PANIC_FIELD_MANAGER]);
  });
});
