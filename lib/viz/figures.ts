import type { TrainingHistory } from "../training/trainer.js";

/**
 * Plotly figures as plain data: `{ data: traces, layout }`, exactly what `Plotly.newPlot` takes. Building
 * them is separate from showing them (notebook.ts), so they can be tested and reused in a web page.
 */
export interface Figure {
  data: Array<Record<string, unknown>>;
  layout: Record<string, unknown>;
}

/**
 * The title: left-aligned at the top, wrapped to lines of at most 60 characters so that it never runs under
 * Plotly's toolbar (which appears at the top right when the mouse is over a figure), with a top margin that
 * fits its lines. (Plotly centres a title of several lines on where one line would be, whatever its anchor:
 * the larger pad puts the first line where a single line goes. tests/figures-browser.test.ts checks it.)
 */
function titleLayout(title: string, extraTop = 0): { title: Record<string, unknown>; top: number } {
  const text = wrapText(title, 60);
  const lines = title ? text.split("<br>").length : 0;
  return {
    title: {
      text,
      x: 0,
      xanchor: "left",
      xref: "paper",
      y: 1,
      yanchor: "top",
      yref: "container",
      pad: { t: lines > 1 ? 22 : 10 },
    },
    top: 20 + 21 * lines + extraTop,
  };
}

const baseLayout = (title: string, extra: Record<string, unknown> = {}): Record<string, unknown> => {
  const { title: titleSpec, top } = titleLayout(title);
  return { title: titleSpec, margin: { l: 60, r: 20, t: top, b: 50 }, height: 380, ...extra };
};

/** Breaks text at spaces into lines of at most `width` characters, joined with Plotly's <br>. */
export function wrapText(text: string, width: number): string {
  const lines: string[] = [];
  for (const word of text.split(" ")) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= width) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines.join("<br>");
}

/** One line per series, e.g. { train: [...], validation: [...] } against shared or per-series x values. */
export function lineChart(
  series: Record<string, { x: number[]; y: number[] }>,
  options: { title?: string; xTitle?: string; yTitle?: string; logX?: boolean; logY?: boolean } = {},
): Figure {
  return {
    data: Object.entries(series).map(([name, { x, y }]) => ({ type: "scatter", mode: "lines", name, x, y })),
    layout: baseLayout(options.title ?? "", {
      xaxis: { title: { text: options.xTitle ?? "" }, type: options.logX ? "log" : "linear", automargin: true },
      yaxis: { title: { text: options.yTitle ?? "" }, type: options.logY ? "log" : "linear", automargin: true },
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

/** The course's colour scale for heatmaps: white for the smallest value (e.g. weight 0), dark blue for the largest. */
export const HEATMAP_COLOURS: Array<[number, string]> = [
  [0, "#ffffff"],
  [1, "#08306b"],
];

/** For values around 0 (use with zmin = -zmax): red below 0, white at 0, blue above. */
export const DIVERGING_COLOURS: Array<[number, string]> = [
  [0, "#b2182b"],
  [0.5, "#ffffff"],
  [1, "#2166ac"],
];

/**
 * A matrix as a heatmap; rows top to bottom, like the matrix is written. Attention maps
 * use this with zmin 0 and zmax 1: white is weight 0, dark blue weight 1.
 */
export function heatmap(
  matrix: number[][],
  options: {
    title?: string;
    xLabels?: string[];
    yLabels?: string[];
    xTitle?: string;
    yTitle?: string;
    /** [position, colour] stops from zmin to zmax; default HEATMAP_COLOURS (white to dark blue), or DIVERGING_COLOURS */
    colorscale?: Array<[number, string]>;
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
        colorscale: options.colorscale ?? HEATMAP_COLOURS,
        zmin: options.zmin,
        zmax: options.zmax,
      },
    ],
    layout: baseLayout(options.title ?? "", {
      xaxis: { title: { text: options.xTitle ?? "" }, type: "category", automargin: true },
      yaxis: { title: { text: options.yTitle ?? "" }, autorange: "reversed", type: "category", automargin: true },
      height: Math.max(300, 120 + 22 * y.length),
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
      xaxis: { title: { text: options.xTitle ?? "" }, type: "category", automargin: true },
      yaxis: { title: { text: options.yTitle ?? "" }, automargin: true },
    }),
  };
}

/**
 * Bars of several series side by side in each category, e.g. { "before": [...], "after": [...] } per task. With
 * `labelBars`, each bar carries its value as text above it (formatted by the function).
 */
export function groupedBarChart(
  labels: string[],
  series: Record<string, number[]>,
  options: {
    title?: string;
    xTitle?: string;
    yTitle?: string;
    yRange?: [number, number];
    labelBars?: (value: number) => string;
  } = {},
): Figure {
  const { labelBars } = options;
  return {
    data: Object.entries(series).map(([name, values]) => ({
      type: "bar",
      name,
      x: uniqueLabels(labels),
      y: values,
      ...(labelBars ? { text: values.map(labelBars), textposition: "outside", cliponaxis: false } : {}),
    })),
    layout: baseLayout(options.title ?? "", {
      barmode: "group",
      showlegend: true,
      xaxis: { title: { text: options.xTitle ?? "" }, type: "category", automargin: true },
      yaxis: {
        title: { text: options.yTitle ?? "" },
        automargin: true,
        ...(options.yRange ? { range: options.yRange } : {}),
      },
    }),
  };
}

/**
 * Several figures in one row, each keeping its own axes and axis titles; each panel's title sits above it.
 * Heatmaps share one colour scale (zmin and zmax: given, else the range of all their values) with one colour
 * bar at the right, so that equal colours mean equal values in every panel.
 */
export function sideBySide(
  figures: Figure[],
  title = "",
  options: { zmin?: number; zmax?: number; height?: number } = {},
): Figure {
  const n = figures.length;
  const heatmaps = figures.flatMap((figure) => figure.data).filter((trace) => trace.type === "heatmap");
  const values = heatmaps.flatMap((trace) => (trace.z as number[][]).flat());
  const zmin = options.zmin ?? Math.min(...values);
  const zmax = options.zmax ?? Math.max(...values);
  // Panels with the same row labels (e.g. attention maps of one sentence) show them once, at the left;
  // otherwise the gap between panels leaves room for each panel's row labels and axis title.
  const rowLabels = (figure: Figure) =>
    JSON.stringify([figure.data[0]?.y, (figure.layout.yaxis as { title?: unknown })?.title]);
  const sharedRows = figures.every(
    (figure) => figure.data[0]?.type === "heatmap" && rowLabels(figure) === rowLabels(figures[0]),
  );
  const longestRowLabel = Math.max(
    0,
    ...figures
      .slice(1)
      .flatMap((figure) =>
        figure.data.flatMap((trace) =>
          (trace.type === "heatmap" ? (trace.y as string[]) : []).map((label) => label.length),
        ),
      ),
  );
  const gapPixels = sharedRows ? 24 : 60 + 7 * longestRowLabel;
  const gap = Math.min(0.2, gapPixels / 780); // as a fraction of the plotting width (about 780 px in a notebook)
  const width = (1 - gap * (n - 1)) / n;
  const { title: titleSpec, top } = titleLayout(title, 26); // and a line for the panel titles
  const layout: Record<string, unknown> = {
    title: titleSpec,
    margin: { l: 60, r: 20, t: top, b: 20 },
    height: options.height ?? Math.max(...figures.map((figure) => Number(figure.layout.height ?? 380))) + 40,
    showlegend: false,
    annotations: [],
  };
  const annotations = layout.annotations as Array<Record<string, unknown>>;
  const data = figures.flatMap((figure, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    const domain = [i * (width + gap), i * (width + gap) + width];
    layout[`xaxis${suffix}`] = { ...(figure.layout.xaxis as object), domain, anchor: `y${suffix}`, automargin: true };
    const hideRows = sharedRows && i > 0 ? { showticklabels: false, title: { text: "" } } : {};
    layout[`yaxis${suffix}`] = {
      ...(figure.layout.yaxis as object),
      anchor: `x${suffix}`,
      automargin: true,
      ...hideRows,
    };
    const panelTitle = (figure.layout.title as { text?: string } | undefined)?.text ?? "";
    annotations.push({
      text: panelTitle,
      xref: `x${suffix} domain`,
      yref: `y${suffix} domain`,
      x: 0.5,
      y: 1,
      xanchor: "center",
      yanchor: "bottom",
      yshift: 6,
      showarrow: false,
      font: { size: 14 },
    });
    return figure.data.map((trace) => {
      const placed: Record<string, unknown> = { ...trace, xaxis: `x${suffix}`, yaxis: `y${suffix}` };
      if (trace.type === "heatmap") Object.assign(placed, { zmin, zmax, showscale: i === n - 1 });
      else Object.assign(placed, seriesStyle(trace));
      return placed;
    });
  });
  // Lines and bars: one colour per series name across all panels (one colour for unnamed ones), and a legend
  // below the panels with each name once.
  const named = data.filter((trace) => trace.type !== "heatmap" && trace.name);
  if (named.length > 0) {
    layout.showlegend = true;
    layout.legend = { orientation: "h", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom" };
    layout.margin = { ...(layout.margin as object), b: 100 }; // the axes' labels and titles, then the legend
    layout.height = Number(layout.height) + 40;
  }
  const seen = new Set<unknown>();
  for (const trace of named) {
    trace.showlegend = !seen.has(trace.name);
    seen.add(trace.name);
  }
  if (heatmaps.length > 0) layout.margin = { ...(layout.margin as object), r: 90 };
  return { data, layout };

  /** The same colour for the same series name in every panel (Plotly would colour by trace number). */
  function seriesStyle(trace: Record<string, unknown>): Record<string, unknown> {
    const names = [...new Set(figures.flatMap((figure) => figure.data.map((t) => t.name)).filter(Boolean))];
    const colour = PALETTE[Math.max(0, names.indexOf(trace.name)) % PALETTE.length];
    const style =
      trace.type === "bar"
        ? { marker: { color: colour, ...(trace.marker as object) } }
        : { line: { color: colour, ...(trace.line as object) } };
    return { ...style, legendgroup: trace.name ?? "" };
  }
}

/** Plotly's default colours, in its order. */
const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

function uniqueLabels(labels: string[]): string[] {
  const seen = new Map<string, number>();
  return labels.map((label) => {
    const count = seen.get(label) ?? 0;
    seen.set(label, count + 1);
    return count === 0 ? label : label + "\u200B".repeat(count);
  });
}
