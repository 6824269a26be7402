/**
 * Exercise 04-gpt-block · reference solution: GPT-2's Transformer block, built from gpt-course's modules.
 *
 *   x = x + attn(ln_1(x))     every position gathers information from earlier positions
 *   x = x + mlp(ln_2(x))      then each position processes what it gathered, on its own
 */
import {
  geluTanh,
  LayerNorm,
  Linear,
  Module,
  MultiHeadAttention,
  type MultiHeadAttentionConfig,
  type Random,
  tf,
} from "gpt-course";

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
    // addModule registers the child under a name, so its weights are called "c_fc.weight", "c_fc.bias"...:
    // exactly GPT-2's names, which is what lets pretrained weights load by name (chapter 08).
    this.c_fc = this.addModule("c_fc", new Linear(embeddingDim, 4 * embeddingDim, { seed: random.seed() }));
    this.c_proj = this.addModule("c_proj", new Linear(4 * embeddingDim, embeddingDim, { seed: random.seed() }));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.c_proj.forward(geluTanh(this.c_fc.forward(x))));
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
    const C = settings.embeddingDim;
    this.ln_1 = this.addModule("ln_1", new LayerNorm(C));
    this.attn = this.addModule("attn", new MultiHeadAttention(attentionConfig(settings), random));
    this.ln_2 = this.addModule("ln_2", new LayerNorm(C));
    this.mlp = this.addModule("mlp", new MLP(C, random));
  }

  /** x: (B, T, C) → (B, T, C). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      // Pre-LN: normalise the input of each sub-layer, never the residual stream itself. The stream stays a
      // plain sum of everything the sub-layers wrote, which keeps deep stacks easy to train.
      const afterAttention = x.add(this.attn.forward(this.ln_1.forward(x)));
      return afterAttention.add(this.mlp.forward(this.ln_2.forward(afterAttention)));
    });
  }
}
