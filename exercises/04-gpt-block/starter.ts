/**
 * Exercise 04-gpt-block: GPT-2's Transformer block. Read README.md in this folder, fill in the TODOs, then
 * check your work with `npm run exercise -- 04-gpt-block`.
 */
import {
  type LayerNorm,
  type Linear,
  Module,
  type MultiHeadAttention,
  type MultiHeadAttentionConfig,
  type Random,
  type tf,
} from "gpt-course";
// MLP.forward also needs geluTanh from gpt-course: add it to the import above when you get there.
import { todo } from "../harness/check.js";

export interface BlockSettings {
  embeddingDim: number; // C, the width of the residual stream
  numHeads: number; // attention heads; must divide C
}

/** GPT-2's attention settings for a block (no dropout, causal self-attention). Given, not part of the exercise. */
export function attentionConfig({ embeddingDim, numHeads }: BlockSettings): MultiHeadAttentionConfig {
  return {
    embeddingDim,
    numHeads,
    dropout: 0,
    bias: true,
    causal: true,
    initStd: 0.02,
    residualInitStd: 0.02,
  };
}

/** The feed-forward network: C → 4C, GELU (GPT-2's tanh approximation), 4C → C. */
export class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;

  constructor(embeddingDim: number, random: Random) {
    super();
    // TODO: register two Linear layers with this.addModule(name, layer), named exactly "c_fc" (C → 4C) and
    //       "c_proj" (4C → C). Give each a seed: new Linear(in, out, { seed: random.seed() }).
    todo("MLP constructor: register c_fc and c_proj", embeddingDim, random);
  }

  forward(x: tf.Tensor): tf.Tensor {
    // TODO: c_proj(geluTanh(c_fc(x))), inside tf.tidy. geluTanh comes from gpt-course.
    return todo("MLP.forward", x);
  }
}

/** One pre-LN Transformer block, as in GPT-2. */
export class Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;

  constructor(settings: BlockSettings, random: Random) {
    super();
    // TODO: register, in this order and with these names: "ln_1" (LayerNorm of width C),
    //       "attn" (new MultiHeadAttention(attentionConfig(settings), random)), "ln_2", "mlp" (your MLP).
    todo("Block constructor: register ln_1, attn, ln_2 and mlp", settings, random);
  }

  /** x: (B, T, C) → (B, T, C). */
  forward(x: tf.Tensor): tf.Tensor {
    // TODO: the two residual steps of a pre-LN block:
    //       x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)). Call each module's .forward(...).
    return todo("Block.forward", x);
  }
}
