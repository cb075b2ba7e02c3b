// What panic mode keeps of a Service, and who it reads as the owner of publishNotReadyAddresses.
import { describe, expect, it } from "vitest";
import type { ManagedFieldsEntry } from "../../../src/api/k8s.ts";
import { PANIC_FIELD_MANAGER, publishOwners, slimService } from "../../../src/controller/panicServices.ts";

const entry = (
  manager: string,
  fields: Record<string, unknown>,
  extra: Partial<ManagedFieldsEntry> = {},
) => ({
  manager,
  operation: "Apply",
  fieldsV1: { "f:spec": fields },
  ...extra,
});
const service = (managedFields: ManagedFieldsEntry[], spec: Record<string, unknown> = {}) => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name: "web", namespace: "shop", uid: "u1", resourceVersion: "7", managedFields },
  spec: { selector: { app: "web" }, ports: [{ port: 80 }], clusterIP: "10.0.0.1", ...spec },
});

describe("publishOwners", () => {
  it.each([
    { name: "nobody owns it", entries: [entry("kubectl", { "f:ports": {} })], want: [] },
    {
      name: "healthgate while panicking",
      entries: [
        entry("kubectl", { "f:ports": {} }),
        entry(PANIC_FIELD_MANAGER, { "f:publishNotReadyAddresses": {} }),
      ],
      want: [PANIC_FIELD_MANAGER],
    },
    {
      name: "a GitOps tool that took it back",
      entries: [entry("argocd-controller", { "f:publishNotReadyAddresses": {}, "f:ports": {} })],
      want: ["argocd-controller"],
    },
    {
      name: "a status-subresource entry never counts",
      entries: [entry("x", { "f:publishNotReadyAddresses": {} }, { subresource: "status" })],
      want: [],
    },
  ])("$name", ({ entries, want }) => {
    expect(publishOwners(service(entries))).toEqual(want);
  });
});

describe("slimService", () => {
  it("keeps the selector, the flag and its owners; drops managedFields and the rest", () => {
    const slim = slimService(
      service([entry(PANIC_FIELD_MANAGER, { "f:publishNotReadyAddresses": {} })], {
        publishNotReadyAddresses: true,
      }),
    );
    expect(slim).toEqual({
      metadata: { name: "web", namespace: "shop", uid: "u1", resourceVersion: "7" },
      spec: { selector: { app: "web" }, publishNotReadyAddresses: true },
      publishOwners: [PANIC_FIELD_MANAGER],
    });
  });

  it("a false flag is kept as absent (as the API server serves it)", () => {
    expect(slimService(service([], { publishNotReadyAddresses: false })).spec).toEqual({
      selector: { app: "web" },
    });
  });
});
