/**
 * Every notebook in notebooks/ must run from top to bottom in quick mode (COURSE_QUICK=1).
 *
 * Each notebook is executed by scripts/run-notebooks.py (Debian's nbclient, repo-local tslab kernelspec),
 * which stops at the first failing cell and prints its index, source and stderr; that text becomes the
 * assertion message here. Notebooks import `gpt-course` from lib/dist, which `npm test` builds first.
 *
 * The executed notebooks (quick mode, written to a temporary folder, never over the committed ones) are then
 * read back, and every figure in them is checked: heatmaps go from white (smallest value) to dark (largest).
 *
 * Environment knobs: NOTEBOOK_CELL_TIMEOUT_S (default 300), NOTEBOOK_TEST_TIMEOUT_S (default 900, per
 * notebook), NOTEBOOK_OUT_DIR (where to write executed notebooks; default a temporary folder), JUPYTER_PYTHON
 * (Python with nbclient).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { type Figure, figureFromHtml } from "gpt-course";
import { readNotebook, textOf } from "../scripts/notebook-outputs.js";

const repo = resolve(__dirname, "..");
const notebooksDir = join(repo, "notebooks");
const runner = join(repo, "scripts", "run-notebooks.py");
const libEntry = join(repo, "lib", "dist", "index.js");
const python = process.env.JUPYTER_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const cellTimeoutS = Number(process.env.NOTEBOOK_CELL_TIMEOUT_S ?? 300);
const testTimeoutS = Number(process.env.NOTEBOOK_TEST_TIMEOUT_S ?? 900);
const outDir = resolve(process.env.NOTEBOOK_OUT_DIR ?? mkdtempSync(join(tmpdir(), "quick-notebooks-")));

const notebooks = existsSync(notebooksDir)
  ? readdirSync(notebooksDir)
      .filter((f) => f.endsWith(".ipynb"))
      .sort()
  : [];

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function runNotebook(file: string): Promise<RunResult> {
  const args = [runner, "--quick", "--timeout", String(cellTimeoutS), "--out", outDir, join(notebooksDir, file)];
  return new Promise((done, fail) => {
    // SIGTERM (not SIGKILL) on timeout: the runner then shuts its kernel down before exiting.
    const child = spawn(python, args, {
      cwd: repo,
      env: { ...process.env, COURSE_QUICK: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: (testTimeoutS - 10) * 1000,
      killSignal: "SIGTERM",
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("error", fail);
    child.on("close", (code, signal) => done({ code, signal, output }));
  });
}

/** The figures among an executed notebook's outputs. */
function figuresIn(file: string): Figure[] {
  return readNotebook(join(outDir, file)).cells.flatMap((cell) =>
    (cell.outputs ?? []).flatMap((output) => {
      const figure = figureFromHtml(textOf(output.data?.["text/html"]));
      return figure ? [figure] : [];
    }),
  );
}

/** Relative luminance of a #rrggbb colour, 0 (black) to 1 (white). */
function luminance(colour: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** What is wrong with a figure's heatmaps: the course draws small values light and large values dark. */
function heatmapProblems(figure: Figure): string[] {
  const title = (figure.layout.title as { text?: string } | undefined)?.text ?? "";
  return figure.data
    .filter((trace) => trace.type === "heatmap")
    .flatMap((trace) => {
      const scale = trace.colorscale as Array<[number, string]> | string | undefined;
      if (!Array.isArray(scale) || !scale.every(([, colour]) => /^#[0-9a-f]{6}$/i.test(colour)))
        return [`"${title}": colour scale ${JSON.stringify(scale)} is not a list of #rrggbb stops`];
      const shades = (trace.reversescale === true ? [...scale].reverse() : scale).map(([, colour]) =>
        luminance(colour),
      );
      const lightest = shades.indexOf(Math.max(...shades));
      // A diverging scale (lightest in the middle) shows values around 0, so it must be centred on 0.
      if (lightest > 0 && lightest < shades.length - 1) {
        return trace.zmin === -(trace.zmax as number)
          ? []
          : [`"${title}": a diverging colour scale needs zmin = -zmax, got ${trace.zmin} and ${trace.zmax}`];
      }
      return lightest === 0 ? [] : [`"${title}": the smallest value is drawn darker than the largest`];
    });
}

function libBuildProblem(): string | undefined {
  if (!existsSync(libEntry)) {
    return `lib/dist/index.js is missing: notebooks import gpt-course from lib/dist. Run \`npm run build\` (\`npm test\` does it).`;
  }
  return undefined;
}

/** Newest modification time of lib's TypeScript sources (not dist, not node_modules). */
function newestLibSource(dir = join(repo, "lib")): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "dist" || entry.name === "node_modules") continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestLibSource(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts"))
      newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

describe("notebooks", () => {
  it("notebooks/ contains the introduction notebook", () => {
    expect(notebooks, `no notebooks found in ${notebooksDir}`).toContain("00_introduction.ipynb");
  });

  it("lib/dist is built (notebooks load gpt-course from it)", () => {
    const problem = libBuildProblem();
    expect(problem, problem).toBeUndefined();
    if (newestLibSource() > statSync(libEntry).mtimeMs) {
      console.warn(
        "warning: lib/ has sources newer than lib/dist; notebooks run the older build (run `npm run build`)",
      );
    }
  });

  for (const file of notebooks) {
    it(
      `${file} runs in quick mode`,
      async () => {
        const problem = libBuildProblem();
        if (problem) throw new Error(problem);
        const started = Date.now();
        const result = await runNotebook(file);
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        if (result.code !== 0) {
          const how = result.signal
            ? `was stopped by ${result.signal} after ${seconds} s (NOTEBOOK_TEST_TIMEOUT_S=${testTimeoutS})`
            : result.code === 2
              ? `could not run (exit 2): Jupyter set-up problem`
              : `failed (exit ${result.code}) after ${seconds} s`;
          throw new Error(`notebooks/${file} ${how}\n${result.output.trim()}`);
        }
        expect(figuresIn(file).flatMap(heatmapProblems)).toEqual([]);
      },
      testTimeoutS * 1000,
    );
  }
});
