import * as fs from "node:fs";
import type { Figure } from "./figures.js";

/**
 * Showing Plotly figures in a Jupyter notebook run by the tslab kernel.
 *
 * A figure is an HTML output: a <div> and a script that calls Plotly.newPlot. The plotly.js library
 * (4.8 MB) is sent once per kernel, as its own output before the first figure, so every later figure is
 * only a few KB; the same holds in a notebook exported to HTML, where outputs run in order.
 */
interface NotebookDisplay {
  html(html: string): void;
}
interface Tslab {
  display: NotebookDisplay;
  newDisplay(): NotebookDisplay;
}

/** Attributes that let tools find the outputs again (scripts/figures.ts turns figures into PNG images). */
export const FIGURE_MARK = 'class="course-figure"';
export const PLOTLY_LIBRARY_MARK = 'data-course="plotly-library"';

let plotlySent = false;
let figureCount = 0;

function tslab(): Tslab {
  try {
    return require("tslab") as Tslab;
  } catch {
    throw new Error("Figures can be shown only inside a Jupyter notebook with the tslab kernel (npm start).");
  }
}

function ensurePlotly(display: NotebookDisplay): void {
  if (plotlySent) return;
  const library = fs.readFileSync(require.resolve("plotly.js-dist-min/plotly.min.js"), "utf8");
  display.html(
    `<script type="text/javascript" ${PLOTLY_LIBRARY_MARK}>${library.replace(/<\/script/gi, "<\\/script")}</script>`,
  );
  plotlySent = true;
}

/** The HTML of one figure: a div and the script that draws into it (plotly.js must be on the page). */
export function figureHtml(figure: Figure, id = `figure-${process.pid}-${++figureCount}`): string {
  const spec = JSON.stringify({
    data: figure.data,
    layout: figure.layout,
    config: { responsive: true, displaylogo: false },
  });
  return (
    `<div id="${id}" ${FIGURE_MARK} style="width:100%;min-height:${Number(figure.layout.height ?? 380)}px"></div>` +
    `<script type="text/javascript">(function(){var s=${spec.replace(/<\//g, "<\\/")};` +
    `function draw(){if(window.Plotly){window.Plotly.newPlot("${id}",s.data,s.layout,s.config);}else{setTimeout(draw,50);}}draw();})();</script>`
  );
}

/** The figure inside an output written by `figureHtml`, or undefined for any other HTML. */
export function figureFromHtml(html: string): Figure | undefined {
  if (!html.includes(FIGURE_MARK)) return undefined;
  const spec = /var s=(\{.*?\});function draw\(\)/s.exec(html);
  if (!spec) return undefined;
  const { data, layout } = JSON.parse(spec[1]) as Figure; // `<\/` is a valid JSON escape of `</`
  return { data, layout };
}

/** Shows a figure as a new output of the current cell. */
export function showFigure(figure: Figure): void {
  const { display } = tslab();
  ensurePlotly(display);
  display.html(figureHtml(figure));
}

/**
 * A figure that redraws in place: call `update(figure)` as often as you like (e.g. from the Trainer's
 * onStep callback) and the same output is replaced, giving a live loss curve.
 */
export function liveFigure(): { update(figure: Figure): void } {
  const lib = tslab();
  ensurePlotly(lib.display);
  const output = lib.newDisplay();
  const id = `live-${process.pid}-${++figureCount}`;
  return { update: (figure) => output.html(figureHtml(figure, id)) };
}

/** Text made safe to put inside HTML. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** An HTML table: numbers right-aligned with thousands separators, text in monospace with its line breaks kept. */
export function tableHtml(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cell = (value: string | number) =>
    typeof value === "number"
      ? `<td style="text-align:right">${value.toLocaleString("en-US")}</td>`
      : `<td style="text-align:left;white-space:pre-wrap;font-family:monospace">${escapeHtml(value)}</td>`;
  const head = headers.map((header) => `<th style="text-align:left">${escapeHtml(header)}</th>`).join("");
  const body = rows.map((row) => `<tr>${row.map(cell).join("")}</tr>`).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** Shows rows as a table output of the current cell. */
export function showTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): void {
  tslab().display.html(tableHtml(headers, rows));
}
