/**
 * WebGPU computes what the CPU computes: scripts/check-webgpu.ts compares a small GPT's logits, its loss and
 * its weights after one AdamW step on the plain JavaScript backend and on WebGPU (Dawn, npm `webgpu`).
 *
 * Without a GPU, Dawn runs on Mesa's software OpenGL (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri, which
 * .ci/run installs), so every WebGPU kernel the model uses really runs. On a machine that has neither (a
 * laptop without those libraries) the test is skipped and says why; in CI (CI=true) it must run.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const repo = resolve(__dirname, "..");
const mesaEGL = ["/usr/lib/x86_64-linux-gnu/libEGL_mesa.so.0", "/usr/lib/aarch64-linux-gnu/libEGL_mesa.so.0"].some(
  existsSync,
);

describe("WebGPU", () => {
  it("matches the CPU: logits, loss and one AdamW step (Dawn on Mesa's OpenGL)", (context) => {
    if (!mesaEGL && process.env.CI !== "true") {
      context.skip("Mesa's EGL is not installed (Debian: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)");
    }
    const run = spawnSync(
      process.execPath,
      [resolve(repo, "node_modules/tsx/dist/cli.mjs"), "--conditions=source", "scripts/check-webgpu.ts"],
      {
        cwd: repo,
        encoding: "utf8",
        env: { ...process.env, EGL_PLATFORM: "surfaceless", GPT_WEBGPU_DAWN: "backend=opengl" },
        timeout: 120_000,
      },
    );
    const output = `${run.stdout}\n${run.stderr}`;
    expect(run.status, output).toBe(0);
    expect(output).toMatch(/webgpu: WebGPU \(OpenGL/);
    expect(output).toMatch(/WebGPU matches the CPU within 0\.0001/);
  }, 130_000);
});
