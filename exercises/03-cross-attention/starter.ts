/**
 * Exercise 03-cross-attention: cross-attention, and a decoder block that uses it. Read README.md in this folder,
 * fill in the TODOs, then check your work with `npm run exercise -- 03-cross-attention`.
 */
import {
  type BlockConfig,
  type CrossAttention,
  type LayerNorm,
  type MLP,
  Module,
  type MultiHeadAttention,
  type MultiHeadAttentionConfig,
  type Random,
  tf,
} from "gpt-course";
// crossAttention also needs scaledDotProductAttention from gpt-course: add it to the import above.
import { todo } from "../harness/check.js";

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
  // TODO: convert to float and reshape (B, S) → (B, 1, 1, S).
  return todo("sourcePaddingMask", sourceMask);
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
  // TODO: 1. queries from the decoder: linear(x, params.q_attn), split into heads        → (B, nh, T, hs)
  //       2. keys and values from the encoder: linear(encoderOutput, params.c_attn) is (B, S, 2C);
  //          tf.split(..., 2, -1) gives keys then values; split each into heads            → (B, nh, S, hs)
  //       3. scaledDotProductAttention(q, k, v, { mask }) with mask = sourcePaddingMask(sourceMask) when a
  //          sourceMask is given. Is cross-attention causal?                                → (B, nh, T, hs)
  //       4. merge the heads, then linear(..., params.c_proj)                              → (B, T, C)
  return todo("crossAttention", x, encoderOutput, params, numHeads, sourceMask);
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
    // TODO: register with this.addModule(name, module), in this order and with these names:
    //       "ln_1"           new LayerNorm(C)
    //       "attn"           new MultiHeadAttention(selfAttentionConfig(settings), random)
    //       "ln_cross_attn"  new LayerNorm(C)
    //       "crossattention" new CrossAttention(blockConfig(settings), random)
    //       "ln_2"           new LayerNorm(C)
    //       "mlp"            new MLP(blockConfig(settings), random)   (gpt-course's MLP)
    todo("DecoderBlock constructor: register the six sub-modules", settings, random);
  }

  /** x: (B, T, C), encoderOutput: (B, S, C), sourceMask: (B, S) of 1/0 → (B, T, C). */
  forward(x: tf.Tensor, encoderOutput: tf.Tensor, sourceMask?: tf.Tensor): tf.Tensor {
    // TODO: the three residual steps of a pre-LN decoder block, inside tf.tidy:
    //       x = x + attn.forward(ln_1.forward(x))
    //       x = x + crossattention.forward(ln_cross_attn.forward(x), encoderOutput, { mask })
    //           with mask = sourcePaddingMask(sourceMask) when a sourceMask is given
    //       x = x + mlp.forward(ln_2.forward(x))
    return todo("DecoderBlock.forward", x, encoderOutput, sourceMask);
  }
}
