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
      {
        test: {
          name: "node",
          // A real node (kubelet, containerd) per file, with its own control
          // plane: root and Linux only (test/node/world.ts says when skipped).
          include: ["test/node/**/*.test.ts"],
          fileParallelism: false,
          // A group of its own, never beside other files (two cores): after
          // the unit files, before the integration files (vitest runs
          // projects without file parallelism and groupOrder 0 last).
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
          // A start may wait up to 4 minutes for another checkout's node world.
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
