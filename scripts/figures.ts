/**
 * Every figure of the course as a PNG file, so that anyone can look at all of them in a minute; and the
 * notebooks' stored outputs, so that GitHub and any other viewer show results without running anything.
 *
 *   npm run figures -- [--full] [--notebook 02] [--out figures]      run the notebooks, save each figure as PNG
 *   npm run notebooks:store -- [--notebook 05]                        run in full mode, store outputs in notebooks/
 *
 * The notebooks run in quick mode by default (a few minutes for the whole course), in full mode with `--full`
 * (about 27 minutes on 2 cores). `--executed DIR` takes notebooks executed earlier (run-notebooks.py --out DIR)
 * instead of running them. Figures are drawn by plotly.js in headless Chromium (Debian's `chromium`, or
 * $CHROMIUM), at the width of a notebook's output area.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type Figure, figureFromHtml } from "gpt-course";
import { fail, parseCommandLine, run } from "./cli.js";
import { FigureRenderer } from "./figure-renderer.js";
import { type Notebook, readNotebook, storeOutputs } from "./notebook-outputs.js";

const usage = `usage: npm run figures -- [options]
  --full            run the notebooks in full mode (default: quick mode, COURSE_QUICK=1)
  --notebook NAME   only notebooks whose file name starts with NAME (repeatable), e.g. --notebook 02
  --out DIR         where to write the PNG files (default: figures/)
  --executed DIR    use notebooks already executed into DIR instead of running them
  --store           write the executed notebooks, figures as PNG images, back into notebooks/ (needs --full)`;

const REPO = path.resolve(__dirname, "..");

/** Runs the notebooks with scripts/run-notebooks.py into a temporary folder, which it returns. */
function executeNotebooks(names: string[], full: boolean): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "executed-notebooks-"));
  const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const args = [
    path.join(REPO, "scripts", "run-notebooks.py"),
    ...(full ? [] : ["--quick"]),
    "--timeout",
    "1800",
    "--out",
    dir,
  ];
  const result = spawnSync(python, [...args, ...names.map((name) => path.join(REPO, "notebooks", name))], {
    stdio: "inherit",
  });
  if (result.status !== 0)
    fail(`a notebook failed (run-notebooks.py exited with ${result.status}); no figures written.`);
  return dir;
}

/** [cell index, figure HTML] for every figure among a notebook's outputs, in order. */
function* figureOutputs(notebook: Notebook): Generator<[number, string]> {
  for (const [index, cell] of notebook.cells.entries()) {
    for (const output of cell.outputs ?? []) {
      const html = output.data?.["text/html"];
      const text = Array.isArray(html) ? html.join("") : html;
      if (typeof text === "string" && figureFromHtml(text)) yield [index, text];
    }
  }
}

function titleOf(figure: Figure): string {
  const title = figure.layout.title as { text?: string } | undefined;
  return (title?.text ?? "").replace(/<br>/g, " ");
}

run(async () => {
  const flags = parseCommandLine(usage, {
    full: { type: "boolean" },
    notebook: { type: "string", multiple: true },
    out: { type: "string" },
    executed: { type: "string" },
    store: { type: "boolean" },
  });
  if (flags.store && !flags.full) fail("--store keeps full-mode outputs only: add --full.");
  const names = fs
    .readdirSync(path.join(REPO, "notebooks"))
    .filter((file) => file.endsWith(".ipynb"))
    .filter((file) => !flags.notebook || flags.notebook.some((prefix) => file.startsWith(prefix)))
    .sort();
  if (names.length === 0) fail(`no notebook in notebooks/ starts with ${flags.notebook?.join(" or ")}.`);

  const executedDir = flags.executed ?? executeNotebooks(names, Boolean(flags.full));
  const outDir = path.resolve(flags.out ?? path.join(REPO, "figures"));
  fs.mkdirSync(outDir, { recursive: true });

  let renderer: FigureRenderer;
  try {
    renderer = await FigureRenderer.start();
  } catch (error) {
    fail((error as Error).message);
  }
  try {
    for (const name of names) {
      const executedPath = path.join(executedDir, name);
      if (!fs.existsSync(executedPath)) fail(`${executedPath} does not exist: was ${name} executed?`);
      const executed = readNotebook(executedPath);
      const images = new Map<string, Buffer>(); // figure HTML → PNG
      let count = 0;
      for (const [cellIndex, html] of figureOutputs(executed)) {
        const figure = figureFromHtml(html)!;
        const png = await renderer.render(figure);
        images.set(html, png);
        const file = path.join(
          outDir,
          `${name.replace(/\.ipynb$/, "")}-cell${String(cellIndex).padStart(2, "0")}-${++count}.png`,
        );
        fs.writeFileSync(file, png);
        console.log(`${path.relative(process.cwd(), file)}  ${titleOf(figure)}`);
      }
      if (flags.store) {
        const target = path.join(REPO, "notebooks", name);
        fs.writeFileSync(target, storeOutputs(executed, readNotebook(target), images));
        console.log(`stored the outputs of ${name} (${(fs.statSync(target).size / 1024).toFixed(0)} KB)`);
      }
    }
  } finally {
    await renderer.close();
  }
});
