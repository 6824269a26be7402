import * as tf from "@tensorflow/tfjs";
import { multiply2d } from "./batch-matmul.js";
import { type KernelArgs, defineKernel } from "./registry.js";
import { type SimdKernels, simdKernels } from "./simd.js";
import { transposeWords, wordsOf } from "./transpose.js";
import { type KernelCall, kernelThreads, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset, i32, tensorId, withoutThreadPool } from "./wasm-heap.js";
import { MASKED_SCORE } from "../nn/attention.js";

/**
 * Scaled dot-product attention as one kernel (forward) and one gradient kernel, for the wasm backend:
 *
 *   P = softmax(Q Kᵀ · scale + M),  O = P V      with M = −1e9 where a key is hidden (causal, documents), else 0
 *
 * exactly the maths of `scaledDotProductAttention` (lib/nn/attention.ts), which calls it through
 * `fusedAttention` (lib/kernels/fused.ts) when there is no padding mask and no dropout. Composed from tfjs ops,
 * one attention is ~10 kernels forward and ~20 backward, each a full pass over the (B, nh, Tq, Tk) score
 * tensor. Here it is one pass per step, in one of two ways:
 * - block by block (head sizes a multiple of 4, the usual case): a query's scores are computed only for the
 *   keys it may see (below the causal diagonal, inside its own document), with the SIMD kernels of simd.ts,
 *   their softmax over those keys only (the others get exactly 0), and P·V and the gradients only over
 *   those keys too, all shared out among the kernel threads. Causal attention skips half the work; rows
 *   packed with short conversations skip most of it (fine-tuning: the attention kernels' time ÷ 3).
 * - over whole rows: 2-D matmuls per (batch, head) (`multiply2d`), then the mask, and XNNPACK's softmax over
 *   whole rows (hidden keys get exactly 0). The per-head matmuls are small (~1 MFLOP): with XNNPACK (no
 *   SIMD kernels), they run without its thread pool (`withoutThreadPool`).
 * Scaling and the softmax gradient are single passes (SIMD where possible).
 *
 * Inputs q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv) with equal leading dimensions; with `causal`,
 * query i (the last Tq of Tk positions) sees keys j ≤ i + Tk − Tq, as `causalMask` defines. Optional
 * input documentIds, int32 (B, T) for q, k, v of shape (B, nh, T, hs): a query sees only keys of its own
 * document, as `documentMask` defines (packed rows).
 */
export const FUSED_ATTENTION = "GptFusedAttention";
export const FUSED_DOCUMENT_ATTENTION = "GptFusedDocumentAttention"; // the same with document ids (packed rows)
export const FUSED_ATTENTION_GRAD = "GptFusedAttentionGrad";
/** Scores (B · nh · Tq · Tk) from which the block loops are shared out among the kernel threads. */
const PARALLEL_SCORES = 1 << 15;

interface Dims {
  batch: number; // product of the leading dimensions (B · nh)
  Tq: number;
  Tk: number;
  hs: number;
  hv: number;
}

/**
 * Which keys each query may see: with `causal`, key j ≤ i + Tk − Tq; with `documents` (int32 (B, T),
 * Tq = Tk = T, `batch` = B · nh), only keys of the query's own document.
 */
interface Visibility {
  causal: boolean;
  documents?: Int32Array;
}

/** Number of keys query i may see, counted from key 0 (the causal limit; documents are checked per key). */
function visibleKeys(i: number, { Tq, Tk }: Dims, causal: boolean): number {
  return causal ? Math.min(Tk, Math.max(0, i + Tk - Tq + 1)) : Tk;
}

/** Offset of flat batch entry b's row of document ids (entries are (B, nh) flattened: nh per row). */
function documentRow(b: number, { batch, Tk }: Dims, documents: Int32Array): number {
  const heads = batch / (documents.length / Tk);
  return Math.floor(b / heads) * Tk;
}

function dimsOf(q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo): Dims {
  const r = q.shape.length;
  return {
    batch: tf.util.sizeFromShape(q.shape.slice(0, -2)),
    Tq: q.shape[r - 2],
    Tk: k.shape[r - 2],
    hs: q.shape[r - 1],
    hv: v.shape[r - 1],
  };
}

/** Forward: outputs [O (..., Tq, hv), P (..., Tq, Tk)]. */
function fusedAttentionWasm(args: KernelArgs): tf.TensorInfo[] {
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
 * A block of queries and the block of keys they may see: queries q0 … q0 + rows − 1 against keys
 * k0 … k0 + keys − 1, where query i of the block sees key j of the block when j ≤ i + above (causal:
 * above = keys − rows; not causal: above = keys, every key).
 */
interface Block {
  q0: number;
  k0: number;
  rows: number;
  keys: number;
  above: number;
}

/**
 * The blocks of each row of document ids (or a single list for every entry when there are no documents):
 * one block per document, since a query sees only its own document; without documents, one block of all
 * queries and keys. Undefined where the block path does not apply (it then uses the full-row path): head
 * sizes that are not a multiple of 4 (the SIMD kernels' width), causal with more queries than keys (some
 * queries would see no key at all), or a document whose positions are not contiguous.
 */
function attentionBlocks(dims: Dims, { causal, documents }: Visibility): Block[][] | undefined {
  const { Tq, Tk, hs, hv } = dims;
  if (hs % 4 !== 0 || hv % 4 !== 0 || (causal && Tq > Tk)) return undefined;
  if (!documents) return [[{ q0: 0, k0: 0, rows: Tq, keys: Tk, above: causal ? Tk - Tq : Tk }]];
  const rows: Block[][] = [];
  for (let rowStart = 0; rowStart < documents.length; rowStart += Tk) {
    const blocks: Block[] = [];
    const seen = new Set<number>();
    for (let start = 0; start < Tk; ) {
      const id = documents[rowStart + start];
      if (seen.has(id)) return undefined; // a document in two pieces
      seen.add(id);
      let end = start + 1;
      while (end < Tk && documents[rowStart + end] === id) end++;
      const length = end - start;
      blocks.push({ q0: start, k0: start, rows: length, keys: length, above: causal ? 0 : length });
      start = end;
    }
    rows.push(blocks);
  }
  return rows;
}

/** Calls f for every block of every (batch, head) entry b; entries are (B, nh) flattened, nh per row of ids. */
function forEachBlock(batch: number, blocks: Block[][], f: (b: number, block: Block) => void): void {
  for (let b = 0; b < batch; b++) {
    for (const block of blocks[Math.floor((b * blocks.length) / batch)]) f(b, block);
  }
}

/**
 * The forward pass block by block with the SIMD kernels (simd.ts): scores only where a query may look
 * (its block, below the causal diagonal), their softmax (and exact zeros for every other key), then O = P V
 * over the visible keys only. For one causal block this skips the half of the work above the diagonal; for
 * rows packed with short documents, most of it. Each of the three steps is shared out among the kernel
 * threads, block by block.
 */
function blockAttention(
  backend: WasmBackend,
  simd: SimdKernels,
  { q, k, v, output, weights }: Record<"q" | "k" | "v" | "output" | "weights", tf.TensorInfo>,
  { batch, Tq, Tk, hs, hv }: Dims,
  scale: number,
  blocks: Block[][],
): void {
  const scores = backend.makeOutput([batch, Tq, Tk], "float32"); // only the visible entries are written and read
  const [Q, K, V, S, O, P] = [q, k, v, scores, output, weights].map((t) => heapOffset(backend, t));
  const threads = kernelThreads(heapMemory(backend), batch * Tq * Tk, PARALLEL_SCORES);
  const scoreCalls: KernelCall[] = [];
  const softmaxCalls: KernelCall[] = [];
  forEachBlock(batch, blocks, (b, { q0, k0, rows, keys, above }) => {
    const queries = Q + 4 * (b * Tq + q0) * hs;
    const block = 4 * ((b * Tq + q0) * Tk + k0);
    scoreCalls.push([
      "dotProducts",
      queries,
      K + 4 * (b * Tk + k0) * hs,
      S + block,
      rows,
      keys,
      hs,
      hs,
      hs,
      Tk,
      above,
      scale,
    ]);
    softmaxCalls.push(["softmaxBlock", S + block, P + block, rows, keys, above, Tk, k0]);
  });
  runShared(threads, simd, scoreCalls);
  runShared(threads, simd, softmaxCalls);
  backend.disposeData(scores.dataId);
  const outputCalls: KernelCall[] = [];
  forEachBlock(batch, blocks, (b, { q0, k0, rows, keys, above }) => {
    const p = P + 4 * ((b * Tq + q0) * Tk + k0);
    // query i reads keys from the block's first (below = rows: i − rows < 0 for every row) to its last visible one
    outputCalls.push([
      "weightedRows",
      p,
      V + 4 * (b * Tk + k0) * hv,
      O + 4 * (b * Tq + q0) * hv,
      rows,
      hv,
      keys,
      Tk,
      1,
      hv,
      hv,
      rows,
      above,
    ]);
  });
  runShared(threads, simd, outputCalls);
}

/**
 * The backward pass block by block (see fusedAttentionGradWasm for the maths). P is 0 outside the blocks, so
 * dS is too: it starts as zeros and only the blocks are computed. Pᵀ and dSᵀ are read with swapped strides
 * (weightedRows' row and column strides), so nothing is transposed.
 */
function blockAttentionGrad(
  backend: WasmBackend,
  simd: SimdKernels,
  { dO, dP, q, k, v, p, dq, dk, dv }: Record<"dO" | "dP" | "q" | "k" | "v" | "p" | "dq" | "dk" | "dv", tf.TensorInfo>,
  { batch, Tq, Tk, hs, hv }: Dims,
  scale: number,
  blocks: Block[][],
): void {
  const dS = backend.makeOutput([batch, Tq, Tk], "float32");
  f32(backend, dS).fill(0);
  const [DO, Q, K, V, P, DS, DQ, DK, DV, DP] = [dO, q, k, v, p, dS, dq, dk, dv, dP].map((t) => heapOffset(backend, t));
  const threads = kernelThreads(heapMemory(backend), batch * Tq * Tk, PARALLEL_SCORES);
  // a block's byte offsets: (q0, k0) in the (Tq, Tk) matrices P and dS; its first query and key rows, per float of width
  const offsets = (b: number, { q0, k0 }: Block) => ({
    block: 4 * ((b * Tq + q0) * Tk + k0),
    query: 4 * (b * Tq + q0),
    key: 4 * (b * Tk + k0),
  });
  const valueCalls: KernelCall[] = [];
  forEachBlock(batch, blocks, (b, blockInfo) => {
    const { rows, keys, above } = blockInfo;
    const { block, query, key } = offsets(b, blockInfo);
    // dS = dO Vᵀ (visible entries), dV = Pᵀ dO (key j gets the queries i with j ≤ i + above)
    valueCalls.push(["dotProducts", DO + query * hv, V + key * hv, DS + block, rows, keys, hv, hv, hv, Tk, above, 1]);
    valueCalls.push([
      "weightedRows",
      P + block,
      DO + query * hv,
      DV + key * hv,
      keys,
      hv,
      rows,
      1,
      Tk,
      hv,
      hv,
      above,
      rows,
    ]);
  });
  runShared(threads, simd, valueCalls);
  const rowCalls = rangeCalls(threads, batch * Tq, 1, (from, count) => [
    "softmaxBwd",
    P + 4 * from * Tk,
    DS + 4 * from * Tk,
    DP + 4 * from * Tk,
    count,
    Tk,
    scale,
  ]);
  runShared(threads, simd, rowCalls);
  const queryKeyCalls: KernelCall[] = [];
  forEachBlock(batch, blocks, (b, blockInfo) => {
    const { rows, keys, above } = blockInfo;
    const { block, query, key } = offsets(b, blockInfo);
    // dQ = dS K, dK = dSᵀ Q
    queryKeyCalls.push([
      "weightedRows",
      DS + block,
      K + key * hs,
      DQ + query * hs,
      rows,
      hs,
      keys,
      Tk,
      1,
      hs,
      hs,
      rows,
      above,
    ]);
    queryKeyCalls.push([
      "weightedRows",
      DS + block,
      Q + query * hs,
      DK + key * hs,
      keys,
      hs,
      rows,
      1,
      Tk,
      hs,
      hs,
      above,
      rows,
    ]);
  });
  runShared(threads, simd, queryKeyCalls);
  backend.disposeData(dS.dataId);
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

/**
 * Backward: inputs dO, dP (the gradient reaching the weights output, zeros unless they were used), q, k, v
 * and the saved weights P. With dP_total = dO Vᵀ + dP:
 *   dV = Pᵀ dO,  dS = P ⊙ (dP_total − rowsum(P ⊙ dP_total)) · scale,  dQ = dS K,  dK = dSᵀ Q.
 */
function fusedAttentionGradWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { dO, dP, q, k, v, p, documentIds } = args.inputs as Record<string, tf.TensorInfo>;
  const visibility: Visibility = {
    causal: Boolean(args.attrs?.causal),
    documents: documentIds && i32(backend, documentIds).slice(),
  };
  const scale = args.attrs?.scale as number;
  const dims = dimsOf(q, k, v);
  const { batch, Tq, Tk, hs, hv } = dims;
  const dq = backend.makeOutput([...q.shape], "float32");
  const dk = backend.makeOutput([...k.shape], "float32");
  const dv = backend.makeOutput([...v.shape], "float32");
  if (batch * Tq * Tk === 0) {
    for (const t of [dq, dk, dv]) f32(backend, t).fill(0);
    return [dq, dk, dv];
  }
  const simd = simdKernels(backend);
  const blocks = simd && attentionBlocks(dims, visibility);
  if (blocks) {
    blockAttentionGrad(backend, simd, { dO, dP, q, k, v, p, dq, dk, dv }, dims, scale, blocks);
    return [dq, dk, dv];
  }
  const dOBase = heapOffset(backend, dO);

  // dS starts as dO Vᵀ (multiply2d takes Vᵀ as a row-major (hv, Tk) matrix)
  const vT = backend.makeOutput([batch, hv, Tk], "float32");
  transposeWords(wordsOf(backend, v), wordsOf(backend, vT), [batch, Tk, hv], [0, 2, 1], simd);
  const dS = backend.makeOutput([batch, Tq, Tk], "float32");
  const vTBase = heapOffset(backend, vT);
  const dSBase = heapOffset(backend, dS);
  withoutThreadPool(backend, () => {
    for (let b = 0; b < batch; b++) {
      multiply2d(backend, dOBase + b * Tq * hv * 4, Tq, hv, vTBase + b * hv * Tk * 4, Tk, dSBase + b * Tq * Tk * 4);
    }
  });
  backend.disposeData(vT.dataId);

  // dV = Pᵀ dO
  const transposed = backend.makeOutput([batch, Tk, Tq], "float32"); // Pᵀ, later dSᵀ
  transposeWords(wordsOf(backend, p), wordsOf(backend, transposed), [batch, Tq, Tk], [0, 2, 1], simd);
  const tBase = heapOffset(backend, transposed);
  const dvBase = heapOffset(backend, dv);
  withoutThreadPool(backend, () => {
    for (let b = 0; b < batch; b++) {
      multiply2d(backend, tBase + b * Tk * Tq * 4, Tk, Tq, dOBase + b * Tq * hv * 4, hv, dvBase + b * Tk * hv * 4);
    }
  });

  if (simd) simd.softmaxBwd(heapOffset(backend, p), dSBase, heapOffset(backend, dP), batch * Tq, Tk, scale);
  else softmaxBackward(f32(backend, p), f32(backend, dS), f32(backend, dP), batch * Tq, Tk, scale);

  // dQ = dS K, dK = dSᵀ Q
  const kBase = heapOffset(backend, k);
  const dqBase = heapOffset(backend, dq);
  withoutThreadPool(backend, () => {
    for (let b = 0; b < batch; b++) {
      multiply2d(backend, dSBase + b * Tq * Tk * 4, Tq, Tk, kBase + b * Tk * hs * 4, hs, dqBase + b * Tq * hs * 4);
    }
  });
  transposeWords(wordsOf(backend, dS), wordsOf(backend, transposed), [batch, Tq, Tk], [0, 2, 1], simd);
  const qBase = heapOffset(backend, q);
  const dkBase = heapOffset(backend, dk);
  withoutThreadPool(backend, () => {
    for (let b = 0; b < batch; b++) {
      multiply2d(backend, tBase + b * Tk * Tq * 4, Tk, Tq, qBase + b * Tq * hs * 4, hs, dkBase + b * Tk * hs * 4);
    }
  });
  backend.disposeData(dS.dataId);
  backend.disposeData(transposed.dataId);
  return [dq, dk, dv];
}

/** In place: g ← p ⊙ ((g + extra) − Σ_row p ⊙ (g + extra)) · scale, row by row (rows of length n). */
function softmaxBackward(
  p: Float32Array,
  g: Float32Array,
  extra: Float32Array,
  rows: number,
  n: number,
  scale: number,
): void {
  const withExtra = extra.length === g.length;
  for (let r = 0; r < rows; r++) {
    const start = r * n;
    const end = start + n;
    let dot = 0;
    if (withExtra) {
      for (let j = start; j < end; j++) {
        const gj = g[j] + extra[j];
        g[j] = gj;
        dot += p[j] * gj;
      }
    } else {
      for (let j = start; j < end; j++) dot += p[j] * g[j];
    }
    for (let j = start; j < end; j++) g[j] = p[j] * (g[j] - dot) * scale;
  }
}

/** Registers the fused attention kernels on wasm and their gradients (backend-independent). */
export function registerFusedAttention(): void {
  const forward = fusedAttentionWasm as unknown as (a: KernelArgs) => tf.TensorInfo[];
  defineKernel(FUSED_ATTENTION, "wasm", forward);
  defineKernel(FUSED_DOCUMENT_ATTENTION, "wasm", forward);
  defineKernel(FUSED_ATTENTION_GRAD, "wasm", fusedAttentionGradWasm as unknown as (a: KernelArgs) => tf.TensorInfo[]);
  // two kernel names because tfjs saves inputs for the gradient by name: the document ids only where given
  for (const [kernelName, inputsToSave] of [
    [FUSED_ATTENTION, ["q", "k", "v"]],
    [FUSED_DOCUMENT_ATTENTION, ["q", "k", "v", "documentIds"]],
  ] as const) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: [...inputsToSave],
      outputsToSave: [false, true],
      gradFunc: (dys, saved, attrs) => {
        const [dO, dP] = dys as tf.Tensor[];
        const [q, k, v, ...rest] = saved; // then [documentIds,] p
        const p = rest.pop()!;
        const documentIds = rest.length > 0 ? { documentIds: rest[0] } : {};
        const [dq, dk, dv] = tf
          .engine()
          .runKernel(
            FUSED_ATTENTION_GRAD,
            { dO, dP, q, k, v, p, ...documentIds } as unknown as tf.NamedTensorMap,
            attrs as tf.NamedAttrMap,
          ) as tf.Tensor[];
        return { q: () => dq, k: () => dk, v: () => dv };
      },
    });
  }
}
