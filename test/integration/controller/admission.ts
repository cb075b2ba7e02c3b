// What the Enforce-at-admission tests share: writing a HealthTarget record and its released
// decision as healthgate does — the decision into the namespace's HealthRelease, the index
// admission reads and the only place a released decision is kept (the test plane's admin user
// is the status writer the test admission objects admit, see installCrd) —, healthgate's
// release write, and readers.
import type { KubernetesObject, V1Container, V1Deployment, V1Probe } from "@kubernetes/client-node";
import {
  RELEASE_SHARD_LABEL,
  releaseIndexName,
  releaseShard,
  type Decision,
  type HealthReleaseStatus,
  type HealthTargetStatus,
} from "../../../src/api/v1alpha1/index.ts";
import { RELEASE_FIELD_MANAGER, STATUS_FIELD_MANAGER } from "../../../src/controller/world.ts";
import { RELEASED_LABEL } from "../../../src/policy/enforce.ts";
import { ignoreNotFound, testClients } from "../../support/kube.ts";
import { applyAs, kubectl } from "./support.ts";

const targets = { group: "healthgate.io", version: "v1alpha1", plural: "healthtargets" };
const releases = { group: "healthgate.io", version: "v1alpha1", plural: "healthreleases" };

export interface HealthTargetObject extends KubernetesObject {
  spec: { deployment: string; policy: string };
  status?: HealthTargetStatus;
}

/** Creates (or updates) the record of Deployment `name` and indexes `released` for it. */
export async function writeRecord(namespace: string, name: string, released: Decision | undefined) {
  const record = {
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthTarget",
    metadata: { name, namespace },
    spec: { deployment: name, policy: "test" },
  };
  await applyAs("healthgate", record, { force: true });
  await kubectl(
    [
      "apply",
      "--server-side",
      "--force-conflicts",
      `--field-manager=${STATUS_FIELD_MANAGER}`,
      "--subresource=status",
      "-f",
      "-",
    ],
    { stdin: JSON.stringify({ ...record, status: {} }) },
  );
  await indexDecision(namespace, name, released);
}

/** Adds (or, with no decision, removes) Deployment `name`'s entry in its shard's HealthRelease. */
async function indexDecision(namespace: string, name: string, released: Decision | undefined) {
  const index = {
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthRelease",
    metadata: { name: releaseIndexName(releaseShard(name)), namespace },
  };
  await applyAs("healthgate", index, { force: true });
  const status = released
    ? { deployments: { [name]: released.revision }, decisions: { [released.revision]: released } }
    : { deployments: { [name]: null } };
  await kubectl([
    "patch",
    "healthrelease",
    index.metadata.name,
    "-n",
    namespace,
    "--subresource=status",
    "--type=merge",
    `--field-manager=${STATUS_FIELD_MANAGER}`,
    "-p",
    JSON.stringify({ status }),
  ]);
}

/** Deletes the record of Deployment `name` and its entry in the namespace's HealthRelease. */
export async function deleteRecord(namespace: string, name: string) {
  await ignoreNotFound(testClients().custom.deleteNamespacedCustomObject({ ...targets, namespace, name }));
  await indexDecision(namespace, name, undefined);
}

export async function readRecord(namespace: string, name: string): Promise<HealthTargetObject> {
  return (await testClients().custom.getNamespacedCustomObject({
    ...targets,
    namespace,
    name,
  })) as HealthTargetObject;
}

/** Every Deployment the namespace's HealthReleases (all shards) name, with its revision. */
export async function indexedDeployments(namespace: string): Promise<Record<string, string>> {
  const list = (await testClients().custom.listNamespacedCustomObject({ ...releases, namespace })) as {
    items: { status?: HealthReleaseStatus }[];
  };
  return Object.assign({}, ...list.items.map((i) => i.status?.deployments ?? {})) as Record<string, string>;
}

/** The decision the namespace's index (Deployment `name`'s shard) names for it, if any. */
export async function readReleased(namespace: string, name: string): Promise<Decision | undefined> {
  const index = (await ignoreNotFound(
    testClients().custom.getNamespacedCustomObject({
      ...releases,
      namespace,
      name: releaseIndexName(releaseShard(name)),
    }),
  )) as { status?: HealthReleaseStatus } | undefined;
  const revision = index?.status?.deployments?.[name];
  return revision === undefined ? undefined : (index?.status?.decisions?.[revision] as Decision | undefined);
}

export async function deleteReleaseIndexes(namespace: string) {
  await testClients().custom.deleteCollectionNamespacedCustomObject({ ...releases, namespace });
}

/** healthgate's release write: the label alone, under its own field manager. */
export async function releaseWrite(namespace: string, name: string, revision: string) {
  await applyAs(
    RELEASE_FIELD_MANAGER,
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: {
        name,
        namespace,
        labels: { [RELEASED_LABEL]: revision, [RELEASE_SHARD_LABEL]: releaseShard(name) },
      },
    },
    { force: true },
  );
}

export const HANDLERS = {
  exec: { exec: { command: ["pg_isready", "-h", "127.0.0.1"] } },
  httpGet: { httpGet: { path: "/healthz", port: "http", scheme: "HTTP" } },
  tcpSocket: { tcpSocket: { port: "http" } },
  grpc: { grpc: { port: 8080 } },
} as const satisfies Record<string, V1Probe>;
export type HandlerKind = keyof typeof HANDLERS;

/** The handler kinds a probe carries (one when valid). */
export const handlerKinds = (probe: V1Probe | undefined): string[] =>
  Object.keys(HANDLERS).filter((k) => probe?.[k as HandlerKind] !== undefined);

export const containerNamed = (d: V1Deployment, name: string): V1Container | undefined =>
  d.spec?.template.spec?.containers.find((c) => c.name === name);

/** Managers owning anything under a container's probes or lifecycle, from managedFields. */
export function probeOwners(d: V1Deployment, container: string): string[] {
  return (d.metadata?.managedFields ?? [])
    .filter((m) => {
      const fields = m.fieldsV1 as Record<string, Record<string, Record<string, Record<string, object>>>>;
      const c = (
        fields?.["f:spec"]?.["f:template"]?.["f:spec"]?.["f:containers"] as Record<string, object>
      )?.[`k:{"name":"${container}"}`];
      return (
        c && ["f:livenessProbe", "f:readinessProbe", "f:startupProbe", "f:lifecycle"].some((k) => k in c)
      );
    })
    .map((m) => m.manager ?? "");
}
