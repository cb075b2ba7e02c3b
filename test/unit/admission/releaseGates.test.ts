// Which held gates a release opens: pods whose deep-check gate is not True, their Deployment
// resolved from the pod, and an aborted revision's pods kept apart.
import { describe, expect, it } from "vitest";
import type { Pod } from "../../../src/api/k8s.ts";
import { heldPods, isAbortedRevision } from "../../../src/admission/releaseGates.ts";

const GATE = "healthgate.io/deep-check";
const pod = (name: string, gate: "True" | "False" | "missing" | "ungated", hash = "new222"): Pod => ({
  metadata: {
    name,
    namespace: "shop",
    labels: { "pod-template-hash": hash },
    ownerReferences: [
      { apiVersion: "apps/v1", kind: "ReplicaSet", name: `web-${hash}`, uid: "u", controller: true },
    ],
  },
  spec: { containers: [], ...(gate === "ungated" ? {} : { readinessGates: [{ conditionType: GATE }] }) },
  status: {
    conditions: gate === "True" || gate === "False" ? [{ type: GATE, status: gate }] : [],
  },
});

describe("heldPods", () => {
  it("takes gated pods whose gate is False or missing, with their Deployment and revision", () => {
    const held = heldPods([pod("a", "False"), pod("b", "missing"), pod("c", "True"), pod("d", "ungated")]);
    expect(held.map((h) => [h.pod.metadata.name, h.deployment, h.revision])).toEqual([
      ["a", "web", "new222"],
      ["b", "web", "new222"],
    ]);
  });
});

describe("isAbortedRevision", () => {
  const [held] = heldPods([pod("a", "False")]);
  it.each([
    {
      name: "aborted, pod of the new revision",
      rollout: { phase: "Aborted", stableRevision: "old111" },
      want: true,
    },
    {
      name: "aborted, pod of the stable revision",
      rollout: { phase: "Aborted", stableRevision: "new222" },
      want: false,
    },
    { name: "a rollout in progress", rollout: { phase: "Baking", stableRevision: "old111" }, want: false },
    { name: "no record", rollout: undefined, want: false },
  ])("$name → $want", ({ rollout, want }) => {
    expect(isAbortedRevision(held!, rollout)).toBe(want);
  });
});
