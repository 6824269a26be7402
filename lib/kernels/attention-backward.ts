/**
 * The fused attention's gradient (attention.ts): dQ, dK and dV from dO and the saved weights P, block by block
 * with the SIMD kernels or over whole rows with 2-D matmuls.
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
import { type KernelCall, kernelThreads, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset, i32, withoutThreadPool } from "./wasm-heap.js";

/**
 * The backward pass block by block (see fusedAttentionGradWasm for the maths). P is 0 outside the blocks, so
 * dS is too: it starts as zeros and only the blocks are computed. Pᵀ and dSᵀ are read with swapped strides
 * (weightedRows' row and column strides), so nothing is transposed.
 */
function blockAttentionGrad(
  backend: WasmBackend,
  simd: SimdKernels,
  {
    dO,
    dP,
    q,
    k,
    v,
    p,
    dq,
    dk,
    dv,
  }: Record<"dO" | "q" | "k" | "v" | "p" | "dq" | "dk" | "dv", tf.TensorInfo> & {
    dP?: tf.TensorInfo;
  },
  { batch, Tq, Tk, hs, hv }: Dims,
  scale: number,
  blocks: Block[][],
): void {
  const dS = backend.makeOutput([batch, Tq, Tk], "float32");
  f32(backend, dS).fill(0);
  const [DO, Q, K, V, P, DS, DQ, DK, DV] = [dO, q, k, v, p, dS, dq, dk, dv].map((t) => heapOffset(backend, t));
  const DP = dP ? heapOffset(backend, dP) : 0;
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
    dP ? "softmaxBwd" : "softmaxBwdPlain",
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
 * Backward: inputs dO, dP (the gradient reaching the weights output; absent when the loss does not use them),
 * q, k, v and the saved weights P. With dP_total = dO Vᵀ + dP:
 *   dV = Pᵀ dO,  dS = P ⊙ (dP_total − rowsum(P ⊙ dP_total)) · scale,  dQ = dS K,  dK = dSᵀ Q.
 */
export function fusedAttentionGradWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { dO, dP, q, k, v, p, documentIds } = args.inputs as Record<string, tf.TensorInfo | undefined> &
    Record<"dO" | "q" | "k" | "v" | "p", tf.TensorInfo>;
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

  if (simd && dP) simd.softmaxBwd(heapOffset(backend, p), dSBase, heapOffset(backend, dP), batch * Tq, Tk, scale);
  else if (simd) simd.softmaxBwdPlain(heapOffset(backend, p), dSBase, 0, batch * Tq, Tk, scale);
  else softmaxBackward(f32(backend, p), f32(backend, dS), dP && f32(backend, dP), batch * Tq, Tk, scale);

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
  extra: Float32Array | undefined,
  rows: number,
  n: number,
  scale: number,
): void {
  for (let r = 0; r < rows; r++) {
    const start = r * n;
    const end = start + n;
    let dot = 0;
    if (extra) {
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
