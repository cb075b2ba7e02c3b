// The namespace's HealthReleases (src/api/v1alpha1/healthrelease.ts): the index of released
// Enforce decisions that the MutatingAdmissionPolicy takes as its parameter, one per shard of
// Deployment names. Each
// Deployment's release adds or replaces its own entry with a JSON merge patch of that key alone
// (no read-modify-write, so concurrent releases in one namespace never conflict); leaving
// Enforce removes it. Before each write, decisions no entry names and entries of Deployments
// that are gone are pruned by a patch conditional on the cached resourceVersion: a release that
// landed in between makes it fail (409, pruned next time) instead of losing that decision.
// A release may carry other Deployments' entries of the same shard (a policy edit with pacing
// off, decided as their own reconciles would): one patch for the shard instead of one each, and
// written well before their release writes, so admission's cache has them by then.
import type { Decision } from "../api/v1alpha1/index.ts";
import { RELEASE_INDEX_KIND, releaseIndexName, releaseShard } from "../api/v1alpha1/index.ts";
import { isConflict, isNotFound, resources } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import type { TermClient } from "./reconciler.ts";
import { FIELD_MANAGER, STATUS_FIELD_MANAGER, type World } from "./world.ts";

const API_VERSION = `${resources.healthReleases.group}/${resources.healthReleases.version}`;
/** The HealthRelease that indexes Deployment `deployment` (its shard's). */
export const indexNameOf = (deployment: string) => releaseIndexName(releaseShard(deployment));
const ref = (namespace: string, name: string) => ({
  apiVersion: API_VERSION,
  kind: RELEASE_INDEX_KIND,
  namespace,
  name,
});

/** How long an entry this process wrote counts as there while the cache does not show it yet. */
const WRITE_ECHO_MS = 5_000;

export class ReleaseIndex {
  private readonly o: {
    world: Pick<World, "releaseIndexes" | "deployments">;
    client: TermClient;
    clock: Clock;
  };
  /**
   * Entries this process wrote (namespace/Deployment → decision, or undefined once withdrawn;
   * when), until the cache shows them: a Deployment whose entry came with another's release does
   * not write it again, and released() follows the newest write.
   */
  private readonly written = new Map<string, { decision: Decision | undefined; atMs: number }>();

  constructor(options: {
    world: Pick<World, "releaseIndexes" | "deployments">;
    client: TermClient;
    clock: Clock;
  }) {
    this.o = options;
  }

  private cached(namespace: string, index: string) {
    return this.o.world.releaseIndexes.get(`${namespace}/${index}`);
  }

  /** Whether the namespace's index names `decision` for Deployment `name` (see released()). */
  carries(namespace: string, name: string, decision: Decision): boolean {
    return this.released(namespace, name)?.revision === decision.revision;
  }

  /**
   * The decision released for Deployment `name`: the one this process wrote (or withdrew) while
   * the cache does not show that write yet, else the one the cached index names. The index is
   * where a released decision is kept (the record holds none): admission applies it, and the
   * reconciler reads what it released before (pacing, holds, a policy edit) from it.
   */
  released(namespace: string, name: string): Decision | undefined {
    const key = `${namespace}/${name}`;
    const status = this.cached(namespace, indexNameOf(name))?.status;
    const revision = status?.deployments?.[name];
    const cached =
      revision !== undefined ? (status?.decisions?.[revision] as Decision | undefined) : undefined;
    const written = this.written.get(key);
    if (written) {
      const shown = written.decision?.revision === cached?.revision;
      if (!shown && this.o.clock.now() - written.atMs < WRITE_ECHO_MS) return written.decision;
      this.written.delete(key);
    }
    return cached;
  }

  /**
   * Makes the index name `decision` for Deployment `name`, and `others` for theirs (Deployments of
   * the same shard; those it names already are left out); creates the shard's HealthRelease when
   * missing.
   */
  async publish(
    namespace: string,
    name: string,
    decision: Decision,
    signal: AbortSignal,
    others: ReadonlyMap<string, Decision> = new Map(),
  ): Promise<boolean> {
    if (this.carries(namespace, name, decision)) return false;
    const index = indexNameOf(name);
    const entries = new Map([[name, decision]]);
    for (const [other, d] of others) {
      if (indexNameOf(other) === index && !this.carries(namespace, other, d)) entries.set(other, d);
    }
    await this.prune(namespace, index, signal);
    if (!this.cached(namespace, index)) {
      await this.o.client.applyObject(
        { apiVersion: API_VERSION, kind: RELEASE_INDEX_KIND, metadata: { name: index, namespace } },
        { fieldManager: FIELD_MANAGER, force: true, signal },
      );
    }
    const deployments: Record<string, string> = {};
    const decisions: Record<string, Decision> = {};
    for (const [n, d] of entries) {
      deployments[n] = d.revision;
      decisions[d.revision] = d;
    }
    await this.o.client.mergePatchStatus(
      ref(namespace, index),
      { deployments, decisions },
      { fieldManager: STATUS_FIELD_MANAGER, signal },
    );
    const atMs = this.o.clock.now();
    for (const [n, d] of entries) this.written.set(`${namespace}/${n}`, { decision: d, atMs });
    return true;
  }

  /** Removes Deployment `name`'s entry: admission then has nothing to apply to it. */
  async withdraw(namespace: string, name: string, signal: AbortSignal): Promise<void> {
    this.written.delete(`${namespace}/${name}`);
    const index = indexNameOf(name);
    const status = this.cached(namespace, index)?.status;
    if (status?.deployments?.[name] === undefined) return;
    await this.prune(namespace, index, signal);
    try {
      await this.o.client.mergePatchStatus(
        ref(namespace, index),
        { deployments: { [name]: null } },
        { fieldManager: STATUS_FIELD_MANAGER, signal },
      );
      this.written.set(`${namespace}/${name}`, { decision: undefined, atMs: this.o.clock.now() });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Drops entries of Deployments gone from the cache and decisions no entry names. */
  private async prune(namespace: string, name: string, signal: AbortSignal): Promise<void> {
    const index = this.cached(namespace, name);
    const status = index?.status;
    if (!index || !status) return;
    const entries = Object.entries(status.deployments ?? {});
    const gone = entries
      .filter(([name]) => {
        const d = this.o.world.deployments.get(`${namespace}/${name}`);
        return !d || d.metadata.deletionTimestamp;
      })
      .map(([name]) => name);
    const named = new Set(entries.filter(([name]) => !gone.includes(name)).map(([, revision]) => revision));
    const unnamed = Object.keys(status.decisions ?? {}).filter((revision) => !named.has(revision));
    if (gone.length === 0 && unnamed.length === 0) return;
    const nulls = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, null]));
    try {
      await this.o.client.mergePatchStatus(
        ref(namespace, name),
        {
          ...(gone.length > 0 ? { deployments: nulls(gone) } : {}),
          ...(unnamed.length > 0 ? { decisions: nulls(unnamed) } : {}),
        },
        {
          fieldManager: STATUS_FIELD_MANAGER,
          signal,
          ...(index.metadata.resourceVersion ? { resourceVersion: index.metadata.resourceVersion } : {}),
        },
      );
    } catch (err) {
      // Someone wrote the index after the cached version (the next reconcile prunes), or it is gone.
      if (!isConflict(err) && !isNotFound(err)) throw err;
    }
  }
}
