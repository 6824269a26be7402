import { describe, expect, it } from "vitest";
import { barChart, figureHtml, groupedBarChart, heatmap, lossCurves } from "gpt-course";

describe("figures", () => {
  it("loss curves plot every step and every evaluation", () => {
    const history = {
      steps: [1, 2, 3].map((step) => ({
        step,
        loss: 4 - step,
        learningRate: 1e-3,
        gradientNorm: 1,
        tokensPerSecond: 100,
      })),
      evals: [{ step: 3, train: 1.1, validation: 1.3 }],
    };
    const figure = lossCurves(history);
    expect(figure.data.map((trace) => trace.name)).toEqual(["training batch", "train (estimate)", "validation"]);
    expect(figure.data[0].y).toEqual([3, 2, 1]);
    expect(figure.data[2]).toMatchObject({ x: [3], y: [1.3] });
  });

  it("heatmaps keep repeated token labels apart and draw rows top to bottom", () => {
    const figure = heatmap(
      [
        [1, 0],
        [0.5, 0.5],
      ],
      { xLabels: ["the", "the"], yLabels: ["a", "b"] },
    );
    const x = figure.data[0].x as string[];
    expect(new Set(x).size).toBe(2);
    expect(x[0]).toBe("the");
    expect((figure.layout.yaxis as { autorange: string }).autorange).toBe("reversed");
  });

  it("grouped bars: one trace per series over the same categories, values written on the bars when asked", () => {
    const figure = groupedBarChart(["a", "b"], { before: [10, 20], after: [30, 40] }, { labelBars: (v) => `${v}%` });
    expect(figure.data.map((trace) => [trace.name, trace.x, trace.y, trace.text])).toEqual([
      ["before", ["a", "b"], [10, 20], ["10%", "20%"]],
      ["after", ["a", "b"], [30, 40], ["30%", "40%"]],
    ]);
    expect(figure.layout).toMatchObject({ barmode: "group", showlegend: true });
    expect(groupedBarChart(["a"], { only: [1] }).data[0].text).toBeUndefined();
  });

  it("figure HTML is safe to embed: a closing script tag in a label cannot end the script", () => {
    const html = figureHtml(barChart(["</script><b>x</b>", "y"], [1, 2]), "fig-1");
    expect(html).toContain('id="fig-1"');
    expect(html.match(/<\/script>/g)).toHaveLength(1);
    expect(html).toContain("Plotly.newPlot");
  });
});
