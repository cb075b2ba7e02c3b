// What panic mode keeps of a Service in the cache (its selector, publishNotReadyAddresses and
// who owns that field), and how it reads ownership from managedFields.
import type { ManagedFieldsEntry, Service } from "../api/k8s.ts";
import type { KubeObject } from "../kube/client.ts";

/** The field manager of panic mode's writes: publishNotReadyAddresses and the record's status.panic. */
export const PANIC_FIELD_MANAGER = "healthgate-panic";

/** A cached Service: no managedFields, only who owns spec.publishNotReadyAddresses. */
export type CachedService = Service & {
  /** Field managers whose managedFields entry owns spec.publishNotReadyAddresses, in entry order. */
  readonly publishOwners: readonly string[];
};

const ownsPublish = (entry: ManagedFieldsEntry): boolean => {
  const spec = (entry.fieldsV1 as Record<string, unknown> | undefined)?.["f:spec"];
  return typeof spec === "object" && spec !== null && "f:publishNotReadyAddresses" in spec;
};

/** The managers that own spec.publishNotReadyAddresses (the status subresource's entries never do). */
export function publishOwners(obj: Pick<Service, "metadata">): string[] {
  return (obj.metadata.managedFields ?? [])
    .filter((m) => !m.subresource && ownsPublish(m))
    .map((m) => m.manager ?? "");
}

export function slimService(obj: KubeObject & Record<string, unknown>): CachedService {
  const svc = obj as unknown as Service;
  const m = svc.metadata;
  return {
    metadata: {
      name: m.name,
      ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
      ...(m.uid !== undefined ? { uid: m.uid } : {}),
      ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
    },
    spec: {
      ...(svc.spec?.selector ? { selector: svc.spec.selector } : {}),
      ...(svc.spec?.type ? { type: svc.spec.type } : {}),
      ...(svc.spec?.publishNotReadyAddresses ? { publishNotReadyAddresses: true } : {}),
    },
    publishOwners: publishOwners(svc),
  };
}
