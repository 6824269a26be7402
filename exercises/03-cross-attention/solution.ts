/**
 * Exercise 03-cross-attention · reference solution.
 *
 * Cross-attention is how a decoder reads its source: the queries come from the decoder's own positions, the
 * keys and values from the encoder's output. Nothing else changes from self-attention, except that it is never
 * causal (the whole source is given) and padded source positions are masked out.
 */
import {
  type BlockConfig,
  LayerNorm,
  MLP,
  Module,
  CrossAttention,
  MultiHeadAttention,
  type MultiHeadAttentionConfig,
  type Random,
  scaledDotProductAttention,
  tf,
} from "gpt-course";

/** x · weight + bias on the last axis of x (given). */
export function linear(x: tf.Tensor, { weight, bias }: { weight: tf.Tensor; bias: tf.Tensor }): tf.Tensor {
  return tf.tidy(() => {
    const [inFeatures, outFeatures] = weight.shape as [number, number];
    const rows = x.reshape([-1, inFeatures]) as tf.Tensor2D;
    return tf
      .matMul(rows, weight as tf.Tensor2D)
      .add(bias)
      .reshape([...x.shape.slice(0, -1), outFeatures]);
  });
}

/** (B, T, C) → (B, nh, T, hs) (given: you wrote it in 03-multi-head-attention). */
export function splitHeads(x: tf.Tensor, numHeads: number): tf.Tensor {
  const [B, T, C] = x.shape as [number, number, number];
  return x.reshape([B, T, numHeads, C / numHeads]).transpose([0, 2, 1, 3]);
}

/** (B, nh, T, hs) → (B, T, C) (given). */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [B, nh, T, hs] = x.shape as [number, number, number, number];
  return x.transpose([0, 2, 1, 3]).reshape([B, T, nh * hs]);
}

/** The weights of a cross-attention layer, with the names gpt-course (and Hugging Face's GPT-2) use. */
export interface CrossAttentionParameters {
  q_attn: { weight: tf.Tensor; bias: tf.Tensor }; // (C, C), (C): queries, from the decoder
  c_attn: { weight: tf.Tensor; bias: tf.Tensor }; // (C, 2C), (2C): keys then values, from the encoder
  c_proj: { weight: tf.Tensor; bias: tf.Tensor }; // (C, C), (C): mixes the heads' outputs
}

/**
 * A source padding mask (B, S) of 1 (a real token) and 0 (padding) → float (B, 1, 1, S), which broadcasts over
 * the heads and the query positions of the scores (B, nh, T, S).
 */
export function sourcePaddingMask(sourceMask: tf.Tensor): tf.Tensor {
  const [B, S] = sourceMask.shape as [number, number];
  return sourceMask.toFloat().reshape([B, 1, 1, S]);
}

/**
 * Multi-head cross-attention: every decoder position x (B, T, C) attends over the encoder's output (B, S, C).
 * `sourceMask` (B, S), if given, marks the real source tokens with 1 and the padding with 0.
 * Returns (B, T, C): one output per decoder position.
 */
export function crossAttention(
  x: tf.Tensor,
  encoderOutput: tf.Tensor,
  params: CrossAttentionParameters,
  numHeads: number,
  sourceMask?: tf.Tensor,
): tf.Tensor {
  return tf.tidy(() => {
    const q = splitHeads(linear(x, params.q_attn), numHeads); // (B, nh, T, hs): what each decoder position looks for
    const [k, v] = tf.split(linear(encoderOutput, params.c_attn), 2, -1).map((t) => splitHeads(t, numHeads)); // (B, nh, S, hs)
    // Not causal: the source is given whole, every decoder position may read all of it. Only padding is hidden.
    const mask = sourceMask ? sourcePaddingMask(sourceMask) : undefined; // (B, 1, 1, S)
    const { output } = scaledDotProductAttention(q, k as tf.Tensor, v as tf.Tensor, { mask }); // (B, nh, T, hs)
    return linear(mergeHeads(output), params.c_proj); // (B, T, C)
  });
}

export interface BlockSettings {
  embeddingDim: number; // C
  numHeads: number; // must divide C
}

/** The settings of gpt-course's blocks (no dropout, GELU). Given, not part of the exercise. */
export function blockConfig({ embeddingDim, numHeads }: BlockSettings): BlockConfig {
  return {
    embeddingDim,
    numHeads,
    dropout: 0,
    bias: true,
    layerNormEpsilon: 1e-5,
    activation: "gelu",
    preNorm: true,
    initStd: 0.02,
    residualInitStd: 0.02,
  };
}

/** Settings of the decoder's self-attention: causal, it sees only what is written so far. Given. */
export function selfAttentionConfig(settings: BlockSettings): MultiHeadAttentionConfig {
  return { ...blockConfig(settings), causal: true };
}

/**
 * A decoder block of the encoder-decoder Transformer (pre-LN), with gpt-course's parameter names:
 *   x = x + attn(ln_1(x))                               causal self-attention over what is written so far
 *   x = x + crossattention(ln_cross_attn(x), source)    read the source
 *   x = x + mlp(ln_2(x))
 */
export class DecoderBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln_cross_attn: LayerNorm;
  readonly crossattention: CrossAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;

  constructor(settings: BlockSettings, random: Random) {
    super();
    const C = settings.embeddingDim;
    this.ln_1 = this.addModule("ln_1", new LayerNorm(C));
    this.attn = this.addModule("attn", new MultiHeadAttention(selfAttentionConfig(settings), random));
    this.ln_cross_attn = this.addModule("ln_cross_attn", new LayerNorm(C));
    this.crossattention = this.addModule("crossattention", new CrossAttention(blockConfig(settings), random));
    this.ln_2 = this.addModule("ln_2", new LayerNorm(C));
    this.mlp = this.addModule("mlp", new MLP(blockConfig(settings), random));
  }

  /** x: (B, T, C), encoderOutput: (B, S, C), sourceMask: (B, S) of 1/0 → (B, T, C). */
  forward(x: tf.Tensor, encoderOutput: tf.Tensor, sourceMask?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const mask = sourceMask ? sourcePaddingMask(sourceMask) : undefined;
      let h = x.add(this.attn.forward(this.ln_1.forward(x)));
      // Only the decoder's stream is normalised here: the encoder's output was normalised at the end of the
      // encoder (ln_enc) and is the same for every decoder block.
      h = h.add(this.crossattention.forward(this.ln_cross_attn.forward(h), encoderOutput, { mask }));
      return h.add(this.mlp.forward(this.ln_2.forward(h)));
    });
  }
}
