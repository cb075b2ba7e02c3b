// How server-side apply gives a Service's publishNotReadyAddresses back, measured on the real
// API server: what panic mode's restore relies on (docs/panic.md). healthgate takes the field
// with a forced apply under its own field manager while panicking; to leave, it applies again
// without the field, which drops its ownership — and, when no other manager owns the field,
// removes it, which for this boolean is the user's original `false` (absent).
import { describe, expect, it } from "vitest";
import type { V1Service } from "@kubernetes/client-node";
import { makeService, withPublishNotReadyAddresses } from "../../support/builders.ts";
import { testClients, useTestNamespace } from "../../support/kube.ts";
import { applyAs } from "../controller/support.ts";

const PANIC_MANAGER = "healthgate-panic";

const owners = (svc: V1Service) =>
  (svc.metadata?.managedFields ?? [])
    .filter((m) => JSON.stringify(m.fieldsV1 ?? {}).includes('"f:publishNotReadyAddresses"'))
    .map((m) => m.manager);

describe("server-side apply of publishNotReadyAddresses (measured)", () => {
  const ns = useTestNamespace();
  const takeAndRelease = async (name: string) => {
    const ref = { apiVersion: "v1", kind: "Service", metadata: { name, namespace: ns.name } };
    const taken = await applyAs(
      PANIC_MANAGER,
      { ...ref, spec: { publishNotReadyAddresses: true } } as V1Service,
      {
        force: true,
      },
    );
    expect(taken.spec?.publishNotReadyAddresses).toBe(true);
    expect(owners(taken)).toEqual([PANIC_MANAGER]);
    return applyAs(PANIC_MANAGER, ref as V1Service, { force: true });
  };

  it("releasing the field gives back a value nobody owned (created by a plain create)", async () => {
    await testClients().core.createNamespacedService({ namespace: ns.name, body: makeService("plain") });
    const released = await takeAndRelease("plain");
    expect(released.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(released)).toEqual([]);
  });

  it("releasing the field gives back an explicit false another applier owned (it lost the field to force)", async () => {
    await applyAs("gitops", {
      ...makeService("gitops"),
      metadata: { name: "gitops", namespace: ns.name },
    } as V1Service);
    await applyAs(
      "gitops",
      {
        ...makeService("gitops", withPublishNotReadyAddresses(false)),
        metadata: { name: "gitops", namespace: ns.name },
      },
      { force: true },
    );
    const released = await takeAndRelease("gitops");
    expect(released.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(released)).toEqual([]);
  });

  it("a forced re-apply of false by another manager takes the field: healthgate no longer owns it", async () => {
    await testClients().core.createNamespacedService({ namespace: ns.name, body: makeService("taken") });
    const ref = { apiVersion: "v1", kind: "Service", metadata: { name: "taken", namespace: ns.name } };
    await applyAs(PANIC_MANAGER, { ...ref, spec: { publishNotReadyAddresses: true } } as V1Service, {
      force: true,
    });
    const reverted = await applyAs(
      "gitops",
      { ...ref, spec: { publishNotReadyAddresses: false } } as V1Service,
      {
        force: true,
      },
    );
    expect(reverted.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(reverted)).toEqual(["gitops"]);
  });

  it("an update (kubectl edit) that sets it back to false leaves no owner of the field, and no entry naming the editor", async () => {
    const { core } = testClients();
    await core.createNamespacedService({ namespace: ns.name, body: makeService("edited") });
    const ref = { apiVersion: "v1", kind: "Service", metadata: { name: "edited", namespace: ns.name } };
    await applyAs(PANIC_MANAGER, { ...ref, spec: { publishNotReadyAddresses: true } } as V1Service, {
      force: true,
    });
    const live = await core.readNamespacedService({ name: "edited", namespace: ns.name });
    live.spec!.publishNotReadyAddresses = false;
    const edited = await core.replaceNamespacedService({
      name: "edited",
      namespace: ns.name,
      body: live,
      fieldManager: "kubectl-edit",
    });
    expect(edited.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(edited)).toEqual([]);
    // Removing a field owns nothing: the editor gets no managedFields entry to be named by.
    expect(edited.metadata?.managedFields?.map((m) => m.manager)).not.toContain("kubectl-edit");
  });

  it("a forced apply that names an older resourceVersion is refused with 409 and changes nothing: publish's precondition", async () => {
    const { core } = testClients();
    const created = await core.createNamespacedService({ namespace: ns.name, body: makeService("moved") });
    const ref = { apiVersion: "v1", kind: "Service", metadata: { name: "moved", namespace: ns.name } };
    // Someone changes the Service after healthgate's cache read it
    await applyAs("gitops", { ...ref, metadata: { ...ref.metadata, labels: { team: "a" } } } as V1Service);
    const stale = { ...ref.metadata, resourceVersion: created.metadata!.resourceVersion! };
    const refused = await applyAs(
      PANIC_MANAGER,
      { ...ref, metadata: stale, spec: { publishNotReadyAddresses: true } } as V1Service,
      { force: true },
    ).then(
      () => undefined,
      (err: unknown) => err as { code?: number },
    );
    expect(refused?.code).toBe(409);
    const live = await core.readNamespacedService({ name: "moved", namespace: ns.name });
    expect(live.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(owners(live)).toEqual([]);
    // and with the current version it lands
    const taken = await applyAs(
      PANIC_MANAGER,
      {
        ...ref,
        metadata: { ...ref.metadata, resourceVersion: live.metadata!.resourceVersion! },
        spec: { publishNotReadyAddresses: true },
      } as V1Service,
      { force: true },
    );
    expect(owners(taken)).toEqual([PANIC_MANAGER]);
  });
});
