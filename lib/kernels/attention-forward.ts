/**
 * The fused attention's forward pass (attention.ts): block by block with the SIMD kernels, in plain loops for a
 * few queries, or over whole rows with 2-D matmuls and XNNPACK's softmax.
 */
import type * as tf from "@tensorflow/tfjs";
import {
  type Block,
  type Dims,
  PARALLEL_SCORES,
  type Visibility,
  attentionBlocks,
  dimsOf,
  forEachBlock,
} from "./attention-blocks.js";
import { multiply2d } from "./batch-matmul.js";
import type { KernelArgs } from "./registry.js";
import { type SimdKernels, simdKernels } from "./simd.js";
import { transposeWords, wordsOf } from "./transpose.js";
import { type KernelCall, kernelThreads, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset, i32, tensorId, withoutThreadPool } from "./wasm-heap.js";
import { MASKED_SCORE } from "../nn/attention.js";

/** Number of keys query i may see, counted from key 0 (the causal limit; documents are checked per key). */
function visibleKeys(i: number, { Tq, Tk }: Dims, causal: boolean): number {
  return causal ? Math.min(Tk, Math.max(0, i + Tk - Tq + 1)) : Tk;
}

/** Offset of flat batch entry b's row of document ids (entries are (B, nh) flattened: nh per row). */
function documentRow(b: number, { batch, Tk }: Dims, documents: Int32Array): number {
  const heads = batch / (documents.length / Tk);
  return Math.floor(b / heads) * Tk;
}

/** Forward: outputs [O (..., Tq, hv), P (..., Tq, Tk)]. */
export function fusedAttentionWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { q, k, v, documentIds } = args.inputs as Record<string, tf.TensorInfo>;
  // documents: a copy, as the allocations below may move the heap
  const visibility: Visibility = {
    causal: Boolean(args.attrs?.causal),
    documents: documentIds && i32(backend, documentIds).slice(),
  };
  const scale = args.attrs?.scale as number;
  const dims = dimsOf(q, k, v);
  const { batch, Tq, Tk, hs, hv } = dims;
  const lead = q.shape.slice(0, -2);
  const weights = backend.makeOutput([...lead, Tq, Tk], "float32");
  const output = backend.makeOutput([...lead, Tq, hv], "float32");
  if (batch * Tq * Tk === 0) return [output, weights];
  const simd = simdKernels(backend);
  const blocks = simd && attentionBlocks(dims, visibility);
  if (blocks) {
    blockAttention(backend, simd, { q, k, v, output, weights }, dims, scale, blocks);
    return [output, weights];
  }
  if (Tq <= SMALL_QUERY_LENGTH) {
    smallAttention(backend, q, k, v, output, weights, dims, scale, visibility);
    return [output, weights];
  }

  // scores = Q Kᵀ per (batch, head), into a temporary (multiply2d takes Kᵀ as a row-major (hs, Tk) matrix)
  const kT = backend.makeOutput([batch, hs, Tk], "float32");
  transposeWords(wordsOf(backend, k), wordsOf(backend, kT), [batch, Tk, hs], [0, 2, 1], simd);
  // the scale goes into Kᵀ (Q (Kᵀ·scale) = (Q Kᵀ)·scale, a 4-times smaller tensor than the scores)
  const kTValues = f32(backend, kT);
  for (let i = 0; i < kTValues.length; i++) kTValues[i] *= scale;
  const scores = backend.makeOutput([batch, Tq, Tk], "float32");
  const qBase = heapOffset(backend, q);
  const kTBase = heapOffset(backend, kT);
  const sBase = heapOffset(backend, scores);
  withoutThreadPool(backend, () => {
    for (let b = 0; b < batch; b++) {
      multiply2d(backend, qBase + b * Tq * hs * 4, Tq, hs, kTBase + b * hs * Tk * 4, Tk, sBase + b * Tq * Tk * 4);
    }
  });
  backend.disposeData(kT.dataId);

  mask(f32(backend, scores), dims, visibility);
  // row-wise softmax over Tk (XNNPACK), then O = P V
  backend.wasm._Softmax!(tensorId(backend, scores), tensorId(backend, weights), Tk, batch * Tq);
  backend.disposeData(scores.dataId);
  const pBase = heapOffset(backend, weights);
  const vBase = heapOffset(backend, v);
  const oBase = heapOffset(backend, output);
  withoutThreadPool(backend, () => {
    for (let b = 0; b < batch; b++) {
      multiply2d(backend, pBase + b * Tq * Tk * 4, Tq, Tk, vBase + b * Tk * hv * 4, hv, oBase + b * Tq * hv * 4);
    }
  });
  return [output, weights];
}

/**
 * The forward pass block by block with the SIMD kernels (simd.ts `attentionBlock`): scores only where a query
 * may look (its block, below the causal diagonal), computed in place in P, their softmax (and exact zeros for
 * every other key), then O = P V over the visible keys only. For one causal block this skips the half of the
 * work above the diagonal; for rows packed with short documents, most of it. One call per block and
 * (batch, head) entry, shared out among the kernel threads.
 */
function blockAttention(
  backend: WasmBackend,
  simd: SimdKernels,
  { q, k, v, output, weights }: Record<"q" | "k" | "v" | "output" | "weights", tf.TensorInfo>,
  { batch, Tq, Tk, hs, hv }: Dims,
  scale: number,
  blocks: Block[][],
): void {
  const [Q, K, V, O, P] = [q, k, v, output, weights].map((t) => heapOffset(backend, t));
  const threads = kernelThreads(heapMemory(backend), batch * Tq * Tk, PARALLEL_SCORES);
  const calls: KernelCall[] = [];
  forEachBlock(batch, blocks, (b, { q0, k0, rows, keys, above }) => {
    calls.push([
      "attentionBlock",
      Q + 4 * (b * Tq + q0) * hs,
      K + 4 * (b * Tk + k0) * hs,
      V + 4 * (b * Tk + k0) * hv,
      P + 4 * ((b * Tq + q0) * Tk + k0),
      O + 4 * (b * Tq + q0) * hv,
      rows,
      keys,
      hs,
      hv,
      Tk,
      above,
      k0,
      scale,
    ]);
  });
  runShared(threads, simd, calls);
}

/**
 * Up to this many queries (generation with a KV cache: 1), plain loops beat setting up XNNPACK calls. Used
 * only where the block path does not apply (head sizes that are not a multiple of 4).
 */
const SMALL_QUERY_LENGTH = 4;

/** The forward pass in plain loops (float64 sums), for a few queries against the cached keys. */
function smallAttention(
  backend: WasmBackend,
  q: tf.TensorInfo,
  k: tf.TensorInfo,
  v: tf.TensorInfo,
  output: tf.TensorInfo,
  weights: tf.TensorInfo,
  dims: Dims,
  scale: number,
  { causal, documents }: Visibility,
): void {
  const { batch, Tq, Tk, hs, hv } = dims;
  const [Q, K, V, O, P] = [q, k, v, output, weights].map((t) => f32(backend, t));
  const row = new Float64Array(Tk);
  for (let b = 0; b < batch; b++) {
    const ids = documents ? documentRow(b, dims, documents) : 0;
    for (let i = 0; i < Tq; i++) {
      const qRow = (b * Tq + i) * hs;
      const visible = visibleKeys(i, dims, causal);
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        const kRow = (b * Tk + j) * hs;
        let dot = 0;
        for (let c = 0; c < hs; c++) dot += Q[qRow + c] * K[kRow + c];
        row[j] = documents && documents[ids + j] !== documents[ids + i] ? MASKED_SCORE : Math.fround(dot) * scale;
        if (row[j] > max) max = row[j];
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        row[j] = Math.exp(row[j] - max);
        sum += row[j];
      }
      const pRow = (b * Tq + i) * Tk;
      const oRow = (b * Tq + i) * hv;
      const out = new Float64Array(hv);
      for (let j = 0; j < visible; j++) {
        const pj = row[j] / sum;
        P[pRow + j] = pj;
        const vRow = (b * Tk + j) * hv;
        for (let c = 0; c < hv; c++) out[c] += pj * V[vRow + c];
      }
      for (let j = visible; j < Tk; j++) P[pRow + j] = 0;
      O.set(out, oRow);
    }
  }
}

/** Scores of keys a query may not see (`Visibility`) become MASKED_SCORE: softmax gives them 0. */
function mask(s: Float32Array, dims: Dims, { causal, documents }: Visibility): void {
  const { batch, Tq, Tk } = dims;
  if (!causal && !documents) return;
  for (let b = 0; b < batch; b++) {
    const ids = documents ? documentRow(b, dims, documents) : 0;
    for (let i = 0; i < Tq; i++) {
      const row = (b * Tq + i) * Tk;
      const visible = visibleKeys(i, dims, causal);
      if (visible < Tk) s.fill(MASKED_SCORE, row + visible, row + Tk);
      if (!documents) continue;
      const own = documents[ids + i];
      for (let j = 0; j < visible; j++) if (documents[ids + j] !== own) s[row + j] = MASKED_SCORE;
    }
  }
}
