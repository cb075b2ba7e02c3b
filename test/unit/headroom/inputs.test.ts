import { describe, expect, it } from "vitest";
import type { ReplicaSet } from "../../../src/api/k8s.ts";
import {
  cpuNanocores,
  formatWindow,
  rolloutInProgress,
  rolloutStrategy,
} from "../../../src/policy/headroom/inputs.ts";
import {
  createdAt,
  makeDeployment,
  makeReplicaSet,
  rolling,
  withoutStrategy,
  withRecreate,
  withRollingUpdate,
  withStatusReplicas,
} from "./builders.ts";

describe("rolloutInProgress: an older ReplicaSet than the newest still wants or has pods", () => {
  const rows: { name: string; replicaSets: ReplicaSet[]; want: boolean }[] = [
    { name: "no ReplicaSets yet", replicaSets: [], want: false },
    { name: "one ReplicaSet", replicaSets: [makeReplicaSet("web-a", 1, 4)], want: false },
    {
      name: "old revision scaled to zero",
      replicaSets: [makeReplicaSet("web-b", 2, 4), makeReplicaSet("web-a", 1, 0)],
      want: false,
    },
    {
      name: "old revision still has pods",
      replicaSets: [makeReplicaSet("web-b", 2, 2), makeReplicaSet("web-a", 1, 3)],
      want: true,
    },
    {
      name: "old revision scaled to zero, pods still terminating",
      replicaSets: [makeReplicaSet("web-b", 2, 4), makeReplicaSet("web-a", 1, 0, withStatusReplicas(2))],
      want: true,
    },
    {
      name: "a scale-up moves only the newest ReplicaSet",
      replicaSets: [makeReplicaSet("web-b", 2, 6, withStatusReplicas(4)), makeReplicaSet("web-a", 1, 0)],
      want: false,
    },
    {
      name: "revisions compare as numbers (10 is newer than 9)",
      replicaSets: [makeReplicaSet("web-j", 9, 0), makeReplicaSet("web-k", 10, 4)],
      want: false,
    },
    {
      name: "a rollback: the old template's ReplicaSet gets the newest revision",
      replicaSets: [makeReplicaSet("web-a", 3, 1), makeReplicaSet("web-b", 2, 4)],
      want: true,
    },
    {
      name: "no revision annotations: the newest by creationTimestamp",
      replicaSets: [
        makeReplicaSet("web-a", undefined, 0, createdAt("2025-01-01T00:00:00Z")),
        makeReplicaSet("web-b", undefined, 4, createdAt("2025-02-01T00:00:00Z")),
      ],
      want: false,
    },
  ];
  it.each(rows)("$name", ({ replicaSets, want }) => expect(rolloutInProgress(replicaSets)).toBe(want));
});

describe("rolloutStrategy: the API server's defaults apply", () => {
  it("no strategy: RollingUpdate 25% / 25%", () => {
    expect(rolloutStrategy(makeDeployment("web", withoutStrategy))).toEqual({
      ok: true,
      disruption: rolling("25%", "25%"),
      rawMaxUnavailable: "25%",
    });
  });
  it("only maxSurge set: maxUnavailable defaults to 25%", () => {
    expect(rolloutStrategy(makeDeployment("web", withRollingUpdate(2, undefined)))).toMatchObject({
      disruption: rolling(2, "25%"),
    });
  });
  it("Recreate", () => {
    expect(rolloutStrategy(makeDeployment("web", withRecreate))).toEqual({
      ok: true,
      disruption: { strategy: "Recreate" },
    });
  });
  it("an invalid value names the field", () => {
    const got = rolloutStrategy(makeDeployment("web", withRollingUpdate("1", 0)));
    expect(got.ok).toBe(false);
    if (!got.ok) expect(got.message).toContain('maxSurge "1"');
  });
});

describe("cpuNanocores", () => {
  const rows: { quantity: string; want: number | undefined }[] = [
    { quantity: "500m", want: 500_000_000 },
    { quantity: "1", want: 1_000_000_000 },
    { quantity: "0.5", want: 500_000_000 },
    { quantity: "0.1", want: 100_000_000 }, // not 100000000.00000001
    { quantity: ".25", want: 250_000_000 },
    { quantity: "2.", want: 2_000_000_000 },
    { quantity: "123456789n", want: 123_456_789 },
    { quantity: "250000u", want: 250_000_000 },
    { quantity: "1.5n", want: 2 }, // rounded up
    { quantity: "1e3", want: 1_000_000_000_000 },
    { quantity: "5e-1", want: 500_000_000 },
    { quantity: "1k", want: 1_000_000_000_000 },
    { quantity: "1Ki", want: 1_024_000_000_000 },
    { quantity: "+2", want: 2_000_000_000 },
    { quantity: "", want: undefined },
    { quantity: "m", want: undefined },
    { quantity: "-1", want: undefined },
    { quantity: "1 m", want: undefined },
    { quantity: "1x", want: undefined },
  ];
  it.each(rows)("$quantity", ({ quantity, want }) => expect(cpuNanocores(quantity)).toBe(want));
});

describe("formatWindow", () => {
  it.each([
    [3600, "1h"],
    [5400, "1h30m"],
    [90, "1m30s"],
    [300, "5m"],
    [45, "45s"],
    [3605, "1h5s"],
  ])("%i → %s", (seconds, want) => expect(formatWindow(seconds)).toBe(want));
});
