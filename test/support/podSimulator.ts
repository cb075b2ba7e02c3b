// Plays the kubelet (and the scheduler) for the pods of one namespace, on
// simulated nodes. The test plane also has real kubelets (test/support/realNodes.ts),
// and every test whose claim rests on what the kubelet does (probes dialled,
// startup gating, liveness restarts, preStop drains, readiness gates) runs there
// (test/integration/kubelet/). The simulator stays where a real kubelet adds
// nothing: tests of healthgate's own reading and writing of objects (audit,
// headroom, governance, the API, resilience) and benches with thousands of pods.
// It runs no probe: a pod turns Ready on a timer or when the test says so. Its
// pods stay off the real nodes (they do not tolerate their taint) and its nodes
// are tainted so kube-scheduler never races it for a pod.
//
// What it does, as the kubelet and scheduler would:
//
// - binds unscheduled pods to fake Nodes, round-robin across zones;
// - writes pod status as a kubelet would: phase Running, a pod IP from the run's
//   range, containerStatuses, and the conditions PodReadyToStartContainers,
//   Initialized, ContainersReady and Ready, where Ready = every container ready
//   AND every spec.readinessGates condition True (a missing one is not True) —
//   the kubelet's rule, recomputed whenever anyone (healthgate) writes a gate;
// - finishes deletions (delete with grace period 0 once deletionTimestamp is
//   set), or namespaces would hang in Terminating;
// - lets a test drive containers: ready/unready, crash, ready after a delay.
//
// Status is written with a strategic-merge patch that names only the kubelet's
// condition types, so gate conditions written by others are never touched,
// and that carries the resourceVersion it was computed from, so a concurrent
// gate write makes it fail (409) and it is recomputed from a fresh read.
import {
  CoordinationV1Api,
  CoreV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type V1Node,
  type V1Pod,
  type V1PodCondition,
  type V1PodStatus,
} from "@kubernetes/client-node";
import { afterEach, beforeEach, inject } from "vitest";
import {
  ignoreNotFound,
  isApiError,
  testKubeConfig,
  useTestNamespace,
  type TestNamespaceOptions,
} from "./kube.ts";
import { claimIpBlock, formatCidr, IpAllocator } from "./podIps.ts";
import { waitFor } from "./waitFor.ts";

// ---- fake nodes ---------------------------------------------------------

export interface FakeNode {
  name: string;
  zone: string;
  /** Never dialled; TEST-NET-1 so it cannot collide with pod IPs or reach anything. */
  internalIP: string;
}

export const SIMULATED_NODE_LABEL = "test.healthgate.io/simulated-node";

export const FAKE_NODES: readonly FakeNode[] = [
  { name: "sim-node-a", zone: "zone-a", internalIP: "192.0.2.1" },
  { name: "sim-node-b", zone: "zone-b", internalIP: "192.0.2.2" },
  { name: "sim-node-c", zone: "zone-c", internalIP: "192.0.2.3" },
];

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const strategicMerge = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);

/**
 * The plane's node lifecycle controller marks a node NotReady (and its pods unready) when its
 * kube-node-lease Lease is not renewed within 50 s, as a kubelet would; for simulated nodes this
 * worker renews them every 10 s for as long as it runs.
 */
let leaseRenewal: NodeJS.Timeout | undefined;
const leasedNodes = new Map<string, FakeNode>();

async function renewLeases(coordination: CoordinationV1Api, nodes: readonly FakeNode[]): Promise<void> {
  // A MicroTime: the API server wants six fractional digits.
  const renewTime = new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
  await Promise.all(
    nodes.map(async ({ name }) => {
      try {
        await coordination.patchNamespacedLease(
          { name, namespace: "kube-node-lease", body: { spec: { renewTime } } },
          merge,
        );
      } catch (err) {
        if (!isApiError(err, 404)) throw err;
        await coordination
          .createNamespacedLease({
            namespace: "kube-node-lease",
            body: {
              metadata: { name },
              spec: {
                holderIdentity: name,
                leaseDurationSeconds: 40,
                renewTime: renewTime as unknown as Date,
              },
            },
          })
          .catch((e: unknown) => {
            if (!isApiError(e, 409)) throw e;
          });
      }
    }),
  );
}

/**
 * Creates the fake Nodes and marks them Ready. Idempotent and safe to run from
 * several workers at once: the nodes are shared by every test of the run.
 * They carry a NoSchedule taint so that kube-scheduler never binds a pod the
 * simulator is about to bind (the simulator binds directly, taints aside), and
 * their Leases are renewed (see leaseRenewal).
 */
export async function ensureFakeNodes(
  core: CoreV1Api,
  nodes: readonly FakeNode[] = FAKE_NODES,
  coordination?: CoordinationV1Api,
): Promise<void> {
  if (coordination && nodes.some((n) => !leasedNodes.has(n.name))) {
    for (const node of nodes) leasedNodes.set(node.name, node);
    await renewLeases(coordination, nodes);
  }
  if (coordination && !leaseRenewal) {
    leaseRenewal = setInterval(() => {
      renewLeases(coordination, [...leasedNodes.values()]).catch((err: unknown) =>
        console.warn(`pod simulator: renewing simulated nodes' Leases: ${(err as Error).message}`),
      );
    }, 10_000);
    leaseRenewal.unref();
  }
  await Promise.all(
    nodes.map(async ({ name, zone, internalIP }) => {
      const body: V1Node = {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name,
          labels: {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/region": "sim-region",
            "topology.kubernetes.io/zone": zone,
            [SIMULATED_NODE_LABEL]: "true",
          },
        },
        spec: { taints: [{ key: SIMULATED_NODE_LABEL, value: "true", effect: "NoSchedule" }] },
      };
      let node: V1Node;
      try {
        node = await core.createNode({ body });
      } catch (err) {
        if (!isApiError(err, 409)) throw err;
        node = await core.readNode({ name });
      }
      if (node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return;
      const now = new Date().toISOString();
      await core.patchNodeStatus(
        {
          name,
          body: {
            status: {
              conditions: [
                {
                  type: "Ready",
                  status: "True",
                  reason: "KubeletReady",
                  message: "simulated node",
                  lastHeartbeatTime: now,
                  lastTransitionTime: now,
                },
              ],
              addresses: [
                { type: "InternalIP", address: internalIP },
                { type: "Hostname", address: name },
              ],
              capacity: { cpu: "8", memory: "32Gi", pods: "110" },
              allocatable: { cpu: "8", memory: "32Gi", pods: "110" },
            },
          },
        },
        merge,
      );
    }),
  );
}

// ---- pod behaviour ------------------------------------------------------

export interface PodBehaviour {
  /** Milliseconds from container start until its readiness probe passes; "never" waits for setReady(). */
  readyAfterMs: number | "never";
}

/** Decides, per pod, how its containers behave when they start. */
export type BehaviourPolicy = (pod: V1Pod) => PodBehaviour;

const READY_AT_ONCE: PodBehaviour = { readyAfterMs: 0 };

export interface PodSimulatorOptions {
  namespace: string;
  /** Default: the run's admin kubeconfig. */
  kubeConfig?: KubeConfig;
  /** Where pod IPs come from. Default: a block of the run's range claimed for this simulator alone. */
  podCidr?: string;
  nodes?: readonly FakeNode[];
  /** Default: every container is ready as soon as it starts. */
  behaviour?: PodBehaviour | BehaviourPolicy;
}

interface Termination {
  exitCode: number;
  reason: string;
  startedAt: string;
  finishedAt: string;
}

/** What the simulator knows of a pod beyond its API object: the "containers". */
interface SimulatedPod {
  uid: string;
  ip: string;
  startedAt: string;
  /** When the readiness probes start passing; undefined = never on their own. */
  readyAt: number | undefined;
  /** Readiness forced by the test, per container; wins over readyAt. */
  forced: Map<string, boolean>;
  restartCount: number;
  lastTermination: Termination | undefined;
}

/** The condition types the kubelet owns; every other type (readiness gates) belongs to someone else. */
const KUBELET_CONDITIONS = [
  "PodReadyToStartContainers",
  "Initialized",
  "ContainersReady",
  "Ready",
  "PodScheduled",
];

/** RFC 3339 at second precision, whether the value came typed (Date) from a read or raw from a watch. */
function iso(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return new Date(value).toISOString().replace(/\.\d+Z$/, "Z");
}

function resourceVersionOf(pod: V1Pod): number {
  // etcd revisions: integers that only grow. Opaque by contract, but this
  // harness talks to one etcd and uses them only to ignore stale copies.
  return Number(pod.metadata?.resourceVersion ?? 0);
}

/** The fields the simulator writes, in a comparable form, so unchanged status is never rewritten. */
function fingerprint(status: V1PodStatus | undefined): string {
  const s = status ?? {};
  return JSON.stringify({
    phase: s.phase,
    podIP: s.podIP,
    hostIP: s.hostIP,
    conditions: KUBELET_CONDITIONS.map((type) => {
      const c = s.conditions?.find((x) => x.type === type);
      return c ? [c.status, c.reason ?? "", c.message ?? ""] : null;
    }),
    containers: (s.containerStatuses ?? []).map((c) => [
      c.name,
      c.ready,
      c.restartCount,
      iso(c.state?.running?.startedAt),
      c.lastState?.terminated?.exitCode ?? null,
    ]),
    initContainers: (s.initContainerStatuses ?? []).map((c) => [
      c.name,
      c.state?.terminated?.exitCode ?? null,
    ]),
  });
}

function isStale(error: unknown): boolean {
  return isApiError(error, 409);
}

/** How a watch ended: from where to watch again, or `gone` (410) when only a relist helps. */
interface WatchEnd {
  gone: boolean;
  resourceVersion: string;
}

type Deferred = { resolve: () => void; reject: (err: unknown) => void; promise: Promise<void> };
function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { resolve, reject, promise };
}

/** The pod range of this run, from globalSetup (or the environment outside vitest). */
function runPodCidr(): { runDir: string; podCidr: string } {
  const runDir = inject("runDir") ?? process.env.HEALTHGATE_TEST_RUN_DIR;
  const podCidr = inject("podCidr") ?? process.env.HEALTHGATE_TEST_POD_CIDR;
  if (!runDir || !podCidr)
    throw new Error("no test run: start the pod simulator under the integration globalSetup");
  return { runDir, podCidr };
}

export class PodSimulator {
  readonly namespace: string;
  /** Errors met while reconciling pods on their own (not on behalf of a control call). */
  readonly errors: Error[] = [];

  private readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly nodes: readonly FakeNode[];
  private readonly ips: IpAllocator;
  private behaviour: BehaviourPolicy;

  private readonly cache = new Map<string, V1Pod>();
  private readonly simulated = new Map<string, SimulatedPod>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly slots = new Map<string, { current: Deferred[]; next: Deferred[] }>();
  private nextNode = 0;
  /** The node each pod is bound to, chosen once: a pod seen again before its binding shows (kube-scheduler's Unschedulable status write is one such sighting) keeps its node. */
  private readonly chosenNode = new Map<string, FakeNode>();
  private stopped = false;
  private watchAbort: AbortController | undefined;
  private loop: Promise<void> | undefined;

  private constructor(
    options: Required<Omit<PodSimulatorOptions, "behaviour">> & { behaviour: BehaviourPolicy },
  ) {
    this.namespace = options.namespace;
    this.kc = options.kubeConfig;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.nodes = options.nodes;
    this.ips = new IpAllocator(options.podCidr);
    this.behaviour = options.behaviour;
  }

  /** Creates the fake nodes if needed, lists the namespace's pods and starts watching; resolves once watching. */
  static async start(options: PodSimulatorOptions): Promise<PodSimulator> {
    const kubeConfig = options.kubeConfig ?? testKubeConfig();
    let podCidr = options.podCidr;
    if (!podCidr) {
      const run = runPodCidr();
      podCidr = await claimIpBlock(run.runDir, run.podCidr);
    }
    const simulator = new PodSimulator({
      namespace: options.namespace,
      kubeConfig,
      podCidr,
      nodes: options.nodes ?? FAKE_NODES,
      behaviour: PodSimulator.policy(options.behaviour ?? READY_AT_ONCE),
    });
    await ensureFakeNodes(simulator.core, simulator.nodes, kubeConfig.makeApiClient(CoordinationV1Api));
    await simulator.startWatching();
    return simulator;
  }

  private static policy(behaviour: PodBehaviour | BehaviourPolicy): BehaviourPolicy {
    return typeof behaviour === "function" ? behaviour : () => behaviour;
  }

  /** The pod range this simulator hands IPs out of. */
  get podCidr(): string {
    return formatCidr(this.ips.cidr);
  }

  // ---- controls ---------------------------------------------------------

  /** How containers of pods that start from now on behave (pods already running keep theirs). */
  setBehaviour(behaviour: PodBehaviour | BehaviourPolicy): void {
    this.behaviour = PodSimulator.policy(behaviour);
  }

  /** The pod's IP, once the simulator has given it one. A test can bind a real server on it. */
  podIP(name: string): string | undefined {
    const uid = this.cache.get(name)?.metadata?.uid;
    return uid ? this.simulated.get(uid)?.ip : undefined;
  }

  /** Waits until the pod runs (status written with its IP) and returns the IP. */
  async waitForRunning(name: string, timeoutMs = 30_000): Promise<string> {
    return waitFor(
      () => {
        const pod = this.cache.get(name);
        return pod?.status?.phase === "Running" && pod.status.podIP ? pod.status.podIP : undefined;
      },
      { what: `pod ${this.namespace}/${name} to run under the simulator`, timeoutMs, intervalMs: 20 },
    );
  }

  /** Pods the simulator runs (bound, with an IP, not being deleted), optionally filtered by labels. */
  pods(labels: Record<string, string> = {}): V1Pod[] {
    return [...this.cache.values()].filter(
      (pod) =>
        !pod.metadata?.deletionTimestamp &&
        pod.status?.podIP &&
        Object.entries(labels).every(([k, v]) => pod.metadata?.labels?.[k] === v),
    );
  }

  /** Forces the readiness probe result of one container (default: all), as if the probe passed or failed. */
  async setReady(name: string, ready: boolean, options: { container?: string } = {}): Promise<void> {
    const { pod, sim } = this.running(name);
    const containers = options.container ? [options.container] : pod.spec!.containers.map((c) => c.name);
    for (const container of containers) sim.forced.set(container, ready);
    await this.schedule(name);
  }

  /** Restarts the readiness clock: the containers become ready `ms` from now (a slow start), or never. */
  async readyAfter(name: string, ms: number | "never"): Promise<void> {
    const { sim } = this.running(name);
    sim.forced.clear();
    sim.readyAt = ms === "never" ? undefined : Date.now() + ms;
    await this.schedule(name);
  }

  /**
   * The containers crash and restart: restartCount goes up, lastState records
   * the termination, readiness starts over (after `readyAfterMs`, default the
   * pod's behaviour) and forced readiness is forgotten.
   */
  async crash(
    name: string,
    options: { exitCode?: number; reason?: string; readyAfterMs?: number | "never" } = {},
  ): Promise<void> {
    const { pod, sim } = this.running(name);
    const now = new Date().toISOString();
    sim.lastTermination = {
      exitCode: options.exitCode ?? 1,
      reason: options.reason ?? "Error",
      startedAt: sim.startedAt,
      finishedAt: now,
    };
    sim.restartCount++;
    sim.startedAt = now;
    sim.forced.clear();
    sim.readyAt = this.readyAtFor(pod, options.readyAfterMs);
    await this.schedule(name);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watchAbort?.abort();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await this.loop;
    await Promise.allSettled(
      [...this.slots.values()].flatMap((s) => [...s.current, ...s.next].map((d) => d.promise)),
    );
  }

  private running(name: string): { pod: V1Pod; sim: SimulatedPod } {
    const pod = this.cache.get(name);
    const sim = pod?.metadata?.uid ? this.simulated.get(pod.metadata.uid) : undefined;
    if (!pod || !sim) {
      throw new Error(
        `pod ${this.namespace}/${name} is not running under the simulator (yet?): await waitForRunning()`,
      );
    }
    return { pod, sim };
  }

  private readyAtFor(pod: V1Pod, override?: number | "never"): number | undefined {
    const after = override ?? this.behaviour(pod).readyAfterMs;
    return after === "never" ? undefined : Date.now() + after;
  }

  // ---- watching ---------------------------------------------------------

  private async startWatching(): Promise<void> {
    // The first list and watch happen here so that start() fails loudly (RBAC,
    // missing namespace); reconnects then happen in the background.
    let resourceVersion = await this.relist();
    let watch = await this.watchFrom(resourceVersion);
    this.loop = (async () => {
      let backoffMs = 100;
      while (!this.stopped) {
        try {
          const end = await watch.ended;
          if (this.stopped) return;
          resourceVersion = end.gone ? await this.relist() : end.resourceVersion;
          watch = await this.watchFrom(resourceVersion);
          backoffMs = 100;
        } catch (err) {
          if (this.stopped) return;
          // Not a test failure by itself (the API server may be restarting);
          // a watch that never comes back shows up as pods that never run.
          console.warn(
            `pod simulator: watch of pods in ${this.namespace} failed, retrying: ${(err as Error).message}`,
          );
          await new Promise((resolve) => setTimeout(resolve, backoffMs));
          backoffMs = Math.min(backoffMs * 2, 5_000);
          watch = { ended: Promise.resolve({ gone: true, resourceVersion }) }; // relist next
        }
      }
    })();
  }

  /** Lists the namespace's pods, replaces the cache and reconciles every pod; returns the list's resourceVersion. */
  private async relist(): Promise<string> {
    const list = await this.core.listNamespacedPod({ namespace: this.namespace });
    const seen = new Set<string>();
    for (const pod of list.items) {
      seen.add(pod.metadata!.name!);
      this.remember(pod, true);
    }
    for (const name of [...this.cache.keys()]) if (!seen.has(name)) this.forget(name);
    return list.metadata?.resourceVersion ?? "0";
  }

  /**
   * Opens a watch from `resourceVersion`. Resolves once connected, with a
   * promise of how the watch ends: `gone` when the version is too old (410: relist).
   */
  private async watchFrom(resourceVersion: string): Promise<{ ended: Promise<WatchEnd> }> {
    let latest = resourceVersion;
    let gone = false;
    let settle!: (result: WatchEnd) => void;
    let fail!: (err: unknown) => void;
    const ended = new Promise<WatchEnd>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    const onEvent = (type: string, object: V1Pod & { code?: number }) => {
      if (type === "ERROR") {
        if (object.code === 410) gone = true;
        return;
      }
      latest = object.metadata?.resourceVersion ?? latest;
      if (type === "BOOKMARK") return;
      if (type === "DELETED") {
        const name = object.metadata!.name!;
        if (this.cache.get(name)?.metadata?.uid === object.metadata?.uid) this.forget(name);
      } else this.remember(object, true);
    };
    const onDone = (err: unknown) => {
      const name = (err as { name?: string } | null)?.name;
      // client-node ends a quiet watch after 30 s (TimeoutError) and reports
      // our own abort as AbortError; both just mean "watch again from latest".
      if (!err || name === "AbortError" || name === "TimeoutError") settle({ gone, resourceVersion: latest });
      else if ((err as { statusCode?: number }).statusCode === 410)
        settle({ gone: true, resourceVersion: latest });
      else fail(err);
    };
    this.watchAbort = await new Watch(this.kc).watch(
      `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods`,
      { resourceVersion, allowWatchBookmarks: true },
      onEvent,
      onDone,
    );
    if (this.stopped) this.watchAbort.abort();
    // Wrapped: an async function returning a promise would wait for it.
    return { ended };
  }

  /** Caches a pod unless the cache already holds a newer copy; optionally reconciles it. */
  private remember(pod: V1Pod, reconcile = false): void {
    const name = pod.metadata!.name!;
    const cached = this.cache.get(name);
    const sameUid = cached?.metadata?.uid === pod.metadata?.uid;
    if (cached && sameUid && resourceVersionOf(cached) > resourceVersionOf(pod)) return;
    if (cached && !sameUid) this.dropSimulated(cached);
    this.cache.set(name, pod);
    if (reconcile)
      this.schedule(name).catch((err: unknown) => this.report(`pod ${this.namespace}/${name}`, err));
  }

  private forget(name: string): void {
    const cached = this.cache.get(name);
    if (cached) this.dropSimulated(cached);
    this.cache.delete(name);
  }

  private dropSimulated(pod: V1Pod): void {
    if (pod.metadata?.uid) {
      this.simulated.delete(pod.metadata.uid);
      this.chosenNode.delete(pod.metadata.uid);
    }
    const timer = this.timers.get(pod.metadata!.name!);
    if (timer) clearTimeout(timer);
    this.timers.delete(pod.metadata!.name!);
  }

  private report(what: string, err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.errors.push(error);
    console.warn(`pod simulator: ${what}: ${error.message}`);
  }

  // ---- reconciling ------------------------------------------------------

  /**
   * Runs reconcile(name), one at a time per pod. A call while one runs queues
   * exactly one more run (which sees everything that happened before it) and
   * resolves when that run has finished.
   */
  private schedule(name: string): Promise<void> {
    const waiter = deferred();
    const slot = this.slots.get(name);
    if (slot) {
      slot.next.push(waiter);
      return waiter.promise;
    }
    const fresh = { current: [waiter], next: [] as Deferred[] };
    this.slots.set(name, fresh);
    void (async () => {
      for (;;) {
        let failure: unknown;
        try {
          await this.reconcile(name);
        } catch (err) {
          failure = err;
        }
        for (const w of fresh.current) {
          if (failure === undefined) w.resolve();
          else w.reject(failure);
        }
        if (fresh.next.length === 0 || this.stopped) {
          for (const w of fresh.next) w.resolve();
          this.slots.delete(name);
          return;
        }
        fresh.current = fresh.next;
        fresh.next = [];
      }
    })();
    return waiter.promise;
  }

  private async reconcile(name: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const pod = this.cache.get(name);
      if (!pod || this.stopped) return;
      try {
        await this.reconcilePod(pod);
        return;
      } catch (err) {
        if (isApiError(err, 404)) return; // deleted meanwhile; the watch will say so
        if (!isStale(err) || attempt >= 5) throw err;
        // Someone (healthgate setting a gate, the controller manager) wrote the
        // pod after our copy was taken: recompute from a fresh read.
        const fresh = await ignoreNotFound(this.core.readNamespacedPod({ name, namespace: this.namespace }));
        if (!fresh) return;
        this.remember(fresh);
      }
    }
  }

  private async reconcilePod(pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    if (pod.metadata?.deletionTimestamp) {
      // What the kubelet does once containers have stopped: remove the pod for good.
      await ignoreNotFound(
        this.core.deleteNamespacedPod({
          name,
          namespace: this.namespace,
          // In the body, not the query: the API server ignores query options
          // when a body (here: the uid precondition) is sent.
          body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } },
        }),
      );
      return;
    }
    if (!pod.spec?.nodeName) {
      await this.bind(pod);
      return; // the watch brings the bound pod back
    }
    if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return;

    const sim = this.simulatedFor(pod);
    const now = Date.now();
    const status = this.desiredStatus(pod, sim, now);
    this.wakeWhenReady(name, sim, now);
    if (fingerprint(status) === fingerprint(pod.status)) return;
    const updated = await this.core.patchNamespacedPodStatus(
      {
        name,
        namespace: this.namespace,
        // The resourceVersion makes this a compare-and-swap (409 if stale).
        body: { metadata: { resourceVersion: pod.metadata!.resourceVersion }, status },
      },
      strategicMerge,
    );
    this.remember(updated);
  }

  private async bind(pod: V1Pod): Promise<void> {
    const uid = pod.metadata!.uid!;
    let node = this.chosenNode.get(uid);
    if (!node) {
      node = this.nodes[this.nextNode++ % this.nodes.length]!;
      this.chosenNode.set(uid, node);
    }
    try {
      await this.core.createNamespacedPodBinding({
        name: pod.metadata!.name!,
        namespace: this.namespace,
        body: {
          apiVersion: "v1",
          kind: "Binding",
          metadata: { name: pod.metadata!.name!, namespace: this.namespace, uid: pod.metadata!.uid },
          target: { apiVersion: "v1", kind: "Node", name: node.name },
        },
      });
    } catch (err) {
      if (!isApiError(err, 409)) throw err; // 409: already bound
    }
  }

  private simulatedFor(pod: V1Pod): SimulatedPod {
    const uid = pod.metadata!.uid!;
    let sim = this.simulated.get(uid);
    if (!sim) {
      sim = {
        uid,
        // A pod that already has an IP (a previous simulator ran it) keeps it.
        ip: pod.status?.podIP ?? this.ips.allocate(),
        startedAt: iso(new Date())!,
        readyAt: this.readyAtFor(pod),
        forced: new Map(),
        restartCount: 0,
        lastTermination: undefined,
      };
      this.simulated.set(uid, sim);
    }
    return sim;
  }

  /** Re-reconciles the pod when its readiness delay has passed. */
  private wakeWhenReady(name: string, sim: SimulatedPod, now: number): void {
    const existing = this.timers.get(name);
    if (existing) clearTimeout(existing);
    this.timers.delete(name);
    if (sim.readyAt === undefined || sim.readyAt <= now) return;
    const timer = setTimeout(() => {
      this.timers.delete(name);
      this.schedule(name).catch((err: unknown) => this.report(`pod ${this.namespace}/${name}`, err));
    }, sim.readyAt - now);
    timer.unref();
    this.timers.set(name, timer);
  }

  /** The status a kubelet would report for these containers, with Ready decided by the kubelet's rule. */
  private desiredStatus(pod: V1Pod, sim: SimulatedPod, now: number): Record<string, unknown> {
    const spec = pod.spec!;
    const current = pod.status ?? {};
    const probesPass = sim.readyAt !== undefined && now >= sim.readyAt;
    const containerStatuses = spec.containers.map((c) => ({
      name: c.name,
      image: c.image ?? "",
      imageID: `sim://${c.image ?? ""}`,
      containerID: `sim://${sim.uid}/${c.name}/${sim.restartCount}`,
      ready: sim.forced.get(c.name) ?? probesPass,
      started: true,
      restartCount: sim.restartCount,
      state: { running: { startedAt: sim.startedAt } },
      lastState: sim.lastTermination ? { terminated: { ...sim.lastTermination } } : {},
    }));
    const initContainerStatuses = (spec.initContainers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? "",
      imageID: `sim://${c.image ?? ""}`,
      ready: true,
      restartCount: 0,
      state: {
        terminated: { exitCode: 0, reason: "Completed", startedAt: sim.startedAt, finishedAt: sim.startedAt },
      },
    }));

    // pkg/kubelet/status/generate.go: ContainersReady, then Ready = ContainersReady
    // AND every readiness gate condition True, with the kubelet's messages.
    const unready = containerStatuses.filter((c) => !c.ready).map((c) => c.name);
    const containersReady: Omit<V1PodCondition, "lastTransitionTime"> =
      unready.length === 0
        ? { type: "ContainersReady", status: "True" }
        : {
            type: "ContainersReady",
            status: "False",
            reason: "ContainersNotReady",
            message: `containers with unready status: [${unready.join(" ")}]`,
          };
    const gateProblems = (spec.readinessGates ?? []).flatMap(({ conditionType }) => {
      const gate = current.conditions?.find((c) => c.type === conditionType);
      if (!gate) return [`corresponding condition of pod readiness gate "${conditionType}" does not exist.`];
      if (gate.status !== "True")
        return [`the status of pod readiness gate "${conditionType}" is not "True", but ${gate.status}`];
      return [];
    });
    const ready: Omit<V1PodCondition, "lastTransitionTime"> =
      containersReady.status !== "True"
        ? { ...containersReady, type: "Ready" }
        : gateProblems.length > 0
          ? {
              type: "Ready",
              status: "False",
              reason: "ReadinessGatesNotReady",
              message: gateProblems.join(", "),
            }
          : { type: "Ready", status: "True" };

    const stamp = iso(new Date(now))!;
    // lastTransitionTime moves only when a condition's status flips.
    const conditions = [
      { type: "PodReadyToStartContainers", status: "True" },
      { type: "Initialized", status: "True" },
      containersReady,
      ready,
      { type: "PodScheduled", status: "True" },
    ].map((c) => {
      const previous = current.conditions?.find((p) => p.type === c.type);
      const kept = previous && previous.status === c.status ? iso(previous.lastTransitionTime) : undefined;
      return { reason: null, message: null, ...c, lastProbeTime: null, lastTransitionTime: kept ?? stamp };
    });

    const node = this.nodes.find((n) => n.name === spec.nodeName) ?? this.nodes[0]!;
    return {
      phase: "Running",
      hostIP: node.internalIP,
      hostIPs: [{ ip: node.internalIP }],
      podIP: sim.ip,
      podIPs: [{ ip: sim.ip }],
      startTime: iso(current.startTime) ?? stamp,
      conditions,
      containerStatuses,
      ...(initContainerStatuses.length > 0 ? { initContainerStatuses } : {}),
    };
  }
}

/**
 * A fresh namespace per test (see useTestNamespace) with a pod simulator
 * running in it for the duration of the test:
 *
 *   const ns = useSimulatedNamespace();
 *   it("…", async () => { …; await ns.simulator.waitForRunning("web-0") });
 *
 * The simulator stops before the namespace is deleted; deletion does not need
 * it (pods are deleted with grace period 0). The test fails if the simulator
 * met errors of its own while reconciling.
 */
export function useSimulatedNamespace(
  options: Omit<PodSimulatorOptions, "namespace"> & TestNamespaceOptions = {},
): {
  readonly name: string;
  readonly simulator: PodSimulator;
} {
  const { awaitDeletion, ...simulatorOptions } = options;
  const namespace = useTestNamespace(awaitDeletion ? { awaitDeletion } : {});
  let current: PodSimulator | undefined;
  // Registered after useTestNamespace's hooks: vitest runs beforeEach hooks in
  // order and afterEach hooks in reverse, so the namespace exists first and
  // outlives the simulator.
  beforeEach(async () => {
    current = await PodSimulator.start({ ...simulatorOptions, namespace: namespace.name });
  });
  afterEach(async () => {
    const simulator = current;
    current = undefined;
    await simulator?.stop();
    if (simulator && simulator.errors.length > 0) {
      throw new Error(`the pod simulator met errors: ${simulator.errors.map((e) => e.message).join("; ")}`);
    }
  });
  return {
    get name() {
      return namespace.name;
    },
    get simulator() {
      if (!current) throw new Error("useSimulatedNamespace().simulator is only available inside a test");
      return current;
    },
  };
}
