// Which pod-template fields healthgate owns, as paths that can be compared: those it would
// apply now (from the owned spec) and those it owns on the live object (from the
// managedFields entry of its field manager). A path owned live but no longer wanted means the
// policy stopped asking for it; only an apply without it makes the server drop it (SSA drops
// what a manager stops sending), and that must work after a restart too, so the live side is
// read from the object rather than remembered.
import type { OwnedSpec } from "../seam.ts";
import { PROBE_FIELD } from "./defaults.ts";

const GRACE = "terminationGracePeriodSeconds";
const containerPath = (container: string, field: string) => `containers[${container}].${field}`;

/** The paths an apply of `owned` sets. */
export function ownedSpecPaths(owned: OwnedSpec): string[] {
  const paths: string[] = [];
  if (owned.terminationGracePeriodSeconds !== undefined) paths.push(GRACE);
  for (const fields of owned.containers) {
    for (const field of Object.values(PROBE_FIELD)) {
      if (fields[field] !== undefined) paths.push(containerPath(fields.name, field));
    }
    if (fields.lifecycle?.preStop !== undefined) paths.push(containerPath(fields.name, "lifecycle.preStop"));
  }
  return paths.sort();
}

type FieldSet = Record<string, unknown>;
const child = (set: unknown, key: string): FieldSet | undefined => {
  const value = (set as FieldSet | undefined)?.[key];
  return value !== null && typeof value === "object" ? (value as FieldSet) : undefined;
};

/**
 * The same paths read from a managedFields `fieldsV1` (e.g.
 * `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{"f:livenessProbe":{}}}}}}}`).
 * Only the fields healthgate ever applies count: owning a container's merge key (`f:name`) is
 * not owning anything in it.
 */
export function fieldsV1Paths(fieldsV1: unknown): string[] {
  const podSpec = child(child(child(fieldsV1, "f:spec"), "f:template"), "f:spec");
  if (!podSpec) return [];
  const paths: string[] = [];
  if (child(podSpec, `f:${GRACE}`)) paths.push(GRACE);
  for (const [key, fields] of Object.entries(child(podSpec, "f:containers") ?? {})) {
    const name = containerName(key);
    if (name === undefined) continue;
    for (const field of Object.values(PROBE_FIELD)) {
      if (child(fields, `f:${field}`)) paths.push(containerPath(name, field));
    }
    if (child(child(fields, "f:lifecycle"), "f:preStop"))
      paths.push(containerPath(name, "lifecycle.preStop"));
  }
  return paths.sort();
}

/** `k:{"name":"web"}` → `web`. */
function containerName(key: string): string | undefined {
  if (!key.startsWith("k:")) return undefined;
  try {
    const parsed = JSON.parse(key.slice(2)) as { name?: unknown };
    return typeof parsed.name === "string" ? parsed.name : undefined;
  } catch {
    return undefined;
  }
}

/** Paths healthgate owns on the live object that an apply of `owned` would no longer set. */
export function ownedPathsToDrop(owned: OwnedSpec, liveOwned: readonly string[]): string[] {
  const wanted = new Set(ownedSpecPaths(owned));
  return liveOwned.filter((path) => !wanted.has(path));
}
