import * as tf from "@tensorflow/tfjs";
import type { Random } from "../utils/random.js";
import { Dropout, Linear } from "./layers.js";
import { Module } from "./module.js";
import { fusedAttention, fusedSplitHeads } from "../kernels/fused.js";

/**
 * Attention: every position builds a query ("what am I looking for?"), and every position it may look at
 * offers a key ("what do I contain?") and a value ("what do I pass on?"). A query's weights over the keys
 * are softmax(q·k / √d_k); its output is the weighted average of the values:
 *
 *   Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V
 *
 * Dividing by √d_k keeps the scores' variance near 1 whatever the head size (a dot product of d_k
 * independent unit-variance terms has variance d_k), so the softmax does not saturate into a one-hot
 * vector with vanishing gradients. M is 0 where attending is allowed and a large negative number where it
 * is not (a future position, a padding token), so those weights come out as 0.
 */

/** Added to a masked score: exp(−1e9) is exactly 0 in float32, and unlike −∞ a fully masked row stays finite. */
export const MASKED_SCORE = -1e9;

export interface AttentionMaskOptions {
  /** Forbid attending to later positions (a decoder's self-attention). */
  causal?: boolean;
  /** 1 where attending is allowed, 0 where not; broadcastable to (..., Tq, Tk), e.g. (B, 1, 1, Tk) for padding. */
  mask?: tf.Tensor;
  /**
   * Self-attention over packed rows: int32 (B, T), which document (e.g. conversation) each position belongs
   * to. A query attends only to keys of its own document, so several documents share a row without seeing
   * each other. For q, k, v of shape (B, nh, T, hs).
   */
  documentIds?: tf.Tensor;
}

/**
 * Lower-triangular (Tq, Tk) matrix of ones: query i may see key j when j ≤ i + (Tk − Tq). The offset matters
 * when the keys include earlier, cached positions: then the Tq queries are the last Tq of Tk positions.
 */
export function causalMask(queryLength: number, keyLength: number): tf.Tensor2D {
  return tf.tidy(() => {
    const offset = keyLength - queryLength;
    const queryPositions = tf.range(offset, offset + queryLength, 1, "int32").expandDims(1); // (Tq, 1)
    const keyPositions = tf.range(0, keyLength, 1, "int32").expandDims(0); // (1, Tk)
    return tf.lessEqual(keyPositions, queryPositions).toFloat() as tf.Tensor2D;
  });
}

/**
 * (B, T) document ids → (B, 1, T, T) of 1/0: query i may see key j when both belong to the same document.
 * Broadcast over heads; combined with the causal mask, a packed row is block-diagonal lower-triangular.
 */
export function documentMask(documentIds: tf.Tensor): tf.Tensor4D {
  return tf.tidy(
    () => tf.equal(documentIds.expandDims(2), documentIds.expandDims(1)).toFloat().expandDims(1) as tf.Tensor4D,
  );
}

/**
 * softmax(Q Kᵀ / √d_k + M) V for q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v).
 * Returns the output (..., Tq, d_v) and the attention weights (..., Tq, Tk), whose rows sum to 1.
 */
export function scaledDotProductAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionMaskOptions & { dropout?: (weights: tf.Tensor) => tf.Tensor } = {},
): { output: tf.Tensor; weights: tf.Tensor } {
  // The same maths as one fused kernel where the backend has one (a speed-up only; see lib/kernels/fused.ts).
  const fused = fusedAttention(q, k, v, options);
  if (fused) return fused;
  return tf.tidy(() => {
    const headSize = q.shape[q.rank - 1];
    const queryLength = q.shape[q.rank - 2];
    const keyLength = k.shape[k.rank - 2];
    let scores = tf.matMul(q, k, false, true).mul(1 / Math.sqrt(headSize)); // (..., Tq, Tk)
    let allowed: tf.Tensor | undefined = options.mask;
    if (options.documentIds) {
      const documents = documentMask(options.documentIds);
      allowed = allowed ? allowed.mul(documents) : documents;
    }
    if (options.causal) {
      const causal = causalMask(queryLength, keyLength);
      allowed = allowed ? allowed.mul(causal) : causal;
    }
    if (allowed) scores = scores.add(tf.sub(1, allowed).mul(MASKED_SCORE));
    const weights = tf.softmax(scores, -1);
    const attended = options.dropout ? options.dropout(weights) : weights;
    return { output: tf.matMul(attended, v), weights }; // (..., Tq, d_v)
  });
}

/** Keys and values of earlier positions, kept between generation steps so they are computed only once. */
export class KVCache {
  keys?: tf.Tensor; // (B, nh, Tpast, hs)
  values?: tf.Tensor; // (B, nh, Tpast, hs)

  /** Number of positions already cached. */
  get length(): number {
    return this.keys ? (this.keys.shape[2] as number) : 0;
  }

  /** Appends this step's keys and values; returns all of them. Safe inside `tf.tidy`: the cache keeps its own. */
  append(keys: tf.Tensor, values: tf.Tensor): { keys: tf.Tensor; values: tf.Tensor } {
    const allKeys = this.keys ? tf.concat([this.keys, keys], 2) : keys.clone();
    const allValues = this.values ? tf.concat([this.values, values], 2) : values.clone();
    this.dispose();
    this.keys = tf.keep(allKeys);
    this.values = tf.keep(allValues);
    return { keys: allKeys, values: allValues };
  }

  dispose(): void {
    this.keys?.dispose();
    this.values?.dispose();
    this.keys = undefined;
    this.values = undefined;
  }
}

/** What every attention layer needs to know; a block fills it from its own config. */
export interface AttentionConfig {
  embeddingDim: number; // width C of the residual stream
  numHeads: number; // nh heads of size hs = C / nh each
  dropout: number; // on the attention weights and on the output
  bias: boolean; // biases in the projections (GPT-2: true)
  initStd: number; // std of the normal initialisation of the projections
  residualInitStd: number; // std for c_proj, which writes into the residual stream (GPT-2: 0.02 / √(2·nLayer))
}

export interface MultiHeadAttentionConfig extends AttentionConfig {
  causal: boolean; // decoder self-attention: forbid looking ahead
}

export interface AttentionCallOptions {
  /** 1 = may attend, 0 = masked; broadcastable to (B, nh, Tq, Tk). */
  mask?: tf.Tensor;
  /** Self-attention over packed rows: int32 (B, T) document ids; positions attend within their document only. */
  documentIds?: tf.Tensor;
  /** Earlier positions' keys and values, for fast generation; this call's are appended. */
  cache?: KVCache;
  /** When given, the attention weights (B, nh, Tq, Tk) are pushed here, for plots; the caller disposes them. */
  attentionWeights?: tf.Tensor[];
}

export type CrossAttentionCallOptions = Pick<AttentionCallOptions, "mask" | "attentionWeights">;

/**
 * What self- and cross-attention share once they have their queries, keys and values: nh heads attend in
 * parallel, each in its own hs-dimensional subspace, and their outputs are put side by side and mixed by
 * the output projection c_proj. Several heads can each track a different relation (the previous word, the
 * subject of the sentence, a matching bracket...).
 */
abstract class AttentionHeads extends Module {
  abstract readonly c_proj: Linear;
  abstract readonly attn_dropout: Dropout;
  abstract readonly resid_dropout: Dropout;
  readonly headSize: number;

  constructor(readonly config: AttentionConfig) {
    super();
    const { embeddingDim: C, numHeads } = config;
    if (!Number.isInteger(numHeads) || numHeads < 1) {
      throw new Error(`${this.constructor.name}: numHeads must be a positive integer, got ${numHeads}.`);
    }
    if (C % numHeads !== 0) {
      throw new Error(
        `${this.constructor.name}: embeddingDim (${C}) must be divisible by numHeads (${numHeads}) so every ` +
          `head gets the same size; try numHeads = ${divisorsOf(C).join(", ")}.`,
      );
    }
    this.headSize = C / numHeads;
  }

  /**
   * (B, T, parts · C) → `parts` tensors (B, nh, T, hs): cut a projection into its parts (q, k, v) and give each
   * head its own slice of each part's channels.
   */
  protected splitHeads(x: tf.Tensor, parts = 1): tf.Tensor[] {
    const fused = fusedSplitHeads(x, parts, this.config.numHeads); // one copy instead of 2·parts + 1 ops
    if (fused) return fused;
    const [B, T] = x.shape as [number, number];
    const pieces = parts === 1 ? [x] : tf.split(x, parts, -1); // (tfjs cannot differentiate a split into one)
    return pieces.map((part) => part.reshape([B, T, this.config.numHeads, this.headSize]).transpose([0, 2, 1, 3]));
  }

  /** q: (B, nh, Tq, hs), k and v: (B, nh, Tk, hs) → (B, Tq, C): every head attends, c_proj mixes the heads. */
  protected attendAndProject(
    q: tf.Tensor,
    k: tf.Tensor,
    v: tf.Tensor,
    masking: AttentionMaskOptions,
    attentionWeights?: tf.Tensor[],
  ): tf.Tensor {
    const [B, , Tq] = q.shape as [number, number, number];
    const dropout = this.attn_dropout;
    const { output, weights } = scaledDotProductAttention(q, k, v, {
      ...masking,
      // dropout on the weights only when it is active (it is the identity otherwise), so that the fused
      // attention kernel can be used
      dropout: dropout.training && dropout.rate > 0 ? (w) => dropout.forward(w) : undefined,
    }); // output (B, nh, Tq, hs), weights (B, nh, Tq, Tk)
    attentionWeights?.push(tf.keep(weights)); // kept past the caller's tidy: whoever asked disposes it
    const merged = output.transpose([0, 2, 1, 3]).reshape([B, Tq, this.config.embeddingDim]); // heads side by side
    return this.resid_dropout.forward(this.c_proj.forward(merged));
  }
}

/** c_proj: C → C, initialised small because it writes into the residual stream. */
function outputProjection(config: AttentionConfig, random: Random): Linear {
  const { embeddingDim: C, bias, residualInitStd } = config;
  return new Linear(C, C, { bias, initStd: residualInitStd, seed: random.seed() });
}

/**
 * Multi-head self-attention: queries, keys and values all come from the same sequence, through one fused
 * projection `c_attn` (C → 3C), as in GPT-2. Causal in a decoder (position t sees positions ≤ t only),
 * bidirectional in an encoder.
 */
export class MultiHeadAttention extends AttentionHeads {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  readonly attn_dropout: Dropout;
  readonly resid_dropout: Dropout;

  constructor(
    override readonly config: MultiHeadAttentionConfig,
    random: Random,
  ) {
    super(config);
    const { embeddingDim: C, bias, initStd } = config;
    this.c_attn = this.addModule("c_attn", new Linear(C, 3 * C, { bias, initStd, seed: random.seed() }));
    this.c_proj = this.addModule("c_proj", outputProjection(config, random));
    this.attn_dropout = this.addModule("attn_dropout", new Dropout(config.dropout, random));
    this.resid_dropout = this.addModule("resid_dropout", new Dropout(config.dropout, random));
  }

  /** x: (B, T, C) → (B, T, C). */
  forward(x: tf.Tensor, options: AttentionCallOptions = {}): tf.Tensor {
    return tf.tidy(() => {
      let [q, k, v] = this.splitHeads(this.c_attn.forward(x), 3); // (B, nh, T, hs) each
      if (options.cache) ({ keys: k, values: v } = options.cache.append(k, v)); // (B, nh, Tpast + T, hs)
      const masking = { causal: this.config.causal, mask: options.mask, documentIds: options.documentIds };
      return this.attendAndProject(q, k, v, masking, options.attentionWeights);
    });
  }
}

/**
 * Multi-head cross-attention, how a decoder reads its source: queries from this sequence (`q_attn`, C → C),
 * keys and values from another one, the encoder's output (`c_attn`, C → 2C); the names Hugging Face uses
 * for GPT-2 with cross-attention. Never causal: the whole source is given at once.
 */
export class CrossAttention extends AttentionHeads {
  readonly q_attn: Linear;
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  readonly attn_dropout: Dropout;
  readonly resid_dropout: Dropout;

  constructor(config: AttentionConfig, random: Random) {
    super(config);
    const { embeddingDim: C, bias, initStd } = config;
    this.q_attn = this.addModule("q_attn", new Linear(C, C, { bias, initStd, seed: random.seed() }));
    this.c_attn = this.addModule("c_attn", new Linear(C, 2 * C, { bias, initStd, seed: random.seed() }));
    this.c_proj = this.addModule("c_proj", outputProjection(config, random));
    this.attn_dropout = this.addModule("attn_dropout", new Dropout(config.dropout, random));
    this.resid_dropout = this.addModule("resid_dropout", new Dropout(config.dropout, random));
  }

  /** x: (B, Tq, C) attends over context: (B, Tk, C) → (B, Tq, C). */
  forward(x: tf.Tensor, context: tf.Tensor, options: CrossAttentionCallOptions = {}): tf.Tensor {
    return tf.tidy(() => {
      const [q] = this.splitHeads(this.q_attn.forward(x)); // (B, nh, Tq, hs)
      const [k, v] = this.splitHeads(this.c_attn.forward(context), 2); // (B, nh, Tk, hs) each
      return this.attendAndProject(q, k, v, { mask: options.mask }, options.attentionWeights);
    });
  }
}

function divisorsOf(n: number): number[] {
  const divisors: number[] = [];
  for (let d = 1; d <= n && divisors.length < 6; d++) if (n % d === 0) divisors.push(d);
  return divisors;
}
