// The lines `healthgate dev` prints about its gated rollout (src/cli/devRollout.ts), and the dev
// plane's application chosen by image tag. test/integration/readme.test.ts checks the real output.
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { devApp, progressKey, progressLine, type RolloutView } from "../../../src/cli/devRollout.ts";

const pod = (
  name: string,
  revision: string,
  ready: boolean,
  image = "registry.example/checkout:1.1",
): V1Pod => ({
  metadata: { name, labels: { "pod-template-hash": revision } },
  spec: { containers: [{ name: "checkout", image }] },
  status: { conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
});

const view = (over: Partial<RolloutView> = {}): RolloutView => ({
  state: { phase: "Baking", revision: "new", stableRevision: "old", step: 0, weight: 33, admitted: ["n1"] },
  replicas: 3,
  image: "registry.example/checkout:1.1",
  pods: [pod("n1", "new", true), pod("o1", "old", true), pod("o2", "old", true), pod("n2", "new", false)],
  condition: undefined,
  steps: 3,
  ...over,
});

describe("the dev rollout's progress line", () => {
  it("shows step, weight, phase, admitted/total and the Ready pods of each revision", () => {
    expect(progressLine(view())).toBe(
      "step 1/3 (33%)  Baking                    admitted 1/3  Ready: 1 new, 2 old",
    );
  });

  it("names the reason of an abort", () => {
    const line = progressLine(
      view({
        state: {
          phase: "Aborted",
          reason: "DeepCheckFailed",
          revision: "new",
          step: 0,
          weight: 33,
          admitted: [],
        },
      }),
    );
    expect(line).toContain("Aborted (DeepCheckFailed) admitted 0/3");
  });

  it("changes its key when a pod turns Ready, not when nothing it shows changed", () => {
    const before = view();
    expect(progressKey(view())).toBe(progressKey(before));
    const after = view({ pods: [...before.pods.slice(0, 3), pod("n2", "new", true)] });
    expect(progressKey(after)).not.toBe(progressKey(before));
  });
});

describe("the dev plane's application", () => {
  it("answers 500 on /health/deep for a tag ending in -bad, and 200 everywhere else", () => {
    const bad = devApp(pod("b", "x", false, "registry.example/checkout:1.2-bad"));
    expect(bad["/health/deep"]).toMatchObject({ status: 500 });
    expect(bad["*"]).toEqual({});
    const good = devApp(pod("g", "x", false, "registry.example/checkout:1.1"));
    expect(good["/health/deep"]).toBeUndefined();
    expect(good["*"]).toMatchObject({ body: '{"status":"UP"}' });
  });
});
