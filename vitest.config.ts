import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Tests run lib's TypeScript source directly (the "source" export condition), never a stale build.
    conditions: ["source"],
  },
  ssr: {
    resolve: {
      conditions: ["source"],
      externalConditions: ["source"],
    },
  },
  test: {
    include: ["tests/**/*.test.ts", "exercises/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // TensorFlow.js keeps global state (backend, tensor registry): one test file per process, one at a time
    // per worker, so memory counts and backends never bleed between files.
    pool: "forks",
    // Two test files run at once on a 2-core machine: one wasm thread each keeps the cores from being
    // oversubscribed (threads themselves are tested in tests/kernels.test.ts).
    env: { GPT_WASM_THREADS: process.env.GPT_WASM_THREADS ?? "1" },
    fileParallelism: true,
    maxWorkers: 2,
  },
});
