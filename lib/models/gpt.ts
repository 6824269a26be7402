import * as tf from "@tensorflow/tfjs";
import { fusedMatMul } from "../kernels/fused.js";
import { KVCache } from "../nn/attention.js";
import { DecoderBlock } from "../nn/blocks.js";
import { Dropout, Embedding, LayerNorm, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { canReadSynchronously } from "../utils/sync-reads.js";
import { Random } from "../utils/random.js";
import { type GPTConfig, type GPTConfigInput, gptConfig } from "./config.js";

export interface GPTCallOptions {
  /** One cache per block, from `model.createCache()`: positions already seen are not recomputed. */
  cache?: KVCache[];
  /**
   * Packed rows (several documents, e.g. conversations, end to end in one row), both int32 (B, T): each
   * token's document, and its position within that document. Attention then stays inside a document and
   * every document starts at position 0, so packed training sees exactly what separate rows would.
   */
  documents?: { documentIds: tf.Tensor; positions: tf.Tensor };
  /** When given, every block's attention weights (B, nh, T, T) are pushed here; the caller disposes them. */
  attentionWeights?: tf.Tensor[];
}

/**
 * GPT: a decoder-only Transformer that predicts the next token.
 *
 *   ids (B, T) → token embedding + position embedding → numLayers × DecoderBlock → LayerNorm → logits (B, T, V)
 *
 * logits[b, t] scores every possible next token after ids[b, 0..t]; causal attention guarantees position t
 * never sees a later token, so one forward pass trains on T predictions at once.
 *
 * Parameter names are GPT-2's (`wte`, `wpe`, `h.N.attn.c_attn`, `ln_f`, ...), so its weights load by name.
 */
export class GPT extends Module {
  readonly config: GPTConfig;
  readonly wte: Embedding; // token embedding (V, C)
  readonly wpe: Embedding; // position embedding (contextLength, C)
  readonly drop: Dropout;
  readonly h: DecoderBlock[];
  readonly ln_f: LayerNorm;
  readonly lm_head?: Linear; // (C, V); absent when tied to wte
  /** Seeds dropout masks; restored from checkpoints so a resumed run replays the same masks. */
  readonly random: Random;

  constructor(config: GPTConfigInput = {}) {
    super();
    this.config = gptConfig(config);
    const { vocabSize: V, contextLength, numLayers, embeddingDim: C, initStd } = this.config;
    this.random = new Random(this.config.seed);
    this.wte = this.addModule("wte", new Embedding(V, C, { initStd, seed: this.random.seed() }));
    this.wpe = this.addModule("wpe", new Embedding(contextLength, C, { initStd, seed: this.random.seed() }));
    this.drop = this.addModule("drop", new Dropout(this.config.dropout, this.random));
    // GPT-2 scales the init of projections that add into the residual stream by 1/√(2·numLayers): each
    // block adds twice, and without the scaling the stream's variance would grow with depth.
    const blockConfig = { ...this.config, residualInitStd: initStd / Math.sqrt(2 * numLayers) };
    this.h = Array.from({ length: numLayers }, (_, i) =>
      this.addModule(`h.${i}`, new DecoderBlock(blockConfig, this.random)),
    );
    this.ln_f = this.addModule("ln_f", new LayerNorm(C, this.config.layerNormEpsilon));
    if (!this.config.tieWeights) {
      this.lm_head = this.addModule("lm_head", new Linear(C, V, { bias: false, initStd, seed: this.random.seed() }));
    }
  }

  /** ids: int32 (B, T) with T ≤ contextLength (counting cached positions) → logits (B, T, vocabSize). */
  forward(ids: tf.Tensor, options: GPTCallOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.head(this.features(ids, options)) as tf.Tensor3D);
  }

  /** Everything but the output head: ids (B, T) → the final LayerNorm's output (B, T, C). */
  features(ids: tf.Tensor, options: GPTCallOptions = {}): tf.Tensor3D {
    const past = options.cache?.[0]?.length ?? 0;
    this.checkInput(ids, past, options);
    return tf.tidy(() => {
      const T = ids.shape[1] as number;
      const { documents } = options;
      const positions = documents ? documents.positions : tf.range(past, past + T, 1, "int32"); // (B, T) or (T)
      const tokens = this.wte.forward(ids); // (B, T, C)
      let x = this.drop.forward(tokens.add(this.wpe.forward(positions))); // (B, T, C), (T, C) positions broadcast over B
      this.h.forEach((block, i) => {
        x = block.forward(x, {
          cache: options.cache?.[i],
          attentionWeights: options.attentionWeights,
          documentIds: documents?.documentIds,
        });
      });
      return this.ln_f.forward(x) as tf.Tensor3D;
    });
  }

  /**
   * The output head: hidden states (..., C) → logits (..., vocabSize), a score for every token. Separate
   * from `features` so that training can score only the positions it grades (fine-tuning: the answers).
   */
  head(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const C = this.config.embeddingDim;
      const rows = x.reshape([-1, C]) as tf.Tensor2D;
      const wte = this.wte.weight as tf.Tensor2D;
      const logits = this.lm_head
        ? this.lm_head.forward(rows)
        : (fusedMatMul(rows, wte, false, true) ?? tf.matMul(rows, wte, false, true)); // tied head: x · wteᵀ
      return logits.reshape([...x.shape.slice(0, -1), this.config.vocabSize]);
    });
  }

  /** An empty KV cache, one per block, for incremental decoding. Dispose it when done. */
  createCache(): KVCache[] {
    return this.h.map(() => new KVCache());
  }

  private checkInput(ids: tf.Tensor, past: number, { documents, cache }: GPTCallOptions): void {
    if (documents) {
      for (const [name, tensor] of Object.entries(documents)) {
        if (tensor.shape.join() !== ids.shape.join() || tensor.dtype !== "int32") {
          throw new Error(
            `GPT.forward: documents.${name} must be int32 of the ids' shape [${ids.shape}], got ${tensor.dtype} [${tensor.shape}].`,
          );
        }
      }
      if (cache)
        throw new Error(
          "GPT.forward: packed documents are for training; generate without them (one sequence per row).",
        );
    }
    if (ids.rank !== 2) {
      throw new Error(
        `GPT.forward: ids must have shape (batch, time), got shape [${ids.shape}]. Use ids.expandDims(0) for one sequence.`,
      );
    }
    if (ids.dtype !== "int32") throw new Error(`GPT.forward: ids must be int32 token ids, got ${ids.dtype}.`);
    const T = ids.shape[1] as number;
    if (T === 0) throw new Error("GPT.forward: ids is empty; give at least one token.");
    const { contextLength, vocabSize } = this.config;
    if (past + T > contextLength) {
      throw new Error(
        `GPT.forward: sequence of ${past + T} tokens${past ? ` (${past} cached + ${T} new)` : ""} is longer than ` +
          `the context length ${contextLength}. Crop the input to its last ${contextLength} tokens.`,
      );
    }
    if (!canReadSynchronously()) return; // on a GPU, reading the ids back would stall every forward pass
    const [min, max] = tf.tidy(() => [ids.min().dataSync()[0], ids.max().dataSync()[0]]);
    if (min < 0 || max >= vocabSize) {
      throw new Error(
        `GPT.forward: token id ${min < 0 ? min : max} is out of range; ids must be in [0, ${vocabSize - 1}] ` +
          `(vocabSize ${vocabSize}). Was the text encoded with the tokenizer this model was built for?`,
      );
    }
  }
}
