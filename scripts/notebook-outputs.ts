/**
 * The notebooks in notebooks/ are stored with the outputs of a full-mode run, so that a learner who opens a
 * chapter on GitHub (or in any viewer, before running anything) sees its results, tables and figures.
 *
 * Figures are stored as PNG images: viewers like GitHub's run no JavaScript, so a Plotly output would show
 * nothing there, and leaving out plotly.js (4.8 MB) keeps each notebook file small. Running a cell brings
 * back the interactive figure. `metadata.course` records how the outputs were made, with a hash of the code
 * cells: tests/stored-notebooks.test.ts checks that the outputs belong to the code that is committed.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { figureFromHtml, PLOTLY_LIBRARY_MARK } from "gpt-course";

export interface NotebookOutput {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  metadata?: Record<string, unknown>;
  transient?: unknown;
  [key: string]: unknown;
}
export interface NotebookCell {
  cell_type: "code" | "markdown" | "raw";
  source: string | string[];
  outputs?: NotebookOutput[];
  execution_count?: number | null;
  metadata: Record<string, unknown>;
}
export interface StoredRun {
  mode: "full" | "quick";
  /** sha256 of the code cells' sources, in order */
  codeHash: string;
  /** when the notebook was executed, and how long it took (seconds, kernel start included) */
  executed: string;
  seconds: number;
}
export interface Notebook {
  cells: NotebookCell[];
  metadata: Record<string, unknown> & {
    course?: StoredRun;
    execution?: { seconds: number; mode: "full" | "quick"; finished: string };
  };
  nbformat: number;
  nbformat_minor: number;
}

export function readNotebook(file: string): Notebook {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Notebook;
}

export const textOf = (value: string | string[] | undefined): string =>
  Array.isArray(value) ? value.join("") : (value ?? "");

/** The hash that ties stored outputs to the code that produced them. Markdown cells may change freely. */
export function codeHash(notebook: Notebook): string {
  const sources = notebook.cells.filter((cell) => cell.cell_type === "code").map((cell) => textOf(cell.source));
  return createHash("sha256").update(JSON.stringify(sources)).digest("hex");
}

/**
 * The notebook file to commit: the cells of `committed` (markdown as it is now) with the outputs of
 * `executed` (a full-mode run of the same code), figures replaced by their PNG images (`images`: figure
 * HTML → PNG) and the plotly.js library left out.
 */
export function storeOutputs(executed: Notebook, committed: Notebook, images: Map<string, Buffer>): string {
  const hash = codeHash(executed);
  if (hash !== codeHash(committed))
    throw new Error("the code cells changed since the notebook was executed: run it again.");
  const run = executed.metadata.execution;
  if (run?.mode !== "full")
    throw new Error("only a full-mode run is stored (run-notebooks.py without --quick records it).");
  const codeCells = executed.cells.filter((cell) => cell.cell_type === "code");
  let next = 0;
  const cells = committed.cells.map((cell) => {
    if (cell.cell_type !== "code") return cell;
    const ran = codeCells[next++];
    const outputs = mergeStreams((ran.outputs ?? []).flatMap((output) => storedOutput(output, images)));
    return { ...cell, execution_count: ran.execution_count ?? null, outputs };
  });
  const { execution: _execution, ...metadata } = committed.metadata;
  const course: StoredRun = { mode: "full", codeHash: hash, executed: run.finished, seconds: Math.round(run.seconds) };
  return `${JSON.stringify({ ...committed, cells, metadata: { ...metadata, course } }, null, 1)}\n`;
}

/** Consecutive pieces of one stream (e.g. text streamed token by token) as one output, as Jupyter shows them. */
function mergeStreams(outputs: NotebookOutput[]): NotebookOutput[] {
  const merged: NotebookOutput[] = [];
  for (const output of outputs) {
    const last = merged[merged.length - 1];
    if (output.output_type === "stream" && last?.output_type === "stream" && last.name === output.name) {
      merged[merged.length - 1] = { ...last, text: textOf(last.text) + textOf(output.text) };
    } else merged.push(output);
  }
  return merged;
}

function storedOutput(output: NotebookOutput, images: Map<string, Buffer>): NotebookOutput[] {
  const { transient: _transient, ...kept } = output;
  const html = textOf(output.data?.["text/html"]);
  if (html.includes(PLOTLY_LIBRARY_MARK)) return [];
  const figure = figureFromHtml(html);
  if (!figure) return [kept];
  const png = images.get(html);
  if (!png) throw new Error("a figure was not rendered");
  const title = (figure.layout.title as { text?: string } | undefined)?.text ?? "";
  return [
    {
      output_type: "display_data",
      data: { "image/png": png.toString("base64"), "text/plain": `<Figure: ${title}>` },
      metadata: {},
    },
  ];
}
