import { defineConfig } from "vitest/config";

// Three projects: `unit` (pure code, no cluster), `integration` (a real control plane started
// once per run by test/support/globalSetup.ts), and `audit`, which runs after both and checks
// the chart's RBAC against the run's audit log.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/globalSetup.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // One control plane on 2 cores: files run one or two at a time.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // After every integration file (a later group): reads the run's kube-apiserver audit log
        // (test/audit/rbac.test.ts). Its inputs come from the integration project's globalSetup
        // through the environment.
        test: {
          name: "audit",
          include: ["test/audit/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
