/**
 * gpt-course: the public API of the course library. Everything a notebook, exercise or script needs is
 * exported here, grouped by the concept (and the folder) it belongs to.
 */
import * as tf from "@tensorflow/tfjs";

/** The TensorFlow.js instance lib uses: import it from here so notebooks and lib share one engine. */
export { tf };

// Backends: where the maths runs.
export { initBackend, availableBackends, backendNames } from "./backend/backend.js";
export type { BackendInfo, BackendName } from "./backend/backend.js";

// Tokenizers: text ⇄ token ids.
export type { Tokenizer, TokenizerJSON, EncodeOptions } from "./tokenizers/tokenizer.js";

// Neural network building blocks.
export { Module } from "./nn/module.js";
export { Linear, LayerNorm, Embedding, Dropout } from "./nn/layers.js";
export { gelu, geluTanh, activationFunction } from "./nn/activations.js";
export type { Activation } from "./nn/activations.js";
export { matMul, embeddingLookup } from "./nn/ops.js";
export {
  scaledDotProductAttention,
  causalMask,
  MultiHeadAttention,
  KVCache,
  MASKED_SCORE,
} from "./nn/attention.js";
export type { AttentionMaskOptions, AttentionCallOptions, MultiHeadAttentionConfig } from "./nn/attention.js";
export { MLP, TransformerBlock, EncoderBlock, DecoderBlock } from "./nn/blocks.js";
export type { BlockConfig, BlockCallOptions } from "./nn/blocks.js";

// Models.
export { gptConfig, validateConfig, countParameters, presets } from "./models/config.js";
export type { GPTConfig, PresetName } from "./models/config.js";
export { GPT } from "./models/gpt.js";
export type { GPTCallOptions } from "./models/gpt.js";
export { EncoderDecoderTransformer, sinusoidalPositions, defaultTransformerConfig } from "./models/transformer.js";
export type { TransformerConfig, TransformerCallOptions } from "./models/transformer.js";

// Training.
export { crossEntropy, IGNORE_INDEX } from "./training/loss.js";

// Utilities.
export { Random } from "./utils/random.js";
