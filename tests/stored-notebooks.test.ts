/**
 * The notebooks are committed with the outputs of a full-mode run (`npm run notebooks:store`), so that GitHub
 * and other viewers show every result and figure. Those outputs must belong to the committed code, hold no
 * error, and show each figure as an image (viewers run no JavaScript).
 */
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { FIGURE_MARK, PLOTLY_LIBRARY_MARK } from "gpt-course";
import { codeHash, readNotebook, textOf } from "../scripts/notebook-outputs.js";

const notebooksDir = resolve(__dirname, "..", "notebooks");
const notebooks = readdirSync(notebooksDir)
  .filter((file) => file.endsWith(".ipynb"))
  .sort();
const regenerate = (file: string) =>
  `run \`npm run notebooks:store -- --notebook ${file.slice(0, 2)}\` to store fresh outputs`;

describe.each(notebooks)("stored outputs of %s", (file) => {
  const path = join(notebooksDir, file);
  const notebook = readNotebook(path);
  const codeCells = notebook.cells
    .map((cell, index) => ({ cell, index }))
    .filter(({ cell }) => cell.cell_type === "code");

  it("were made by a full-mode run of the committed code cells", () => {
    const run = notebook.metadata.course;
    expect(run, `${file} has no stored outputs: ${regenerate(file)}`).toBeDefined();
    expect(run!.mode).toBe("full");
    expect(run!.codeHash, `${file}: its code cells changed since its outputs were stored: ${regenerate(file)}`).toBe(
      codeHash(notebook),
    );
    for (const { cell, index } of codeCells) {
      if (textOf(cell.source).trim() === "") continue;
      expect(cell.execution_count, `${file} cell ${index} was not executed`).toEqual(expect.any(Number));
    }
  });

  it("hold no error", () => {
    for (const { cell, index } of codeCells) {
      for (const output of cell.outputs ?? []) {
        expect(output.output_type, `${file} cell ${index} stored an error`).not.toBe("error");
        if (output.output_type === "stream" && output.name === "stderr") {
          expect(textOf(output.text), `${file} cell ${index} wrote an error to stderr`).not.toMatch(
            /error|exception|traceback/i,
          );
        }
      }
    }
  });

  it("show every figure as an image, without plotly.js, in a file of reasonable size", () => {
    for (const { cell, index } of codeCells) {
      const outputs = cell.outputs ?? [];
      for (const output of outputs) {
        const html = textOf(output.data?.["text/html"]);
        expect(html.includes(FIGURE_MARK), `${file} cell ${index} stored an interactive figure, not its image`).toBe(
          false,
        );
        expect(html.includes(PLOTLY_LIBRARY_MARK), `${file} cell ${index} stored the plotly.js library`).toBe(false);
      }
      if (/\bshowFigure\(|\bliveFigure\(/.test(textOf(cell.source))) {
        expect(
          outputs.some((output) => output.data?.["image/png"]),
          `${file} cell ${index} draws a figure but stored no image`,
        ).toBe(true);
      }
    }
    expect(statSync(path).size, `${file} is too large`).toBeLessThan(2_000_000);
  });
});
