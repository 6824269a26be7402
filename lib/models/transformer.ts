import * as tf from "@tensorflow/tfjs";
import type { Activation } from "../nn/activations.js";
import { type BlockConfig, DecoderBlock, EncoderBlock } from "../nn/blocks.js";
import { Dropout, Embedding, LayerNorm, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { Random } from "../utils/random.js";

/** The original Transformer ("Attention Is All You Need", 2017): an encoder reads, a decoder writes. */
export interface TransformerConfig {
  sourceVocabSize: number; // ids the encoder reads
  targetVocabSize: number; // ids the decoder writes
  contextLength: number; // longest source or target sequence
  numLayers: number; // blocks in the encoder, and again in the decoder
  numHeads: number; // attention heads per attention layer
  embeddingDim: number; // d_model
  dropout: number;
  preNorm: boolean; // the 2017 paper normalises after each sub-layer (false); pre-LN trains more easily
  activation: Activation; // the paper used ReLU; GELU is its smooth successor
  seed: number;
}

export const defaultTransformerConfig: TransformerConfig = {
  sourceVocabSize: 16,
  targetVocabSize: 16,
  contextLength: 32,
  numLayers: 2,
  numHeads: 4,
  embeddingDim: 64,
  dropout: 0,
  preNorm: true,
  activation: "gelu",
  seed: 1337,
};

/**
 * Sinusoidal position encodings of the original paper: PE[pos, 2i] = sin(pos / 10000^(2i/d)),
 * PE[pos, 2i+1] = cos(pos / 10000^(2i/d)). Each pair of channels is a clock of a different period, so
 * any position offset is a fixed rotation, which attention can learn to read. Shape (length, d).
 */
export function sinusoidalPositions(length: number, dim: number): tf.Tensor2D {
  const table = new Float32Array(length * dim);
  for (let pos = 0; pos < length; pos++) {
    for (let i = 0; i < dim; i += 2) {
      const angle = pos / 10000 ** (i / dim);
      table[pos * dim + i] = Math.sin(angle);
      if (i + 1 < dim) table[pos * dim + i + 1] = Math.cos(angle);
    }
  }
  return tf.tensor2d(table, [length, dim]);
}

export interface TransformerCallOptions {
  /** 1 for real source tokens, 0 for padding: (B, Tsrc). Padding is then never attended to. */
  sourceMask?: tf.Tensor;
  /** Attention weights are collected into the arrays given, for plots (the caller disposes them). */
  attention?: { encoder?: tf.Tensor[]; decoderSelf?: tf.Tensor[]; decoderCross?: tf.Tensor[] };
}

/**
 * Encoder-decoder Transformer: the encoder turns the source into one vector per source token with
 * bidirectional self-attention; each decoder block attends causally to the target so far, then
 * cross-attends to the encoder's vectors to decide what to write next.
 */
export class EncoderDecoderTransformer extends Module {
  readonly config: TransformerConfig;
  readonly source_embedding: Embedding;
  readonly target_embedding: Embedding;
  readonly drop: Dropout;
  readonly encoder: EncoderBlock[];
  readonly decoder: DecoderBlock[];
  readonly ln_enc: LayerNorm;
  readonly ln_dec: LayerNorm;
  readonly lm_head: Linear;
  private readonly positions: tf.Tensor2D;

  constructor(config: Partial<TransformerConfig> = {}) {
    super();
    this.config = { ...defaultTransformerConfig, ...config };
    const { embeddingDim: C, numLayers, numHeads, contextLength } = this.config;
    if (C % numHeads !== 0) {
      throw new Error(`Transformer config: embeddingDim (${C}) must be divisible by numHeads (${numHeads}).`);
    }
    const random = new Random(this.config.seed);
    const initStd = 0.02;
    const blockConfig: BlockConfig = {
      ...this.config,
      bias: true,
      layerNormEpsilon: 1e-5,
      initStd,
      residualInitStd: initStd / Math.sqrt(2 * numLayers),
    };
    this.source_embedding = this.addModule(
      "source_embedding",
      new Embedding(this.config.sourceVocabSize, C, { seed: random.seed() }),
    );
    this.target_embedding = this.addModule(
      "target_embedding",
      new Embedding(this.config.targetVocabSize, C, { seed: random.seed() }),
    );
    this.drop = this.addModule("drop", new Dropout(this.config.dropout, random));
    this.encoder = Array.from({ length: numLayers }, (_, i) =>
      this.addModule(`encoder.${i}`, new EncoderBlock(blockConfig, random)),
    );
    this.decoder = Array.from({ length: numLayers }, (_, i) =>
      this.addModule(`decoder.${i}`, new DecoderBlock({ ...blockConfig, crossAttention: true }, random)),
    );
    // With pre-LN the residual stream is never normalised inside the blocks, so each stack ends with one.
    this.ln_enc = this.addModule("ln_enc", new LayerNorm(C));
    this.ln_dec = this.addModule("ln_dec", new LayerNorm(C));
    this.lm_head = this.addModule("lm_head", new Linear(C, this.config.targetVocabSize, { seed: random.seed() }));
    this.positions = tf.keep(sinusoidalPositions(contextLength, C));
  }

  /** Token vectors scaled by √d_model (as in the paper, so they are not drowned by the positions) plus positions. */
  private embed(embedding: Embedding, ids: tf.Tensor): tf.Tensor {
    const T = ids.shape[1] as number;
    if (T > this.config.contextLength) {
      throw new Error(
        `Transformer: sequence of ${T} tokens is longer than contextLength ${this.config.contextLength}.`,
      );
    }
    const scaled = embedding.forward(ids).mul(Math.sqrt(this.config.embeddingDim));
    return this.drop.forward(scaled.add(this.positions.slice([0, 0], [T, this.config.embeddingDim])));
  }

  /** source ids (B, Tsrc) → encoder output (B, Tsrc, C). */
  encode(sourceIds: tf.Tensor, options: TransformerCallOptions = {}): tf.Tensor {
    return tf.tidy(() => {
      const selfMask = options.sourceMask ? paddingMask(options.sourceMask) : undefined;
      let x = this.embed(this.source_embedding, sourceIds);
      for (const block of this.encoder)
        x = block.forward(x, { selfMask, attentionWeights: options.attention?.encoder });
      return this.config.preNorm ? this.ln_enc.forward(x) : x;
    });
  }

  /** target ids (B, T) and encoder output (B, Tsrc, C) → logits (B, T, targetVocabSize). */
  decode(targetIds: tf.Tensor, encoderOutput: tf.Tensor, options: TransformerCallOptions = {}): tf.Tensor {
    return tf.tidy(() => {
      const crossMask = options.sourceMask ? paddingMask(options.sourceMask) : undefined;
      let x = this.embed(this.target_embedding, targetIds);
      for (const block of this.decoder) {
        x = block.forward(x, {
          encoderOutput,
          crossMask,
          attentionWeights: options.attention?.decoderSelf,
          crossAttentionWeights: options.attention?.decoderCross,
        });
      }
      if (this.config.preNorm) x = this.ln_dec.forward(x);
      return this.lm_head.forward(x);
    });
  }

  /** Teacher forcing: logits for every target position given the whole source and the target so far. */
  forward(sourceIds: tf.Tensor, targetIds: tf.Tensor, options: TransformerCallOptions = {}): tf.Tensor {
    return tf.tidy(() => this.decode(targetIds, this.encode(sourceIds, options), options));
  }

  override dispose(): void {
    super.dispose();
    this.positions.dispose();
  }
}

/** (B, Tsrc) of 1/0 → (B, 1, 1, Tsrc), broadcast over heads and query positions. */
function paddingMask(sourceMask: tf.Tensor): tf.Tensor {
  const [B, T] = sourceMask.shape;
  return sourceMask.toFloat().reshape([B, 1, 1, T]);
}
