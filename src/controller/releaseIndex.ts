// The namespace's HealthRelease (src/api/v1alpha1/healthrelease.ts): the index of released
// Enforce decisions that the MutatingAdmissionPolicy takes as its one parameter. Each
// Deployment's release adds or replaces its own entry with a JSON merge patch of that key alone
// (no read-modify-write, so concurrent releases in one namespace never conflict); leaving
// Enforce removes it. Before each write, decisions no entry names and entries of Deployments
// that are gone are pruned by a patch conditional on the cached resourceVersion: a release that
// landed in between makes it fail (409, pruned next time) instead of losing that decision.
import type { Decision } from "../api/v1alpha1/index.ts";
import { RELEASE_INDEX_KIND, RELEASE_INDEX_NAME } from "../api/v1alpha1/index.ts";
import { isConflict, isNotFound, resources } from "../kube/client.ts";
import type { TermClient } from "./reconciler.ts";
import { FIELD_MANAGER, STATUS_FIELD_MANAGER, type World } from "./world.ts";

const API_VERSION = `${resources.healthReleases.group}/${resources.healthReleases.version}`;
const ref = (namespace: string) => ({
  apiVersion: API_VERSION,
  kind: RELEASE_INDEX_KIND,
  namespace,
  name: RELEASE_INDEX_NAME,
});

export class ReleaseIndex {
  private readonly o: { world: Pick<World, "releaseIndexes" | "deployments">; client: TermClient };

  constructor(options: { world: Pick<World, "releaseIndexes" | "deployments">; client: TermClient }) {
    this.o = options;
  }

  private cached(namespace: string) {
    return this.o.world.releaseIndexes.get(`${namespace}/${RELEASE_INDEX_NAME}`);
  }

  /** Whether the namespace's index names `decision` for Deployment `name` (in the cache). */
  carries(namespace: string, name: string, decision: Decision): boolean {
    const status = this.cached(namespace)?.status;
    return (
      status?.deployments?.[name] === decision.revision && status.decisions?.[decision.revision] !== undefined
    );
  }

  /** Makes the index name `decision` for Deployment `name`; creates the index when the namespace has none. */
  async publish(namespace: string, name: string, decision: Decision, signal: AbortSignal): Promise<boolean> {
    if (this.carries(namespace, name, decision)) return false;
    await this.prune(namespace, signal);
    if (!this.cached(namespace)) {
      await this.o.client.applyObject(
        {
          apiVersion: API_VERSION,
          kind: RELEASE_INDEX_KIND,
          metadata: { name: RELEASE_INDEX_NAME, namespace },
        },
        { fieldManager: FIELD_MANAGER, force: true, signal },
      );
    }
    await this.o.client.mergePatchStatus(
      ref(namespace),
      { deployments: { [name]: decision.revision }, decisions: { [decision.revision]: decision } },
      { fieldManager: STATUS_FIELD_MANAGER, signal },
    );
    return true;
  }

  /** Removes Deployment `name`'s entry: admission then has nothing to apply to it. */
  async withdraw(namespace: string, name: string, signal: AbortSignal): Promise<void> {
    const status = this.cached(namespace)?.status;
    if (status?.deployments?.[name] === undefined) return;
    await this.prune(namespace, signal);
    try {
      await this.o.client.mergePatchStatus(
        ref(namespace),
        { deployments: { [name]: null } },
        { fieldManager: STATUS_FIELD_MANAGER, signal },
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Drops entries of Deployments gone from the cache and decisions no entry names. */
  private async prune(namespace: string, signal: AbortSignal): Promise<void> {
    const index = this.cached(namespace);
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
        ref(namespace),
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
