// A cache of one resource that stays right when the watch does not. client-node's makeInformer
// stops for good on any error other than 410 and never notices a watch that went quiet, so:
//   paged list → watch from its resourceVersion (with bookmarks) → on 410 relist and diff;
//   on errors or early closes re-watch after full-jitter backoff (Retry-After wins);
//   a watchdog relists-and-diffs when a watch shows no life for longer than a bound;
//   an optional periodic resync does the same. Changes a watchdog or resync relist finds are
//   events the watch lost: they are counted (healthgate_watch_silent_changes_total).
import type { Logger } from "../observability/logger.ts";
import type { HealthgateMetrics, RelistReason } from "../observability/metrics.ts";
import { fullJitterDelay, type BackoffPolicy } from "./backoff.ts";
import { sleep, systemClock, type Clock, type TimerHandle } from "./clock.ts";
import {
  apiErrorMessage,
  isGone,
  retryAfterMs,
  type KubeClient,
  type KubeObject,
  type RawObject,
  type ResourceRef,
  type WatchEvent,
} from "./client.ts";
import { objectKey } from "./keys.ts";

/** The part of KubeClient an informer uses. */
export type ListWatchClient = Pick<KubeClient, "list" | "watch">;

export type Indexer<T> = (obj: T) => readonly string[];

/** Handlers receive deeply frozen objects: the cache's own, shared, never to be mutated. */
export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(old: T, obj: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions<T extends KubeObject> {
  client: ListWatchClient;
  resource: ResourceRef;
  /** Omit to watch every namespace. */
  namespace?: string | undefined;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  /**
   * Shrinks an object to what its readers use before it is cached; memory is the reason this
   * informer exists. Keep metadata.name, namespace, uid and resourceVersion. managedFields are
   * still there for the transform to summarise, and removed from whatever it returns.
   */
  transform?: (obj: RawObject) => T;
  indexers?: Record<string, Indexer<T>>;
  /**
   * Which objects (after the transform) the cache holds; the others are never stored and never
   * reach the handlers (one that stops being kept is deleted). When more objects may be wanted
   * than before, call refilter(); when fewer, prune().
   */
  keep?: (obj: T) => boolean;
  /** Objects per list page. */
  pageSize?: number;
  /** Relist-and-diff when a watch has shown no life (event or bookmark) for this long. */
  watchdogMs?: number;
  /** Periodic relist-and-diff; 0 turns it off. */
  resyncMs?: number;
  backoff?: BackoffPolicy;
  metrics: HealthgateMetrics;
  logger: Logger;
  clock?: Clock;
  random?: () => number;
}

export type Change<T> =
  { type: "add"; obj: T } | { type: "update"; old: T; obj: T } | { type: "delete"; obj: T };

/**
 * What changed between the cache and a fresh list. A key whose uid changed was deleted and
 * recreated while nobody watched: that is a delete and an add, never an update, so handlers
 * never see one object turn into another.
 */
export function diffRelist<T extends KubeObject>(
  cached: ReadonlyMap<string, T>,
  listed: ReadonlyMap<string, T>,
): Change<T>[] {
  const changes: Change<T>[] = [];
  for (const [key, old] of cached) {
    if (!listed.has(key)) changes.push({ type: "delete", obj: old });
  }
  for (const [key, obj] of listed) {
    const old = cached.get(key);
    if (!old) changes.push({ type: "add", obj });
    else if (old.metadata.uid !== obj.metadata.uid)
      changes.push({ type: "delete", obj: old }, { type: "add", obj });
    else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion)
      changes.push({ type: "update", old, obj });
  }
  return changes;
}

/** Index by the uid of the controlling owner of `kind`: pods by ReplicaSet, ReplicaSets by Deployment. */
export function controllerUidIndexer(kind: string): Indexer<KubeObject> {
  return (obj) =>
    (obj.metadata.ownerReferences ?? [])
      .filter((ref) => ref.controller && ref.kind === kind)
      .map((ref) => ref.uid);
}

/** Index by a label's value, as `namespace/value` since selectors never cross namespaces. */
export function labelIndexer(label: string): Indexer<KubeObject> {
  return (obj) => {
    const value = obj.metadata.labels?.[label];
    return value === undefined ? [] : [`${obj.metadata.namespace ?? ""}/${value}`];
  };
}

/** Why the informer itself cut a watch short. */
class Interruption {
  readonly reason: "watchdog" | "resync" | "filter";
  constructor(reason: "watchdog" | "resync" | "filter") {
    this.reason = reason;
  }
}

interface Index<T> {
  indexer: Indexer<T>;
  keysByValue: Map<string, Set<string>>;
}

export class Informer<T extends KubeObject = KubeObject> {
  private readonly options: InformerOptions<T>;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly transform: (obj: RawObject) => T;
  private readonly watchdogMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly log: Logger;
  private readonly store = new Map<string, T>();
  private readonly indexes = new Map<string, Index<T>>();
  private readonly handlers = new Set<InformerHandlers<T>>();
  private readonly synced = Promise.withResolvers<void>();
  private readonly stopping = new AbortController();
  private hasSyncedOnce = false;
  private changes = 0;
  private resourceVersion = "";
  private lastActivityAt = 0;
  /** Consecutive failures; reset by any sign of a healthy watch. */
  private failures = 0;
  /** The attempt whose watch is open, if one is: what a resync interrupts. */
  private openWatch: AbortController | undefined;
  private running: Promise<void> | undefined;
  private resyncTimer: TimerHandle | undefined;
  private untrackActivity: (() => void) | undefined;

  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.transform = options.transform ?? ((obj) => obj as unknown as T);
    this.watchdogMs = options.watchdogMs ?? 300_000;
    this.backoff = options.backoff ?? { baseMs: 1_000, capMs: 30_000 };
    this.log = options.logger.child({ resource: options.resource.plural, namespace: options.namespace });
    for (const [name, indexer] of Object.entries(options.indexers ?? {})) {
      this.indexes.set(name, { indexer, keysByValue: new Map() });
    }
  }

  start(): void {
    if (this.running) throw new Error(`informer for ${this.options.resource.plural} already started`);
    this.lastActivityAt = this.clock.now();
    this.untrackActivity = this.options.metrics.trackWatchActivity(
      this.options.resource.plural,
      () => (this.clock.now() - this.lastActivityAt) / 1000,
    );
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.clock.clearTimeout(this.resyncTimer);
    await this.running;
    this.untrackActivity?.();
  }

  hasSynced(): boolean {
    return this.hasSyncedOnce;
  }

  /** Resolves once the first list is in the cache and its add events were delivered. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (!signal) return this.synced.promise;
    const aborted = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    return Promise.race([this.synced.promise, aborted]);
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  /** Moves with every change the cache applies: what is derived from the cache is as old as this. */
  get version(): number {
    return this.changes;
  }

  byIndex(indexName: string, value: string): T[] {
    const index = this.indexes.get(indexName);
    if (!index) throw new Error(`informer for ${this.options.resource.plural} has no index "${indexName}"`);
    const keys = index.keysByValue.get(value) ?? [];
    return [...keys].map((key) => this.store.get(key)).filter((obj) => obj !== undefined);
  }

  /**
   * `keep` may now accept objects it refused before: relist (the watch is cut short) so they
   * are cached. Calls while a relist is pending add nothing.
   */
  refilter(): void {
    if (this.openWatch && !this.openWatch.signal.aborted) this.openWatch.abort(new Interruption("filter"));
  }

  /** `keep` may now refuse objects it accepted before: drop them (as deletes), without a request. */
  prune(): void {
    const keep = this.options.keep;
    if (!keep) return;
    for (const obj of [...this.store.values()]) if (!keep(obj)) this.apply({ type: "delete", obj });
  }

  /** Returns a function that removes the handlers again. */
  addHandlers(handlers: InformerHandlers<T>): () => void {
    this.handlers.add(handlers);
    return () => this.handlers.delete(handlers);
  }

  private async run(): Promise<void> {
    const stopped = this.stopping.signal;
    let relist: RelistReason | undefined = "initial";
    while (!stopped.aborted) {
      const attempt = new AbortController();
      const signal = AbortSignal.any([stopped, attempt.signal]);
      try {
        if (relist) {
          await this.relist(relist, signal);
          relist = undefined;
        }
        await this.watch(attempt, signal);
      } catch (err) {
        if (stopped.aborted) break;
        if (attempt.signal.reason instanceof Interruption) {
          relist = attempt.signal.reason.reason;
          continue;
        }
        const wasWatching = relist === undefined;
        if (isGone(err)) relist = "gone";
        else if (!wasWatching) relist = "error";
        if (wasWatching) this.options.metrics.watchRestarts.inc({ resource: this.options.resource.plural });
        // A first 410 is routine (the watch fell behind compaction): relist at once.
        const delayMs =
          retryAfterMs(err, this.clock.now()) ??
          (isGone(err) && this.failures === 0
            ? 0
            : fullJitterDelay(this.failures, this.backoff, this.random));
        this.failures++;
        this.log.warn(
          { reason: relist ?? "WatchFailed", err: apiErrorMessage(err), delayMs, failures: this.failures },
          wasWatching ? "watch failed; restarting" : "list failed; retrying",
        );
        if (delayMs > 0) {
          try {
            await sleep(this.clock, delayMs, stopped);
          } catch {
            break;
          }
        }
      }
    }
  }

  private async relist(reason: RelistReason, signal: AbortSignal): Promise<void> {
    const { client, resource, namespace, labelSelector, fieldSelector, metrics } = this.options;
    metrics.watchRelists.inc({ resource: resource.plural, reason });
    this.log.debug({ reason }, "relisting");
    const listed = new Map<string, T>();
    let continueToken: string | undefined;
    let resourceVersion: string;
    do {
      const page = await client.list(
        resource,
        namespace,
        { limit: this.options.pageSize ?? 500, continue: continueToken, labelSelector, fieldSelector },
        signal,
      );
      for (const item of page.items) {
        const obj = this.prepare(item);
        if (this.kept(obj)) listed.set(objectKey(obj), obj);
      }
      continueToken = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (continueToken);

    const changes = diffRelist(this.store, listed);
    for (const change of changes) this.apply(change);
    this.resourceVersion = resourceVersion;
    // A list that went through is as good a sign of health as a watch event: the next failure
    // backs off from the start again, not from where a run of failed lists left it. Not after a
    // 410 relist: a watch that keeps answering 410 at once must still back off (a first 410
    // relists without delay, so resetting here would relist in a tight loop).
    if (reason !== "gone") this.failures = 0;
    if ((reason === "watchdog" || reason === "resync") && changes.length > 0) {
      metrics.watchSilentChanges.inc({ resource: resource.plural }, changes.length);
      this.log.warn({ reason, changes: changes.length }, "relist found changes the watch never delivered");
    } else {
      this.log.debug({ reason, objects: listed.size, changes: changes.length }, "relisted");
    }
    if (!this.hasSyncedOnce) {
      this.hasSyncedOnce = true;
      this.synced.resolve();
    }
    this.scheduleResync();
  }

  /** Returns when the server ends the watch at its timeout; throws on anything else. */
  private async watch(attempt: AbortController, signal: AbortSignal): Promise<void> {
    const { client, resource, namespace, labelSelector, fieldSelector } = this.options;
    // Ask the server to end the watch before the watchdog's bound, so a healthy but quiet watch
    // (older API servers send bookmarks only near the end) never looks dead.
    const timeoutSeconds = Math.max(
      1,
      Math.min(600, Math.floor((this.watchdogMs / 1000) * (0.5 + 0.4 * this.random()))),
    );
    const startedAt = this.clock.now();
    this.lastActivityAt = startedAt;
    this.openWatch = attempt;
    const watchdog = this.armWatchdog(attempt);
    try {
      await client.watch(
        resource,
        namespace,
        {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          labelSelector,
          fieldSelector,
        },
        (event) => this.onEvent(event),
        signal,
      );
    } finally {
      this.openWatch = undefined;
      watchdog.disarm();
    }
    // Closing well before the timeout we asked for is a failure (a proxy or an API server
    // going away); treating it as one puts the backoff between restarts.
    const openMs = this.clock.now() - startedAt;
    if (openMs < timeoutSeconds * 1000 * 0.9) {
      throw new Error(
        `watch closed by the server after ${openMs} ms, before its ${timeoutSeconds} s timeout`,
      );
    }
  }

  private armWatchdog(attempt: AbortController): { disarm(): void } {
    let timer: TimerHandle;
    const check = (): void => {
      const silentMs = this.clock.now() - this.lastActivityAt;
      if (silentMs < this.watchdogMs) {
        timer = this.clock.setTimeout(check, this.watchdogMs - silentMs);
        return;
      }
      this.log.warn({ reason: "WatchSilent", silentMs }, "watch silent past the watchdog bound; relisting");
      attempt.abort(new Interruption("watchdog"));
    };
    timer = this.clock.setTimeout(check, this.watchdogMs);
    return { disarm: () => this.clock.clearTimeout(timer) };
  }

  private scheduleResync(): void {
    const resyncMs = this.options.resyncMs ?? 0;
    if (resyncMs <= 0 || this.stopping.signal.aborted) return;
    this.clock.clearTimeout(this.resyncTimer);
    this.resyncTimer = this.clock.setTimeout(() => {
      // Only an open watch can be silently dead; while listing or backing off, look again later.
      if (this.openWatch) this.openWatch.abort(new Interruption("resync"));
      else this.scheduleResync();
    }, resyncMs);
  }

  private onEvent(event: WatchEvent): void {
    this.lastActivityAt = this.clock.now();
    this.failures = 0;
    if (event.type !== "BOOKMARK") {
      const obj = this.prepare(event.object);
      const old = this.store.get(objectKey(obj));
      if (event.type === "DELETED" || !this.kept(obj)) {
        if (old) this.apply({ type: "delete", obj });
      } else this.apply(old ? { type: "update", old, obj } : { type: "add", obj });
    }
    this.resourceVersion = event.object.metadata.resourceVersion ?? this.resourceVersion;
  }

  private kept(obj: T): boolean {
    return this.options.keep ? this.options.keep(obj) : true;
  }

  private prepare(raw: RawObject): T {
    // The transform may read managedFields (to keep a summary); the cache never holds them.
    const obj = this.transform(raw);
    delete (obj.metadata as { managedFields?: unknown }).managedFields;
    return deepFreeze(obj);
  }

  private apply(change: Change<T>): void {
    const key = objectKey(change.obj);
    const old = this.store.get(key);
    this.changes++;
    if (change.type === "delete") this.store.delete(key);
    else this.store.set(key, change.obj);
    this.reindex(key, old, change.type === "delete" ? undefined : change.obj);
    for (const handlers of this.handlers) {
      try {
        if (change.type === "add") handlers.add?.(change.obj);
        else if (change.type === "update") handlers.update?.(change.old, change.obj);
        else handlers.delete?.(change.obj);
      } catch (err) {
        this.log.error({ err, key }, "informer event handler threw");
      }
    }
  }

  private reindex(key: string, old: T | undefined, obj: T | undefined): void {
    for (const { indexer, keysByValue } of this.indexes.values()) {
      for (const value of old ? indexer(old) : []) {
        const keys = keysByValue.get(value);
        keys?.delete(key);
        if (keys?.size === 0) keysByValue.delete(value);
      }
      for (const value of obj ? indexer(obj) : []) {
        const keys = keysByValue.get(value) ?? new Set<string>();
        keys.add(key);
        keysByValue.set(value, keys);
      }
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
