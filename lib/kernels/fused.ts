import * as tf from "@tensorflow/tfjs";
import { FUSED_ADAMW } from "./adamw.js";
import { FUSED_ATTENTION, FUSED_DOCUMENT_ATTENTION } from "./attention.js";
import { FUSED_CROSS_ENTROPY } from "./cross-entropy.js";
import { wasmBatchMatMulIsFast } from "./batch-matmul.js";
import { FUSED_GELU_TANH } from "./gelu.js";
import { FUSED_SPLIT_HEADS } from "./heads.js";
import { FUSED_LINEAR } from "./linear.js";
import { FUSED_LAYER_NORM } from "./layernorm.js";

/**
 * The fence between the course's teaching code and its speed machinery: the one module that lib/nn, lib/models,
 * lib/training and lib/finetuning import from lib/kernels. Each function here returns a faster route to the same
 * result where the active backend has one, and `undefined` elsewhere, so the teaching code reads
 *
 *   const fused = fusedLayerNorm(x, gamma, beta, epsilon);
 *   if (fused) return fused;
 *   ... the maths, step by step, in TensorFlow.js ops
 *
 * like nanoGPT's single `if self.flash:`. The faster routes: single hand-written kernels for attention, a Linear
 * layer, splitting heads, LayerNorm,
 * GELU, the cross-entropy and the AdamW update (lib/kernels/, registered for wasm by `initBackend`), and on wasm
 * without those kernels (GPT_WASM_KERNELS=0) a matmul and an embedding lookup whose gradients avoid tfjs's slow or
 * missing kernels. Only how the work is done differs; tests/kernels.test.ts checks each against tfjs's cpu backend.
 */

/** True when the active backend is WebAssembly, whose fast matmul (XNNPACK) takes only plain 2-D operands. */
function onWasm(): boolean {
  return tf.getBackend() === "wasm";
}

/**
 * a @ b for 2-D tensors (either operand transposed), where plain `tf.matMul` is slow: on wasm without lib/kernels'
 * matmul (GPT_WASM_KERNELS=0). Undefined elsewhere.
 *
 * The gradient of C = A·B is dA = dC·Bᵀ and dB = Aᵀ·dC. TensorFlow.js computes those with transposed matmuls,
 * which tfjs's own WebAssembly kernel runs in a slow scalar loop. lib/kernels' replacement handles transposes
 * itself; without it, every transpose is done explicitly first here, so every multiplication (forward and
 * backward) is a plain 2-D matmul.
 */
export function fusedMatMul(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  transposeA = false,
  transposeB = false,
): tf.Tensor2D | undefined {
  if (!onWasm() || wasmBatchMatMulIsFast()) return undefined;
  const plainMatMul = tf.customGrad((x, y, save) => {
    const left = x as tf.Tensor2D;
    const right = y as tf.Tensor2D;
    (save as tf.GradSaveFunc)([left, right]);
    return {
      value: tf.matMul(left, right),
      gradFunc: (dy, [savedLeft, savedRight]) => [
        tf.matMul(dy as tf.Tensor2D, (savedRight as tf.Tensor2D).transpose()),
        tf.matMul((savedLeft as tf.Tensor2D).transpose(), dy as tf.Tensor2D),
      ],
    };
  });
  return tf.tidy(() => {
    const left = transposeA ? a.transpose() : a;
    const right = transposeB ? b.transpose() : b;
    return plainMatMul(left, right) as tf.Tensor2D;
  });
}

/**
 * Rows of `table` picked by integer `ids` (`tf.gather`: an embedding lookup), where tfjs cannot differentiate
 * `tf.gather`: its gradient is a scatter-add, TensorFlow.js's `UnsortedSegmentSum` kernel, which the WebAssembly
 * backend lacks. There the same sum is computed as oneHot(ids)ᵀ · dy, a matmul. Undefined elsewhere.
 */
export function fusedGatherRows(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor | undefined {
  if (tf.getKernel("UnsortedSegmentSum", tf.getBackend()) !== undefined) return undefined;
  const lookup = tf.customGrad((weights, indices, save) => {
    const flatIds = (indices as tf.Tensor).reshape([-1]).toInt();
    (save as tf.GradSaveFunc)([flatIds]);
    const rows = tf.gather(weights as tf.Tensor2D, flatIds);
    const [vocabSize, width] = (weights as tf.Tensor2D).shape;
    return {
      value: rows.reshape([...(indices as tf.Tensor).shape, width]),
      gradFunc: (dy, [savedIds]) => {
        const oneHot = tf.oneHot(savedIds as tf.Tensor1D, vocabSize).toFloat() as tf.Tensor2D; // (N, vocab)
        const dyRows = (dy as tf.Tensor).reshape([-1, width]) as tf.Tensor2D; // (N, width)
        const dTable = fusedMatMul(oneHot, dyRows, true, false) ?? tf.matMul(oneHot, dyRows, true, false);
        return [dTable, tf.zerosLike(indices as tf.Tensor)];
      },
    };
  });
  return lookup(table, ids);
}

/**
 * softmax(Q Kᵀ / √d_k + M) V as one fused kernel, on backends that have one (wasm: lib/kernels/attention.ts),
 * with the same result as `scaledDotProductAttention`'s step-by-step version and a hand-written gradient.
 * Returns undefined (the caller then composes the maths from tfjs ops) when the backend has no such kernel,
 * or for what the kernel does not do: padding masks, dropout on the weights, broadcasting, non-float32.
 * Document ids (packed rows) are part of the kernel's mask.
 */
export function fusedAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: { causal?: boolean; mask?: tf.Tensor; documentIds?: tf.Tensor; dropout?: unknown },
): { output: tf.Tensor; weights: tf.Tensor } | undefined {
  if (options.mask !== undefined || options.dropout !== undefined) return undefined;
  if (!hasKernel(FUSED_ATTENTION)) return undefined;
  const rank = q.rank;
  const lead = (t: tf.Tensor) => t.shape.slice(0, -2).join();
  if (rank < 3 || k.rank !== rank || v.rank !== rank || lead(q) !== lead(k) || lead(k) !== lead(v)) return undefined;
  if (q.dtype !== "float32" || k.dtype !== "float32" || v.dtype !== "float32") return undefined;
  const headSize = q.shape[rank - 1];
  if (k.shape[rank - 1] !== headSize || k.shape[rank - 2] !== v.shape[rank - 2]) return undefined;
  const { documentIds } = options;
  if (documentIds) {
    // (B, T) ids for q, k, v of shape (B, nh, T, hs)
    const [B, T] = documentIds.shape;
    if (
      rank !== 4 ||
      documentIds.rank !== 2 ||
      documentIds.dtype !== "int32" ||
      B !== q.shape[0] ||
      T !== q.shape[2] ||
      T !== k.shape[2]
    )
      return undefined;
  }
  const [output, weights] = tf
    .engine()
    .runKernel(
      documentIds ? FUSED_DOCUMENT_ATTENTION : FUSED_ATTENTION,
      documentIds ? { q, k, v, documentIds } : { q, k, v },
      { causal: Boolean(options.causal), scale: 1 / Math.sqrt(headSize) },
    ) as tf.Tensor[];
  return { output, weights };
}

/** True when the active backend has the named (fused) kernel. */
function hasKernel(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/**
 * Layer normalisation over the last axis, (x − mean) / √(var + ε) · γ + β, as one fused kernel with a
 * hand-written gradient on backends that have one (wasm: lib/kernels/layernorm.ts); undefined elsewhere,
 * and the caller composes the maths from tfjs ops.
 */
export function fusedLayerNorm(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon: number,
): tf.Tensor | undefined {
  if (!hasKernel(FUSED_LAYER_NORM) || x.dtype !== "float32" || x.rank < 1) return undefined;
  const C = x.shape[x.rank - 1];
  if (gamma.shape.join() !== `${C}` || beta.shape.join() !== `${C}`) return undefined;
  // The kernel also outputs the mean and 1/σ for its gradient; tidy frees them here (the tape keeps its own copies).
  return tf.tidy(() => (tf.engine().runKernel(FUSED_LAYER_NORM, { x, gamma, beta }, { epsilon }) as tf.Tensor[])[0]);
}

/**
 * GPT-2's tanh-approximated GELU, ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), as one fused kernel with a
 * hand-written gradient on backends that have one (wasm: lib/kernels/gelu.ts); undefined elsewhere.
 */
export function fusedGeluTanh(x: tf.Tensor): tf.Tensor | undefined {
  if (!hasKernel(FUSED_GELU_TANH) || x.dtype !== "float32") return undefined;
  // The kernel also outputs tanh(u) for its gradient; tidy frees it here (the tape keeps its own copy).
  return tf.tidy(() => (tf.engine().runKernel(FUSED_GELU_TANH, { x }) as tf.Tensor[])[0]);
}

/**
 * x·W + b for x (M, K), W (K, N), b (N): a Linear layer, as one kernel that adds the bias while it stores the
 * product, and whose gradient computes dW and db together, on backends that have it (wasm:
 * lib/kernels/linear.ts); undefined elsewhere.
 */
export function fusedLinear(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D | undefined {
  if (!hasKernel(FUSED_LINEAR) || x.dtype !== "float32" || weight.dtype !== "float32" || bias.dtype !== "float32")
    return undefined;
  // frozen variables (trainable false, as LoRA leaves the base model) need no dW and db: the gradient skips them
  const trainable = [weight, bias].some((p) => (p as Partial<tf.Variable>).trainable !== false);
  return tf.engine().runKernel(FUSED_LINEAR, { x, weight, bias }, { trainable }) as tf.Tensor2D;
}

/**
 * x (B, T, parts · C) cut into `parts` tensors (B, nh, T, hs), each head its own slice of each part's channels
 * (`tf.split` into parts, then a reshape and transpose per part), as one copy with a one-copy gradient on
 * backends that have it (wasm: lib/kernels/heads.ts); undefined elsewhere.
 */
export function fusedSplitHeads(x: tf.Tensor, parts: number, numHeads: number): tf.Tensor[] | undefined {
  if (!hasKernel(FUSED_SPLIT_HEADS) || x.dtype !== "float32" || x.rank !== 3) return undefined;
  return tf.engine().runKernel(FUSED_SPLIT_HEADS, { x }, { parts, numHeads }) as tf.Tensor[];
}

/**
 * The mean cross-entropy of (..., V) float32 logits against (...) int32 targets (those equal to `ignoreIndex`
 * skipped), as one fused kernel with a hand-written gradient on backends that have one (wasm:
 * lib/kernels/cross-entropy.ts); undefined elsewhere, and `crossEntropy` composes the maths from tfjs ops.
 */
export function fusedCrossEntropy(logits: tf.Tensor, targets: tf.Tensor, ignoreIndex: number): tf.Scalar | undefined {
  if (!hasKernel(FUSED_CROSS_ENTROPY) || logits.dtype !== "float32" || targets.dtype !== "int32") return undefined;
  // The kernel also outputs each row's log-sum-exp for its gradient; tidy frees it here (the tape keeps its own).
  return tf.tidy(
    () => (tf.engine().runKernel(FUSED_CROSS_ENTROPY, { logits, targets }, { ignoreIndex }) as tf.Tensor[])[0],
  ) as tf.Scalar;
}

/**
 * One AdamW step for one parameter as a single kernel on backends that have one (wasm: lib/kernels/adamw.ts):
 *   m' = β₁ m + (1 − β₁) g,  v' = β₂ v + (1 − β₂) g²,  w' = w · (1 − lr·λ) − lr · (m'/c₁) / (√(v'/c₂) + ε)
 * with c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ (λ = 0 for parameters without weight decay). Returns the new w, m, v
 * (the caller assigns them), or undefined where the backend has no such kernel.
 */
export function fusedAdamWUpdate(
  w: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  options: {
    learningRate: number;
    beta1: number;
    beta2: number;
    epsilon: number;
    weightDecay: number;
    correction1: number;
    correction2: number;
  },
): { w: tf.Tensor; m: tf.Tensor; v: tf.Tensor } | undefined {
  if (!hasKernel(FUSED_ADAMW) || [w, m, v, g].some((t) => t.dtype !== "float32" || t.shape.join() !== w.shape.join()))
    return undefined;
  const { learningRate, beta1, beta2, epsilon, weightDecay, correction1, correction2 } = options;
  const attrs = {
    learningRate,
    beta1,
    beta2,
    epsilon,
    decay: 1 - learningRate * weightDecay,
    correction1,
    correction2,
  };
  const [w2, m2, v2] = tf
    .engine()
    .runKernel(FUSED_ADAMW, { w, m, v, g }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { w: w2, m: m2, v: v2 };
}
