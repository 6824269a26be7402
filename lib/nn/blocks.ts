import * as tf from "@tensorflow/tfjs";
import type { Random } from "../utils/random.js";
import { type Activation, activationFunction } from "./activations.js";
import { type AttentionCallOptions, CrossAttention, type KVCache, MultiHeadAttention } from "./attention.js";
import { Dropout, LayerNorm, Linear } from "./layers.js";
import { Module } from "./module.js";

/** What a Transformer block needs to know; a model fills it from its own config. */
export interface BlockConfig {
  embeddingDim: number; // C, the width of the residual stream
  numHeads: number; // attention heads per block
  dropout: number; // dropout rate inside the block
  bias: boolean; // biases in Linear layers
  layerNormEpsilon: number; // ε in LayerNorm (GPT-2: 1e-5)
  activation: Activation; // non-linearity of the MLP
  preNorm: boolean; // true: x + f(LN(x)) as in GPT-2; false: LN(x + f(x)) as in the original Transformer
  initStd: number; // std of the normal initialisation
  residualInitStd: number; // std for projections that write into the residual stream
}

/**
 * The feed-forward network of a block: widen to 4C, apply GELU, project back to C. Attention moves
 * information between positions; this MLP then processes each position on its own.
 */
export class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  readonly dropout: Dropout;
  private readonly activation: (x: tf.Tensor) => tf.Tensor;

  constructor(config: BlockConfig, random: Random) {
    super();
    const { embeddingDim: C, bias, initStd } = config;
    this.c_fc = this.addModule("c_fc", new Linear(C, 4 * C, { bias, initStd, seed: random.seed() }));
    this.c_proj = this.addModule(
      "c_proj",
      new Linear(4 * C, C, { bias, initStd: config.residualInitStd, seed: random.seed() }),
    );
    this.dropout = this.addModule("dropout", new Dropout(config.dropout, random));
    this.activation = activationFunction(config.activation);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.dropout.forward(this.c_proj.forward(this.activation(this.c_fc.forward(x)))));
  }
}

export interface BlockCallOptions {
  /** The encoder's output (B, Tsrc, C), for a decoder block with cross-attention. */
  encoderOutput?: tf.Tensor;
  /** Self-attention mask, 1 = may attend (e.g. padding), broadcastable to (B, nh, T, T). */
  selfMask?: tf.Tensor;
  /** Packed rows: int32 (B, T) document ids; self-attention stays within each document. */
  documentIds?: tf.Tensor;
  /** Cross-attention mask over the encoder's positions, broadcastable to (B, nh, T, Tsrc). */
  crossMask?: tf.Tensor;
  /** KV cache of this block's self-attention, for fast generation. */
  cache?: KVCache;
  /** Self-attention weights (B, nh, T, T) are pushed here when given; the caller disposes them. */
  attentionWeights?: tf.Tensor[];
  /** Cross-attention weights (B, nh, T, Tsrc) are pushed here when given; the caller disposes them. */
  crossAttentionWeights?: tf.Tensor[];
}

/**
 * One Transformer block: self-attention, optionally cross-attention to an encoder's output, then the MLP,
 * each wrapped in a residual connection and a LayerNorm.
 *
 * Pre-LN (GPT-2, the default):  x = x + f(LN(x))   — the residual path stays an identity, which trains
 *                                                    stably even in deep stacks without warm-up tricks.
 * Post-LN (original Transformer): x = LN(x + f(x))
 *
 * Names follow Hugging Face's GPT-2 (ln_1, attn, ln_cross_attn, crossattention, ln_2, mlp).
 */
export class TransformerBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln_cross_attn?: LayerNorm;
  readonly crossattention?: CrossAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;

  constructor(
    readonly config: BlockConfig & { causal: boolean; crossAttention: boolean },
    random: Random,
  ) {
    super();
    const C = config.embeddingDim;
    this.ln_1 = this.addModule("ln_1", new LayerNorm(C, config.layerNormEpsilon));
    this.attn = this.addModule("attn", new MultiHeadAttention(config, random));
    if (config.crossAttention) {
      this.ln_cross_attn = this.addModule("ln_cross_attn", new LayerNorm(C, config.layerNormEpsilon));
      this.crossattention = this.addModule("crossattention", new CrossAttention(config, random));
    }
    this.ln_2 = this.addModule("ln_2", new LayerNorm(C, config.layerNormEpsilon));
    this.mlp = this.addModule("mlp", new MLP(config, random));
  }

  /** x: (B, T, C) → (B, T, C). */
  forward(x: tf.Tensor, options: BlockCallOptions = {}): tf.Tensor {
    return tf.tidy(() => {
      const selfOptions: AttentionCallOptions = {
        mask: options.selfMask,
        documentIds: options.documentIds,
        cache: options.cache,
        attentionWeights: options.attentionWeights,
      };
      x = this.residual(x, this.ln_1, (h) => this.attn.forward(h, selfOptions));
      if (this.crossattention && this.ln_cross_attn) {
        const crossattention = this.crossattention;
        if (!options.encoderOutput) throw new Error("TransformerBlock: cross-attention needs `encoderOutput`.");
        const { encoderOutput, crossMask, crossAttentionWeights } = options;
        const crossOptions = { mask: crossMask, attentionWeights: crossAttentionWeights };
        x = this.residual(x, this.ln_cross_attn, (h) => crossattention.forward(h, encoderOutput, crossOptions));
      }
      return this.residual(x, this.ln_2, (h) => this.mlp.forward(h));
    });
  }

  /** One sub-layer with its residual connection, pre-LN or post-LN. */
  private residual(x: tf.Tensor, norm: LayerNorm, sublayer: (h: tf.Tensor) => tf.Tensor): tf.Tensor {
    return this.config.preNorm ? x.add(sublayer(norm.forward(x))) : norm.forward(x.add(sublayer(x)));
  }
}

/** An encoder block: bidirectional self-attention (every position sees every other) and an MLP. */
export class EncoderBlock extends TransformerBlock {
  constructor(config: BlockConfig, random: Random) {
    super({ ...config, causal: false, crossAttention: false }, random);
  }
}

/** A decoder block: causal self-attention, optional cross-attention to an encoder's output, and an MLP. */
export class DecoderBlock extends TransformerBlock {
  constructor(config: BlockConfig & { crossAttention?: boolean }, random: Random) {
    super({ ...config, causal: true, crossAttention: config.crossAttention ?? false }, random);
  }
}
