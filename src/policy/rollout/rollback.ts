// onFailure Rollback, the pure parts of the restore (docs/rollouts.md, "Rollback"): the template
// to write back (the stable ReplicaSet's, minus its pod-template-hash label, as `kubectl rollout
// undo` does), what admission would change in it, healthgate's managedFields entries to rewrite
// so that no healthgate manager owns a template field afterwards, and who wrote a template.
import { POD_TEMPLATE_HASH } from "./revisions.ts";

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  time?: string;
  fieldsV1?: Record<string, unknown>;
}

type JsonPatchOp = { op: "test" | "remove" | "replace"; path: string; value?: unknown };

/** Whether a field manager is one of healthgate's (healthgate, healthgate-*). */
export const isHealthgateManager = (manager: string | undefined) =>
  manager === "healthgate" || (manager ?? "").startsWith("healthgate-");

/** The stable ReplicaSet's pod template as the Deployment's: without the pod-template-hash label. */
export function restoredTemplate<T extends { metadata?: { labels?: Record<string, string> } }>(
  template: T,
): T {
  const labels = { ...template.metadata?.labels };
  delete labels[POD_TEMPLATE_HASH];
  const { labels: _labels, ...metadata } = template.metadata ?? {};
  return {
    ...template,
    metadata: { ...metadata, ...(Object.keys(labels).length > 0 ? { labels } : {}) },
  };
}

/** JSON paths (/a/b/0) where `have` differs from `want`: what admission changed in a restored template. */
export function differences(want: unknown, have: unknown, path = ""): string[] {
  if (want === have) return [];
  if (typeof want !== "object" || typeof have !== "object" || want === null || have === null)
    return [path || "/"];
  if (Array.isArray(want) !== Array.isArray(have)) return [path || "/"];
  const keys = new Set([...Object.keys(want), ...Object.keys(have)]);
  const out: string[] = [];
  for (const key of [...keys].sort()) {
    out.push(
      ...differences(
        (want as Record<string, unknown>)[key],
        (have as Record<string, unknown>)[key],
        `${path}/${key}`,
      ),
    );
  }
  return out;
}

const isEmpty = (v: unknown) => typeof v === "object" && v !== null && Object.keys(v).length === 0;

/**
 * JSON patch operations that leave no healthgate field manager owning any field under
 * spec.template: each such entry loses its f:spec/f:template subtree (the whole entry when
 * nothing else is left). Guarded by "test" on each entry's manager, so a list that moved on fails
 * the patch instead of rewriting another manager's entry. Empty: nothing to rewrite.
 */
export function disownTemplateOps(entries: readonly ManagedFieldsEntry[]): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as ManagedFieldsEntry;
    const spec = entry.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined;
    if (!isHealthgateManager(entry.manager) || !spec || !("f:template" in spec)) continue;
    const { "f:template": _template, ...restSpec } = spec;
    const { "f:spec": _spec, ...restFields } = entry.fieldsV1 ?? {};
    const fieldsV1 = isEmpty(restSpec) ? restFields : { ...restFields, "f:spec": restSpec };
    const at = `/metadata/managedFields/${i}`;
    ops.push({ op: "test", path: `${at}/manager`, value: entry.manager });
    if (isEmpty(fieldsV1)) ops.push({ op: "remove", path: at });
    else ops.push({ op: "replace", path: `${at}/fieldsV1`, value: fieldsV1 });
  }
  return ops;
}

/** Healthgate's managers that own a field under spec.template (none once disowned). */
export function healthgateTemplateOwners(entries: readonly ManagedFieldsEntry[]): string[] {
  return entries
    .filter((e) => isHealthgateManager(e.manager))
    .filter((e) => {
      const spec = e.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined;
      return spec !== undefined && "f:template" in spec;
    })
    .map((e) => e.manager ?? "");
}

/**
 * The field manager that last wrote the template: of the entries (not healthgate's, not a
 * subresource's) that own a field under spec.template, the one with the latest time.
 */
export function templateWriter(entries: readonly ManagedFieldsEntry[]): string | undefined {
  const writers = entries.filter((e) => {
    const spec = e.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined;
    return !isHealthgateManager(e.manager) && !e.subresource && spec !== undefined && "f:template" in spec;
  });
  const latest = [...writers].sort((a, b) => Date.parse(b.time ?? "") - Date.parse(a.time ?? ""))[0];
  return latest?.manager;
}
