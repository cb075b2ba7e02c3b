import { defineConfig } from "vitest/config";

// Two projects: `unit` (pure code, no cluster) and `integration` (a real
// control plane started once per run by test/support/globalSetup.ts).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
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
        },
      },
    ],
  },
});
