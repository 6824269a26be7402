/**
 * Draws course figures with plotly.js in headless Chromium (Debian's `chromium`, or $CHROMIUM), at the width of
 * a notebook's output area: PNG images for the stored notebooks (scripts/figures.ts), and the boxes of a
 * figure's texts for tests/figures-browser.test.ts (titles and tick labels that overlap or are cut off).
 */
import * as fs from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";
import type { Figure } from "gpt-course";

/** About the width of the output area of a notebook in Jupyter or on GitHub, in CSS pixels. */
export const OUTPUT_WIDTH = 900;

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** A text drawn in a figure, with its box in page pixels. */
export interface TextBox {
  kind: "title" | "annotation" | "xtick" | "ytick" | "axis title" | "legend" | "modebar" | "heatmap";
  text: string;
  left: number;
  top: number;
  right: number;
  bottom: number;
}

/**
 * Runs in the page: draws the figure and measures its texts. (Kept as source text: the bundler that runs
 * this file would wrap named functions in a helper that does not exist in the page.)
 */
const DRAW_IN_PAGE = `async function ({ data, layout, modeBar }) {
  const element = document.getElementById("figure");
  Plotly.purge(element);
  await Plotly.newPlot(element, data, layout, { displaylogo: false, displayModeBar: modeBar ? true : "hover" });
  // Automatic margins (titles, long tick labels) redraw the plot once more after newPlot resolves: wait for it.
  for (let frame = 0; frame < 3; frame++) await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 30)));
  const boxes = [];
  const add = (kind, selector) => {
    for (const node of element.querySelectorAll(selector)) {
      const box = node.getBoundingClientRect();
      const text = node.textContent || "";
      if (box.width > 0 && text.trim() !== "") boxes.push({ kind, text, left: box.left, top: box.top, right: box.right, bottom: box.bottom });
    }
  };
  add("title", ".gtitle");
  add("annotation", ".annotation-text");
  add("xtick", ".xtick text");
  add("ytick", ".ytick text");
  add("legend", ".legend .legendtext");
  add("axis title", ".g-xtitle text, .g-ytitle text, [class^='g-x'][class$='title'] text, [class^='g-y'][class$='title'] text");
  for (const image of element.querySelectorAll(".hm image")) {
    const box = image.getBoundingClientRect();
    boxes.push({ kind: "heatmap", text: "", left: box.left, top: box.top, right: box.right, bottom: box.bottom });
  }
  const modebar = element.querySelector(".modebar");
  if (modebar) {
    const box = modebar.getBoundingClientRect();
    boxes.push({ kind: "modebar", text: "", left: box.left, top: box.top, right: box.right, bottom: box.bottom });
  }
  return boxes;
}`;

export class FigureRenderer {
  private constructor(
    private readonly browser: Browser,
    private readonly page: Page,
  ) {}

  static async start(): Promise<FigureRenderer> {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(
        `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set CHROMIUM=/path/to/chrome.`,
      );
    }
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    const page = await browser.newPage({ viewport: { width: OUTPUT_WIDTH + 40, height: 800 } });
    await page.setContent(
      `<html><body style="margin:20px;background:#fff"><div id="figure" style="width:${OUTPUT_WIDTH}px"></div></body></html>`,
    );
    await page.addScriptTag({ path: require.resolve("plotly.js-dist-min/plotly.min.js") });
    return new FigureRenderer(browser, page);
  }

  /** Draws the figure (with Plotly's toolbar always shown if `modeBar`) and returns the boxes of its texts. */
  async draw(figure: Figure, { modeBar = false } = {}): Promise<TextBox[]> {
    const args = JSON.stringify({ data: figure.data, layout: figure.layout, modeBar });
    return this.page.evaluate(`(${DRAW_IN_PAGE})(${args})`) as Promise<TextBox[]>;
  }

  /** The figure as a PNG image, as a learner sees it before moving the mouse over it. */
  async render(figure: Figure): Promise<Buffer> {
    await this.draw(figure);
    return this.page.locator("#figure .svg-container").screenshot();
  }

  /** The box of the whole figure, in page pixels. */
  async frame(): Promise<{ left: number; top: number; right: number; bottom: number }> {
    return this.page.evaluate(() => {
      const box = document.querySelector("#figure .svg-container")!.getBoundingClientRect();
      return { left: box.left, top: box.top, right: box.right, bottom: box.bottom };
    });
  }

  async close(): Promise<void> {
    await this.browser.close();
  }
}
