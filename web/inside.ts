/**
 * "See inside": for one token of a reply, what the model computed when it wrote it. The model is run once
 * more on the tokens it saw at that moment (without the KV cache, so that every attention weight is
 * there), and gives back
 *   - the probabilities of the next token: the candidates it weighed;
 *   - for every layer, each head's attention from the last position over the context: where it looked.
 * The figures are lib's own (lib/viz/figures.ts), so they look like the notebooks'.
 */
import * as tf from "@tensorflow/tfjs";
import { nextTokenProbabilities } from "../lib/generation/sampling.ts";
import type { GPT } from "../lib/models/gpt.ts";
import type { Tokenizer } from "../lib/tokenizers/tokenizer.ts";
import { barChart, type Figure, heatmap, HEATMAP_COLOURS } from "../lib/viz/figures.ts";

export interface Inside {
  /** The tokens the model saw (the last contextLength of them). */
  context: number[];
  /** The most likely next tokens with the model's own probabilities (temperature 1, nothing cut), most likely first. */
  candidates: Array<{ token: number; probability: number }>;
  /** attention[layer][head][position]: how much the last position attends to each position of the context. */
  attention: number[][][];
}

/** What the model computes for the token after `tokens`; `count` candidates are kept. */
export async function lookInside(model: GPT, tokens: readonly number[], count = 10): Promise<Inside> {
  const context = tokens.slice(-model.config.contextLength);
  const T = context.length;
  const { vocabSize, numHeads } = model.config;
  const weights: tf.Tensor[] = []; // one (1, numHeads, T, T) map per layer, pushed by the forward pass
  const [lastLogits, lastRows] = tf.tidy(() => {
    const logits = model.forward(tf.tensor2d([context], [1, T], "int32"), { attentionWeights: weights });
    // Only the last position writes the next token: its row of each map, (layers, heads, T).
    const rows = tf.stack(
      weights.map((map) => map.slice([0, 0, T - 1, 0], [1, numHeads, 1, T]).reshape([numHeads, T])),
    );
    return [logits.slice([0, T - 1, 0], [1, 1, vocabSize]).reshape([vocabSize]), rows];
  });
  tf.dispose(weights);
  try {
    const [logits, attention] = await Promise.all([lastLogits.data(), lastRows.array() as Promise<number[][][]>]);
    const probabilities = nextTokenProbabilities(logits);
    const ranked = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const candidates = ranked.slice(0, count).map((token) => ({ token, probability: probabilities[token] }));
    return { context, candidates, attention };
  } finally {
    tf.dispose([lastLogits, lastRows]);
  }
}

/** A token as a readable label: spaces and line breaks made visible, as in the notebooks. */
export function tokenLabel(tokenizer: Tokenizer, token: number): string {
  const text = tokenizer.decode([token]);
  return text === "" ? `#${token}` : text.replace(/ /g, "␣").replace(/\n/g, "⏎").replace(/\t/g, "⇥");
}

const CHOSEN_COLOUR = "#ff7f0e"; // Plotly's orange, against its default blue
const OTHER_COLOUR = "#1f77b4";

/** Bars of the candidates' probabilities; the token that was written, if among them, in orange. */
export function probabilityFigure(inside: Inside, tokenizer: Tokenizer, written: number | undefined): Figure {
  const labels = inside.candidates.map(({ token }) => tokenLabel(tokenizer, token));
  const writtenLabel = written === undefined ? "" : ` ("${tokenLabel(tokenizer, written)}" written, in orange)`;
  const figure = barChart(
    labels,
    inside.candidates.map(({ probability }) => probability),
    {
      title: `The ${labels.length} likeliest next tokens${writtenLabel}`,
      yTitle: "probability",
    },
  );
  const probabilities = inside.candidates.map(({ probability }) => probability);
  Object.assign(figure.data[0], {
    marker: { color: inside.candidates.map(({ token }) => (token === written ? CHOSEN_COLOUR : OTHER_COLOUR)) },
    text: probabilities.map((p) => (p >= 0.1 ? p.toFixed(2) : p.toPrecision(2))), // the values, readable at any scale
    textposition: "outside",
    cliponaxis: false,
    hovertemplate: "%{x}: %{y:.4f}<extra></extra>",
  });
  // From 0 to a little above the tallest bar: an unsure model's bars stay visible (a fixed 0-1 hides them)
  figure.layout.yaxis = {
    ...(figure.layout.yaxis as object),
    range: [0, Math.min(1, Math.max(...probabilities)) * 1.15],
  };
  figure.layout.height = 320;
  return figure;
}

/**
 * One row per head: how much the position writing the next token attends to each token of the context.
 * White is weight 0, dark blue weight 1, as in the notebooks: a head that spreads its attention thinly
 * (as an untrained one does) stays pale, a head that looks at one token shows it in dark blue.
 */
export function attentionFigure(inside: Inside, tokenizer: Tokenizer, layer: number): Figure {
  const rows = inside.attention[layer];
  const figure = heatmap(rows, {
    title: `Layer ${layer}: where each head looks while writing the next token`,
    xLabels: inside.context.map((token) => tokenLabel(tokenizer, token)),
    yLabels: rows.map((_, head) => `head ${head}`),
    xTitle: "the tokens it sees (oldest first)",
    colorscale: HEATMAP_COLOURS,
    zmin: 0,
    zmax: 1,
  });
  figure.data[0].hovertemplate = "%{y}, token %{x}: %{z:.3f}<extra></extra>";
  return figure;
}
