// When `healthgate dev` may print what it found: the policy's status is current and agrees with
// its Deployments, and in Enforce the release has reached each template (a verdict printed
// while it is on its way says "not compliant" of a Deployment about to become compliant).
import { describe, expect, it } from "vitest";
import { settled } from "../../../src/cli/dev.ts";

const condition = (type: string, status: string, reason: string) => ({ type, status, reason, message: "" });

const view = (record: { status: string; reason: string } | undefined, ready = "Reconciled") => ({
  policies: [
    {
      metadata: { name: "web-api", generation: 1 },
      spec: { mode: "Enforce" },
      status: {
        observedGeneration: 1,
        conditions: [
          condition("Ready", "True", ready),
          condition("ProbesCompliant", "False", "LivenessMissing"),
        ],
        targets: [{ name: "web-api", governed: true }],
      },
    },
  ],
  deployments: [
    {
      metadata: { name: "web-api", generation: 1 },
      status: { conditions: [condition("healthgate.io/ProbesCompliant", "False", "LivenessMissing")] },
    },
  ],
  records: record
    ? [
        {
          metadata: { name: "web-api" },
          status: { conditions: [condition("Enforced", record.status, record.reason)] },
        },
      ]
    : [],
});

describe("healthgate dev: settled", () => {
  it("waits while an Enforce release is on its way, though the policy and its Deployment agree", () => {
    expect(settled(view(undefined))).toBe(false);
    expect(settled(view({ status: "False", reason: "Releasing" }))).toBe(false);
  });

  it("prints once the release is in the template, or fails for a lasting reason", () => {
    expect(settled(view({ status: "True", reason: "Enforced" }))).toBe(true);
    expect(settled(view({ status: "False", reason: "EnforceNotApplied" }))).toBe(true);
    expect(settled(view({ status: "False", reason: "GuardFailed" }))).toBe(true);
  });

  it("does not wait for a release where the cluster cannot Enforce (nothing is released)", () => {
    expect(settled(view(undefined, "EnforceUnavailable"))).toBe(true);
  });
});
