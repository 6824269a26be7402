import type { TrainingHistory } from "../training/trainer.js";

/**
 * Plotly figures as plain data: `{ data: traces, layout }`, exactly what `Plotly.newPlot` takes. Building
 * them is separate from showing them (notebook.ts), so they can be tested and reused in a web page.
 */
export interface Figure {
  data: Array<Record<string, unknown>>;
  layout: Record<string, unknown>;
}

const baseLayout = (title: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  title: { text: title },
  margin: { l: 60, r: 20, t: 50, b: 50 },
  height: 380,
  ...extra,
});

/** One line per series, e.g. { train: [...], validation: [...] } against shared or per-series x values. */
export function lineChart(
  series: Record<string, { x: number[]; y: number[] }>,
  options: { title?: string; xTitle?: string; yTitle?: string; logX?: boolean; logY?: boolean } = {},
): Figure {
  return {
    data: Object.entries(series).map(([name, { x, y }]) => ({ type: "scatter", mode: "lines", name, x, y })),
    layout: baseLayout(options.title ?? "", {
      xaxis: { title: { text: options.xTitle ?? "" }, type: options.logX ? "log" : "linear" },
      yaxis: { title: { text: options.yTitle ?? "" }, type: options.logY ? "log" : "linear" },
    }),
  };
}

/** Training loss per step, with the periodic train and validation estimates on top. */
export function lossCurves(history: TrainingHistory, title = "Loss"): Figure {
  return lineChart(
    {
      "training batch": { x: history.steps.map((s) => s.step), y: history.steps.map((s) => s.loss) },
      "train (estimate)": { x: history.evals.map((e) => e.step), y: history.evals.map((e) => e.train) },
      validation: { x: history.evals.map((e) => e.step), y: history.evals.map((e) => e.validation) },
    },
    { title, xTitle: "step", yTitle: "cross-entropy (nats)" },
  );
}

/** A matrix as a heatmap; rows top to bottom, like the matrix is written. Attention maps use this. */
export function heatmap(
  matrix: number[][],
  options: {
    title?: string;
    xLabels?: string[];
    yLabels?: string[];
    xTitle?: string;
    yTitle?: string;
    /** A Plotly scale name or [position, colour] stops; default white (0) to dark blue (max). */
    colorscale?: string | Array<[number, string]>;
    zmin?: number;
    zmax?: number;
  } = {},
): Figure {
  const columns = matrix[0]?.length ?? 0;
  const x = options.xLabels ?? Array.from({ length: columns }, (_, i) => String(i));
  const y = options.yLabels ?? matrix.map((_, i) => String(i));
  return {
    data: [
      {
        type: "heatmap",
        z: matrix,
        // Plotly merges repeated category labels; a zero-width space per position keeps every token its own column.
        x: uniqueLabels(x),
        y: uniqueLabels(y),
        colorscale: options.colorscale ?? [[0, "#ffffff"], [1, "#08306b"]],
        zmin: options.zmin,
        zmax: options.zmax,
      },
    ],
    layout: baseLayout(options.title ?? "", {
      xaxis: { title: { text: options.xTitle ?? "" }, side: "top", type: "category" },
      yaxis: { title: { text: options.yTitle ?? "" }, autorange: "reversed", type: "category" },
      height: Math.max(300, 40 + 22 * y.length),
    }),
  };
}

/** Bars with category labels, e.g. a next-token distribution. */
export function barChart(
  labels: string[],
  values: number[],
  options: { title?: string; xTitle?: string; yTitle?: string; name?: string } = {},
): Figure {
  return {
    data: [{ type: "bar", x: uniqueLabels(labels), y: values, name: options.name ?? "" }],
    layout: baseLayout(options.title ?? "", {
      xaxis: { title: { text: options.xTitle ?? "" }, type: "category" },
      yaxis: { title: { text: options.yTitle ?? "" } },
    }),
  };
}

/** Several figures' traces side by side in one row (each trace keeps its own axis). */
export function sideBySide(figures: Figure[], title = ""): Figure {
  const n = figures.length;
  const layout: Record<string, unknown> = baseLayout(title, { grid: { rows: 1, columns: n, pattern: "independent" }, showlegend: false });
  const data = figures.flatMap((figure, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    // Each panel's own title goes under its x axis; only the first heatmap keeps a colour bar.
    layout[`xaxis${suffix}`] = { ...(figure.layout.xaxis as object), side: "bottom", title: (figure.layout.title as object) ?? {} };
    layout[`yaxis${suffix}`] = figure.layout.yaxis;
    return figure.data.map((trace) => ({ ...trace, xaxis: `x${suffix}`, yaxis: `y${suffix}`, ...(i > 0 ? { showscale: false } : {}) }));
  });
  return { data, layout };
}

function uniqueLabels(labels: string[]): string[] {
  const seen = new Map<string, number>();
  return labels.map((label) => {
    const count = seen.get(label) ?? 0;
    seen.set(label, count + 1);
    return count === 0 ? label : label + "\u200B".repeat(count);
  });
}
