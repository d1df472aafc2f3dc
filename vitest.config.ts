import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "test/**/*.unit.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // One control plane for the whole run, shared by every file.
          globalSetup: ["test/harness/global-setup.ts"],
          // After each file: remove the ECRPullSecrets it left behind.
          setupFiles: ["test/harness/leftovers.ts"],
          // Files run one after another: two cores, one API server, and some
          // tests count writes or time latencies.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
