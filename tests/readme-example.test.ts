/**
 * The library example in README.md runs as it stands: the code block is copied into an .mts file inside the
 * repository (where `gpt-course` and `course-data` resolve to the built packages, as `npm install` would make
 * them in a learner's project) and run with tsx.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const repo = resolve(__dirname, "..");

describe("README", () => {
  it("the library example runs and writes text", () => {
    const readme = readFileSync(join(repo, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## The library"));
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code, "README.md has no ```ts block under ## The library").toBeDefined();
    const file = join(repo, "tests", ".readme-example.mts");
    writeFileSync(file, code!);
    try {
      const run = spawnSync(process.execPath, [join(repo, "node_modules/tsx/dist/cli.mjs"), file], {
        cwd: repo,
        encoding: "utf8",
        timeout: 400_000,
      });
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      const written = run.stdout.trim().split("\n").pop()!;
      expect(written.startsWith("The")).toBe(true);
      expect(written.length).toBeGreaterThan(60);
      expect(run.stderr).not.toMatch(/Hi, looks like you are running TensorFlow\.js/);
    } finally {
      rmSync(file, { force: true });
    }
  }, 420_000);
});
