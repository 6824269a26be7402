/**
 * The course's figures drawn by plotly.js in headless Chromium, as a learner sees them in a notebook: no title
 * under Plotly's toolbar, no title on top of tick labels, nothing cut off at the figure's edges.
 * (Chromium: Debian's `chromium`, which .ci/run installs; or $CHROMIUM.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { barChart, type Figure, groupedBarChart, heatmap, lineChart, sideBySide } from "gpt-course";
import { FigureRenderer, type TextBox } from "../scripts/figure-renderer.js";

const tokens = ["Fellow", "-", "Citizens", " of", " the", " Senate", " and", " House"];
const attention = tokens.map((_, i) => tokens.map((_, j) => (j <= i ? 1 / (i + 1) : 0)));
const characters = "The capital of France".split("");
const charAttention = characters.map((_, i) => characters.map((_, j) => (j <= i ? 1 / (i + 1) : 0)));
const longTitle = 'The 10 most likely next tokens after "The capital of France is" (uniform would be 1/V = 1.99e-5)';

const figures: Record<string, Figure> = {
  "a bar chart with a long title": barChart(["a", "b", "c"], [1, 2, 3], { title: longTitle, yTitle: "probability" }),
  "grouped bars with values on them": groupedBarChart(
    ["addition", "subtraction", "capital", "continent", "two-questions"],
    {
      "fine-tuned (SFT)": [87.5, 1, 93.5, 38, 18.5],
      "SFT + RL": [91.5, 1, 94, 38, 19],
      "SFT + DPO": [86, 2, 91, 39, 18],
    },
    {
      title: "Held-out exact match per task",
      yTitle: "% correct",
      yRange: [0, 110],
      labelBars: (v) => `${v.toFixed(0)}%`,
    },
  ),
  "a line chart": lineChart(
    { loss: { x: [1, 2, 3], y: [3, 2, 1] } },
    { title: "Pretraining loss", xTitle: "step", yTitle: "nats" },
  ),
  "a heatmap of tokens": heatmap(attention, {
    title: longTitle,
    xLabels: tokens,
    yLabels: tokens,
    xTitle: "key",
    yTitle: "query",
    zmin: 0,
    zmax: 1,
  }),
  "a heatmap of characters": heatmap(charAttention, {
    title: "Block 0, head 0",
    xLabels: characters,
    yLabels: characters,
    zmin: 0,
    zmax: 1,
  }),
  "attention maps side by side": sideBySide(
    [0, 1, 2].map((head) =>
      heatmap(attention, {
        title: `head ${head}: the previous token`,
        xLabels: tokens,
        yLabels: tokens,
        xTitle: "key",
        yTitle: "query",
      }),
    ),
    "Three hand-built heads",
    { zmin: 0, zmax: 1 },
  ),
  "heatmaps of different sizes side by side": sideBySide(
    [
      heatmap(attention, { title: "sequence 1", xLabels: tokens, yLabels: tokens, xTitle: "key", yTitle: "query" }),
      heatmap(charAttention, {
        title: "sequence 2",
        xLabels: characters,
        yLabels: characters,
        xTitle: "key",
        yTitle: "query",
      }),
    ],
    longTitle,
  ),
  "line charts side by side, with a legend": sideBySide(
    [
      lineChart(
        { q·k: { x: [1, 10, 100], y: [1, 10, 100] }, "q·k / √d_k": { x: [1, 10, 100], y: [1, 1, 1] } },
        { title: "variance of the score", xTitle: "d_k", yTitle: "variance" },
      ),
      lineChart(
        {
          "without √d_k": { x: [1, 10, 100], y: [0.2, 0.5, 0.9] },
          "with √d_k": { x: [1, 10, 100], y: [0.2, 0.2, 0.2] },
        },
        { title: "largest weight", xTitle: "d_k", yTitle: "weight" },
      ),
      lineChart(
        {
          "without √d_k": { x: [1, 10, 100], y: [0.3, 0.2, 0.1] },
          "with √d_k": { x: [1, 10, 100], y: [0.3, 0.3, 0.3] },
        },
        { title: "gradient", xTitle: "d_k", yTitle: "size" },
      ),
    ],
    "Scores grow with the head size unless scaled",
  ),
  "bar charts side by side": sideBySide(
    [
      barChart(tokens, [5, 4, 3, 2, 1, 1, 1, 1], { title: "GPT-2: % of all tokens" }),
      barChart(characters.slice(0, 8), [5, 4, 3, 2, 1, 1, 1, 1], { title: "ours: % of all tokens" }),
    ],
    "The most frequent tokens",
  ),
};

const overlap = (a: TextBox, b: TextBox) =>
  a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
const describeBox = (box: TextBox) =>
  `${box.kind} "${box.text}" [${[box.left, box.top, box.right, box.bottom].map(Math.round).join(", ")}]`;

describe("figures in a browser", () => {
  let renderer: FigureRenderer;
  beforeAll(async () => {
    renderer = await FigureRenderer.start();
  }, 60_000);
  afterAll(async () => {
    await renderer?.close();
  });

  for (const [name, figure] of Object.entries(figures)) {
    it(`${name}: no text overlaps another, the toolbar or the figure's edge`, async () => {
      const boxes = await renderer.draw(figure, { modeBar: true });
      const frame = await renderer.frame();
      const labels = boxes.filter((box) => box.kind !== "modebar" && box.kind !== "heatmap");
      expect(labels.some((box) => box.kind === "title")).toBe(true);
      const problems: string[] = [];
      for (const [i, a] of labels.entries()) {
        for (const b of [...labels.slice(i + 1), ...boxes.filter((box) => box.kind === "modebar")]) {
          const sameAxisTicks = a.kind === b.kind && (a.kind === "xtick" || a.kind === "ytick");
          if (!sameAxisTicks && overlap(a, b)) problems.push(`${describeBox(a)} overlaps ${describeBox(b)}`);
        }
      }
      for (const box of labels) {
        const inside =
          box.left >= frame.left - 0.5 &&
          box.right <= frame.right + 0.5 &&
          box.top >= frame.top - 0.5 &&
          box.bottom <= frame.bottom + 0.5;
        if (!inside) problems.push(`${describeBox(box)} is cut off by the figure's edge`);
      }
      expect(problems).toEqual([]);
    });
  }

  it("a heatmap's rows sit at their labels (a long title once shifted the cells against the labels by a row)", async () => {
    const rows = 41;
    const matrix = Array.from({ length: rows }, (_, i) => Array.from({ length: rows }, (_, j) => (j <= i ? 1 : 0)));
    const boxes = await renderer.draw(
      heatmap(matrix, { title: longTitle, xTitle: "key", yTitle: "query", zmin: 0, zmax: 1 }),
    );
    const image = boxes.find((box) => box.kind === "heatmap")!;
    const cell = (image.bottom - image.top) / rows;
    const ticks = boxes.filter((box) => box.kind === "ytick");
    const centre = (box: TextBox) => (box.top + box.bottom) / 2;
    const first = ticks.find((box) => box.text === "0")!;
    const last = ticks.find((box) => box.text === String(rows - 1))!;
    expect(Math.abs(centre(first) - (image.top + cell / 2))).toBeLessThan(cell / 4);
    expect(Math.abs(centre(last) - (image.bottom - cell / 2))).toBeLessThan(cell / 4);
  });

  it("side-by-side line charts name each series once in the legend, in one colour across panels", async () => {
    const figure = figures["line charts side by side, with a legend"];
    const boxes = await renderer.draw(figure);
    expect(boxes.filter((box) => box.kind === "legend").map((box) => box.text)).toEqual([
      "q·k",
      "q·k / √d_k",
      "without √d_k",
      "with √d_k",
    ]);
    const colours = (name: string) =>
      new Set(
        figure.data.filter((trace) => trace.name === name).map((trace) => (trace.line as { color: string }).color),
      );
    expect(colours("with √d_k").size).toBe(1);
    expect(colours("with √d_k")).not.toEqual(colours("without √d_k"));
  });

  it("side-by-side panels keep their axis titles and show each panel's title", async () => {
    const boxes = await renderer.draw(figures["heatmaps of different sizes side by side"]);
    expect(boxes.filter((box) => box.kind === "axis title").map((box) => box.text)).toEqual(
      expect.arrayContaining(["key", "query"]),
    );
    expect(boxes.filter((box) => box.kind === "annotation").map((box) => box.text)).toEqual([
      "sequence 1",
      "sequence 2",
    ]);
  });
});
