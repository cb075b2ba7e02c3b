// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
//   - a candidate takes the lease when its holder is empty or has not renewed it for
//     leaseDuration, measured on OUR clock from when we saw the lease change (clocks of
//     different nodes disagree; renewTime is informational);
//   - the leader renews every retryPeriod; if no renewal succeeded for renewDeadline it stops
//     acting at once (the signal aborts), before the lease can expire for the others;
//   - every write carries the resourceVersion it read: a 409 means someone else wrote, so
//     re-read and decide again;
//   - release() (SIGTERM) empties the holder so a standby takes over without waiting;
//   - candidates also watch the one Lease: when it is released (holder emptied) or deleted
//     they try at once rather than at their next jittered poll (up to 2.2 × retryPeriod
//     away). The polls stay the source of truth; the watch only wakes them early, and a
//     watch that fails (RBAC without `watch`, a server away) just leaves the polls.
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";
import { sleep, systemClock, withTimeout, type Clock, type TimerHandle } from "./clock.ts";
import {
  apiErrorMessage,
  isConflict,
  isNotFound,
  resources,
  type KubeClient,
  type KubeObject,
} from "./client.ts";

export interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export type LeaseClient = Pick<KubeClient, "get" | "create" | "replace"> & Partial<Pick<KubeClient, "watch">>;

export interface LeaderElectionOptions {
  client: LeaseClient;
  namespace: string;
  /** The Lease's name. */
  name: string;
  /** Unique per replica: the pod name, or hostname_pid. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Start acting as leader; stop as soon as `signal` aborts. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called after the signal aborted; release() waits for it before giving the lease away. */
  onStoppedLeading(): void | Promise<void>;
  metrics: HealthgateMetrics;
  logger: Logger;
  clock?: Clock;
  random?: () => number;
}

/** Lease times are metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}

export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: Logger;
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  private watching: Promise<void> | undefined;
  /** Aborted by the lease watch to cut a candidate's sleep short. */
  private wake = new AbortController();
  /** Aborted the moment this replica must stop acting as leader. */
  private leading: AbortController | undefined;
  private renewDeadline: TimerHandle | undefined;
  /** The lease as last read or written. */
  private lease: Lease | undefined;
  private observedResourceVersion: string | undefined;
  private observedAt = 0;
  /** When the lease, as last observed held by someone else, expires on our clock. */
  private expiresAt: number | undefined;
  private lastRenewAt = 0;
  /**
   * The last term's shutdown (onStoppedLeading) while it runs. Terms never overlap: this replica
   * takes or renews the lease again only after it, and starts no new term before it ends.
   */
  private draining: Promise<void> | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new Error("leader election needs leaseDuration > renewDeadline > retryPeriod");
    }
    this.log = options.logger.child({ kind: "Lease", namespace: options.namespace, name: options.name });
    this.options.metrics.leader.set({ lease: options.name }, 0);
  }

  start(): void {
    if (this.running) throw new Error(`leader election for ${this.options.name} already started`);
    this.running = this.run();
    const client = this.options.client;
    if (client.watch) this.watching = this.watchLease(client.watch.bind(client));
  }

  isLeader(): boolean {
    return this.leading !== undefined;
  }

  /** Stops campaigning; a leader stops acting, waits for onStoppedLeading, then frees the lease. */
  async release(): Promise<void> {
    this.stopping.abort();
    await Promise.all([this.running, this.watching]);
    const lease = this.lease;
    if (!this.leading) return;
    await this.stepDown("Released");
    if (!lease) return;
    const now = this.clock.now();
    try {
      // client-go's release: no holder, a 1 s duration, and the transition count kept.
      await withTimeout(this.clock, this.renewDeadlineMs, undefined, (signal) =>
        this.options.client.replace<Lease>(
          {
            ...lease,
            spec: {
              leaseDurationSeconds: 1,
              acquireTime: microTime(now),
              renewTime: microTime(now),
              leaseTransitions: lease.spec?.leaseTransitions ?? 0,
            },
          },
          signal,
        ),
      );
      this.log.info({ reason: "Released" }, "released the leader lease");
    } catch (err) {
      this.log.warn(
        { reason: "ReleaseFailed", err: apiErrorMessage(err) },
        "could not release the lease; a standby takes over once it expires",
      );
    }
  }

  private async run(): Promise<void> {
    const stopped = this.stopping.signal;
    while (!stopped.aborted) {
      if (this.wake.signal.aborted) this.wake = new AbortController();
      if (this.draining) {
        await this.draining;
        continue;
      }
      const attemptAt = this.clock.now();
      try {
        // A leader's attempt must end before its renew deadline does; a candidate's has a
        // whole renew deadline.
        const budget = this.leading
          ? this.renewDeadlineMs - (attemptAt - this.lastRenewAt)
          : this.renewDeadlineMs;
        const held = await withTimeout(this.clock, Math.max(1, budget), stopped, (signal) =>
          this.tryAcquireOrRenew(signal),
        );
        if (held) this.renewed(attemptAt);
        else if (this.leading) void this.stepDown("LeaseLost");
      } catch (err) {
        if (stopped.aborted) break;
        this.log.warn({ reason: "LeaseUpdateFailed", err: apiErrorMessage(err) }, "lease update failed");
      }
      // Candidates spread out their polls (client-go's jitter factor 1.2), but try again as soon
      // as the lease they saw held expires; the leader renews steadily.
      const jittered = this.retryPeriodMs * (1 + 1.2 * this.random());
      const untilExpiry = this.expiresAt === undefined ? jittered : this.expiresAt - this.clock.now() + 1;
      const delay = this.leading ? this.retryPeriodMs : Math.max(0, Math.min(jittered, untilExpiry));
      try {
        await sleep(this.clock, delay, AbortSignal.any([stopped, this.wake.signal]));
      } catch {
        if (stopped.aborted) break;
        this.log.debug({ reason: "LeaseReleased" }, "the lease was released; trying at once");
      }
    }
  }

  /** Wakes a candidate's sleep when the Lease is released or deleted. */
  private async watchLease(watch: KubeClient["watch"]): Promise<void> {
    const stopped = this.stopping.signal;
    const { namespace, name } = this.options;
    let failures = 0;
    while (!stopped.aborted) {
      try {
        // No resourceVersion: the server first sends the Lease as it is, then its changes.
        await watch(
          resources.leases,
          namespace,
          { resourceVersion: "", fieldSelector: `metadata.name=${name}`, timeoutSeconds: 300 },
          (event) => {
            if (this.leading || event.type === "BOOKMARK") return;
            const lease = event.object as Lease;
            const holder = lease.spec?.holderIdentity ?? "";
            if (event.type === "DELETED" || holder === "") return this.wake.abort();
            // A renewal seen as it happens, more precisely than by the next poll.
            this.noteHolder(lease, this.clock.now());
          },
          stopped,
        );
        failures = 0;
      } catch (err) {
        if (stopped.aborted) return;
        failures++;
        if (failures === 1) {
          this.log.info(
            { reason: "LeaseWatchFailed", err: apiErrorMessage(err) },
            "cannot watch the lease; a released lease is noticed at the next poll",
          );
        }
        try {
          // 2 s, 4 s, … up to 60 s between attempts.
          await sleep(this.clock, Math.min(60_000, this.retryPeriodMs * 2 ** (failures - 1)), stopped);
        } catch {
          return;
        }
      }
    }
  }

  /** True when this replica holds the lease after the attempt. */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    try {
      return await this.attempt(signal);
    } catch (err) {
      if (!isConflict(err)) throw err;
      this.lease = undefined;
      return await this.attempt(signal);
    }
  }

  private async attempt(signal: AbortSignal): Promise<boolean> {
    const { client, namespace, name } = this.options;
    const now = this.clock.now();
    // The leader renews from its own last write; anyone else must look first.
    let lease = this.leading ? this.lease : undefined;
    if (!lease) {
      try {
        lease = await client.get<Lease>(resources.leases, { namespace, name }, signal);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        this.lease = await client.create<Lease>(this.leaseHeldByUs(undefined, now), signal);
        return true;
      }
    }
    this.noteHolder(lease, now);
    if (this.expiresAt !== undefined && now < this.expiresAt) return false;
    this.expiresAt = undefined;
    this.lease = await client.replace<Lease>(this.leaseHeldByUs(lease, now), signal);
    this.observe(this.lease, now);
    return true;
  }

  private leaseHeldByUs(current: Lease | undefined, now: number): Lease {
    const { namespace, name, identity } = this.options;
    const spec = current?.spec ?? {};
    const renewal = spec.holderIdentity === identity;
    const { managedFields: _ignored, ...metadata } = current?.metadata ?? { namespace, name };
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata,
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
        acquireTime: renewal && spec.acquireTime ? spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (renewal || !current ? 0 : 1),
      },
    };
  }

  /**
   * Observes `lease`; while someone else holds it, `expiresAt` is when it expires on our clock
   * (leaseDuration after we saw it last change), else undefined.
   */
  private noteHolder(lease: Lease, now: number): void {
    this.observe(lease, now);
    const holder = lease.spec?.holderIdentity ?? "";
    const durationMs = (lease.spec?.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    this.expiresAt =
      holder !== "" && holder !== this.options.identity ? this.observedAt + durationMs : undefined;
  }

  /** Expiry is judged from when we saw the lease last change, on our own clock. */
  private observe(lease: Lease, now: number): void {
    if (lease.metadata.resourceVersion !== this.observedResourceVersion) {
      this.observedResourceVersion = lease.metadata.resourceVersion;
      this.observedAt = now;
    }
  }

  /** `attemptAt` (when the request left) rather than now: the deadline errs on the safe side. */
  private renewed(attemptAt: number): void {
    this.lastRenewAt = attemptAt;
    this.clock.clearTimeout(this.renewDeadline);
    this.renewDeadline = this.clock.setTimeout(
      () => void this.stepDown("RenewDeadlineExceeded"),
      attemptAt + this.renewDeadlineMs - this.clock.now(),
    );
    // A renewal that raced a step-down: the old term is still draining; the loop waits for it.
    if (this.leading || this.draining) return;
    const leading = new AbortController();
    this.leading = leading;
    this.options.metrics.leader.set({ lease: this.options.name }, 1);
    this.log.info({ reason: "Acquired", identity: this.options.identity }, "started leading");
    Promise.resolve()
      .then(() => this.options.onStartedLeading(leading.signal))
      .catch((err: unknown) => this.log.error({ err }, "onStartedLeading failed"));
  }

  private async stepDown(reason: "LeaseLost" | "RenewDeadlineExceeded" | "Released"): Promise<void> {
    const leading = this.leading;
    if (!leading) return;
    this.leading = undefined;
    this.lease = undefined;
    this.clock.clearTimeout(this.renewDeadline);
    leading.abort(new Error(`stopped leading: ${reason}`));
    this.options.metrics.leader.set({ lease: this.options.name }, 0);
    const log = reason === "Released" ? this.log.info.bind(this.log) : this.log.warn.bind(this.log);
    log({ reason }, "stopped leading");
    const drained = (async () => {
      try {
        await this.options.onStoppedLeading();
      } catch (err) {
        this.log.error({ err }, "onStoppedLeading failed");
      }
    })().finally(() => {
      if (this.draining === drained) this.draining = undefined;
    });
    this.draining = drained;
    await drained;
  }
}
