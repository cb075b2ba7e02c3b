import { describe, expect, it } from "vitest";
import type { PodDisruptionBudget } from "../../../src/api/k8s.ts";
import { headroomConcern } from "../../../src/policy/headroom/concern.ts";
import { assessDisruptionBudgets, blocksEveryDrain, pdbName } from "../../../src/policy/headroom/pdb.ts";
import {
  makeDeployment,
  makePdb,
  managedByHealthgate,
  snapshotOf,
  withPdbStatus,
  withReplicas,
} from "./builders.ts";

const deployment = makeDeployment("web", withReplicas(4));
const allowAlways = { unhealthyPodEvictionPolicy: "AlwaysAllow" as const };

const ownPdb = {
  apiVersion: "policy/v1",
  kind: "PodDisruptionBudget",
  metadata: {
    name: "web-healthgate",
    namespace: "shop",
    labels: { "app.kubernetes.io/managed-by": "healthgate" },
  },
  spec: {
    selector: { matchLabels: { app: "web" } },
    maxUnavailable: 1,
    unhealthyPodEvictionPolicy: "AlwaysAllow",
  },
};

describe("assessDisruptionBudgets", () => {
  it("managePodDisruptionBudget with no budget around: healthgate's own PDB", () => {
    expect(assessDisruptionBudgets({ deployment, pdbs: [], tolerate: 1, manage: true })).toEqual({
      ownedObjects: [ownPdb],
      findings: [],
    });
  });

  it("maxUnavailable follows tolerate", () => {
    const { ownedObjects } = assessDisruptionBudgets({ deployment, pdbs: [], tolerate: 2, manage: true });
    expect(ownedObjects[0]?.spec).toMatchObject({ maxUnavailable: 2 });
  });

  it("healthgate's own PDB already there: still desired (the writer applies it), no findings", () => {
    const existing = makePdb("web-healthgate", { maxUnavailable: 3 }, managedByHealthgate);
    expect(assessDisruptionBudgets({ deployment, pdbs: [existing], tolerate: 1, manage: true })).toEqual({
      ownedObjects: [ownPdb],
      findings: [],
    });
  });

  it("a user's PDB covers the pods: reported, and no second budget", () => {
    const user = makePdb("web-pdb", { minAvailable: 2, ...allowAlways });
    expect(assessDisruptionBudgets({ deployment, pdbs: [user], tolerate: 1, manage: true })).toEqual({
      ownedObjects: [],
      findings: [
        {
          rule: "PodDisruptionBudgetNotManaged",
          severity: "info",
          message: expect.stringContaining(
            "PodDisruptionBudget web-pdb already covers the pods of Deployment web",
          ),
        },
      ],
    });
  });

  it("another Deployment's healthgate PDB over these pods counts as someone else's", () => {
    const other = makePdb("api-healthgate", { maxUnavailable: 1, ...allowAlways }, managedByHealthgate);
    const { ownedObjects, findings } = assessDisruptionBudgets({
      deployment,
      pdbs: [other],
      tolerate: 1,
      manage: true,
    });
    expect(ownedObjects).toEqual([]);
    expect(findings.map((f) => f.rule)).toEqual(["PodDisruptionBudgetNotManaged"]);
  });

  it("not managing: no object, and healthgate's stale PDB (to be deleted) is not an overlap", () => {
    const stale = makePdb("web-healthgate", { maxUnavailable: 1 }, managedByHealthgate);
    const user = makePdb("web-pdb", { maxUnavailable: 1, ...allowAlways });
    expect(assessDisruptionBudgets({ deployment, pdbs: [stale, user], tolerate: 1, manage: false })).toEqual({
      ownedObjects: [],
      findings: [],
    });
  });

  it("two budgets over the same pods: eviction fails outright", () => {
    const pdbs = [
      makePdb("web-b", { maxUnavailable: 1, ...allowAlways }),
      makePdb("web-a", { maxUnavailable: 1, ...allowAlways }),
    ];
    const { findings } = assessDisruptionBudgets({ deployment, pdbs, tolerate: 1, manage: false });
    expect(findings).toEqual([
      {
        rule: "PodDisruptionBudgetOverlap",
        severity: "error",
        message: expect.stringContaining(
          "PodDisruptionBudgets web-a, web-b all cover the pods of Deployment web",
        ),
      },
    ]);
  });

  it("a budget that blocks every drain is an error naming the field", () => {
    const { findings } = assessDisruptionBudgets({
      deployment,
      pdbs: [makePdb("web-pdb", { minAvailable: 4, ...allowAlways })],
      tolerate: 1,
      manage: false,
    });
    expect(findings).toEqual([
      {
        rule: "PodDisruptionBudgetBlocksDrain",
        severity: "error",
        field: "spec.minAvailable",
        message:
          "PodDisruptionBudget web-pdb blocks every drain of Deployment web's pods: minAvailable 4 with 4 replicas allows no " +
          "eviction, so node drains and cluster upgrades stall. Allow at least 1 disruption (e.g. maxUnavailable: 1) or run " +
          "more replicas than minAvailable",
      },
    ]);
  });

  it("a budget without unhealthyPodEvictionPolicy: AlwaysAllow gets an info", () => {
    const { findings } = assessDisruptionBudgets({
      deployment,
      pdbs: [makePdb("web-pdb", { maxUnavailable: 1 })],
      tolerate: 1,
      manage: false,
    });
    expect(findings.map((f) => [f.rule, f.severity, f.field])).toEqual([
      ["PodDisruptionBudgetUnhealthyPolicy", "info", "spec.unhealthyPodEvictionPolicy"],
    ]);
  });
});

describe("blocksEveryDrain", () => {
  const rows: { name: string; pdb: PodDisruptionBudget; replicas: number; field: string | undefined }[] = [
    {
      name: "maxUnavailable 0",
      pdb: makePdb("p", { maxUnavailable: 0 }),
      replicas: 4,
      field: "spec.maxUnavailable",
    },
    {
      name: "maxUnavailable 0%",
      pdb: makePdb("p", { maxUnavailable: "0%" }),
      replicas: 4,
      field: "spec.maxUnavailable",
    },
    {
      name: "maxUnavailable 10% of 4 rounds up to 1",
      pdb: makePdb("p", { maxUnavailable: "10%" }),
      replicas: 4,
      field: undefined,
    }, // 0.4
    { name: "maxUnavailable 1", pdb: makePdb("p", { maxUnavailable: 1 }), replicas: 4, field: undefined },
    {
      name: "integer minAvailable = replicas",
      pdb: makePdb("p", { minAvailable: 4 }),
      replicas: 4,
      field: "spec.minAvailable",
    },
    {
      name: "integer minAvailable > replicas",
      pdb: makePdb("p", { minAvailable: 5 }),
      replicas: 4,
      field: "spec.minAvailable",
    },
    {
      name: "integer minAvailable < replicas",
      pdb: makePdb("p", { minAvailable: 3 }),
      replicas: 4,
      field: undefined,
    },
    {
      name: "minAvailable 100%",
      pdb: makePdb("p", { minAvailable: "100%" }),
      replicas: 3,
      field: "spec.minAvailable",
    },
    {
      name: "minAvailable 80% of 3 rounds up to 3",
      pdb: makePdb("p", { minAvailable: "80%" }),
      replicas: 3,
      field: "spec.minAvailable",
    }, // 2.4
    {
      name: "minAvailable 60% of 3 rounds up to 2",
      pdb: makePdb("p", { minAvailable: "60%" }),
      replicas: 3,
      field: undefined,
    }, // 1.8
    {
      name: "all pods healthy and still 0 disruptions allowed",
      pdb: makePdb(
        "p",
        { minAvailable: 2 },
        withPdbStatus({ disruptionsAllowed: 0, currentHealthy: 2, desiredHealthy: 2, expectedPods: 2 }),
      ),
      replicas: 3,
      field: "status.disruptionsAllowed",
    },
    {
      name: "0 allowed because a pod is unhealthy: the budget doing its job",
      pdb: makePdb(
        "p",
        { maxUnavailable: 1 },
        withPdbStatus({ disruptionsAllowed: 0, currentHealthy: 3, desiredHealthy: 3, expectedPods: 4 }),
      ),
      replicas: 4,
      field: undefined,
    },
  ];
  it.each(rows)("$name", ({ pdb, replicas, field }) =>
    expect(blocksEveryDrain(pdb, replicas)?.field).toBe(field),
  );
});

describe("pdbName", () => {
  it("is <deployment>-healthgate", () => expect(pdbName("web")).toBe("web-healthgate"));
  it("stays a valid name for a very long Deployment name, and distinct", () => {
    const a = pdbName(`${"x".repeat(250)}a`);
    const b = pdbName(`${"x".repeat(250)}b`);
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(a.endsWith("-healthgate")).toBe(true);
    expect(a).not.toBe(b);
  });
});

describe("headroomConcern: disruption budgets", () => {
  it("adds the PDB to the contribution when asked", () => {
    const out = headroomConcern(
      snapshotOf(deployment, {
        headroom: { source: "Static", peakUtilizationPercent: 50, managePodDisruptionBudget: true },
      }),
    );
    expect(out.ownedObjects).toEqual([ownPdb]);
  });

  it("reports budget problems even when not managing one", () => {
    const out = headroomConcern(
      snapshotOf(deployment, {
        headroom: { source: "Static", peakUtilizationPercent: 50 },
        pdbs: [makePdb("web-pdb", { maxUnavailable: 0, ...allowAlways })],
      }),
    );
    expect(out.ownedObjects).toEqual([]);
    expect(out.findings.map((f) => f.rule)).toContain("PodDisruptionBudgetBlocksDrain");
  });
});
