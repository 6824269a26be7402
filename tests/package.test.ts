import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

/**
 * A user's own project, outside this repository, that depends on the library by its package name:
 * the compiled package must resolve, run, and type-check against its declarations.
 */
const repository = path.resolve(__dirname, "..");
const project = fs.mkdtempSync(path.join(os.tmpdir(), "gpt-course-user-"));
afterAll(() => fs.rmSync(project, { recursive: true, force: true }));

describe("gpt-course as a package", () => {
  it("is importable by name from a project outside the repository, with types", () => {
    if (!fs.existsSync(path.join(repository, "lib", "dist", "index.js")))
      throw new Error("lib/dist is missing: run `npm run build` first.");
    // What `npm install path/to/repo/lib` does: a link in the user's node_modules.
    fs.mkdirSync(path.join(project, "node_modules"));
    fs.symlinkSync(path.join(repository, "lib"), path.join(project, "node_modules", "gpt-course"), "dir");
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "my-project", private: true }));
    fs.writeFileSync(
      path.join(project, "main.ts"),
      [
        'import { GPT, CharTokenizer, countParameters, type GPTConfigInput } from "gpt-course";',
        'const tokenizer = CharTokenizer.fromText("hello world");',
        'const config: GPTConfigInput = { preset: "tiny", vocabSize: tokenizer.vocabSize, contextLength: 8, numLayers: 1, numHeads: 2, embeddingDim: 8 };',
        "const model = new GPT(config);",
        "const count: number = model.numParameters();",
        'console.log(JSON.stringify({ count, expected: countParameters(model.config), ids: tokenizer.encode("hello") }));',
      ].join("\n"),
    );
    const tsc = path.join(repository, "node_modules", "typescript", "bin", "tsc");
    const compilerOptions = [
      "--strict",
      "--module",
      "node16",
      "--target",
      "es2022",
      "--types",
      "node",
      "--typeRoots",
      path.join(repository, "node_modules", "@types"),
      "--skipLibCheck",
    ];
    execFileSync(process.execPath, [tsc, ...compilerOptions, "main.ts"], { cwd: project, stdio: "pipe" });
    const output = JSON.parse(execFileSync(process.execPath, ["main.js"], { cwd: project, encoding: "utf8" }));
    expect(output.count).toBe(output.expected);
    expect(output.ids).toHaveLength(5);
  });

  it("a type error in the user's code is caught by the package's declarations", () => {
    fs.writeFileSync(
      path.join(project, "wrong.ts"),
      'import { GPT } from "gpt-course";\nnew GPT({ numHeads: "four" });\n',
    );
    const tsc = path.join(repository, "node_modules", "typescript", "bin", "tsc");
    const options = [
      "--strict",
      "--module",
      "node16",
      "--noEmit",
      "--skipLibCheck",
      "--types",
      "node",
      "--typeRoots",
      path.join(repository, "node_modules", "@types"),
    ];
    let diagnostics = "";
    try {
      execFileSync(process.execPath, [tsc, ...options, "wrong.ts"], { cwd: project, encoding: "utf8", stdio: "pipe" });
    } catch (error) {
      diagnostics = String((error as { stdout?: string }).stdout);
    }
    expect(diagnostics).toMatch(/wrong\.ts.*error TS2322.*'string' is not assignable to type 'number'/s);
  });
});
