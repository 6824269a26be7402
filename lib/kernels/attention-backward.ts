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
import { type KernelCall, kernelThreads, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset, i32, withoutThreadPool } from "./wasm-heap.js";

/**
 * The backward pass block by block (see fusedAttentionGradWasm for the maths; simd.ts `attentionBlockGrad`):
 * one call per block and (batch, head) entry. Only the visible entries of dS are computed and read, so its
 * memory needs no zeros. Pᵀ and dSᵀ are read with swapped strides, so nothing is transposed.
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
  const [DO, Q, K, V, P, DS, DQ, DK, DV] = [dO, q, k, v, p, dS, dq, dk, dv].map((t) => heapOffset(backend, t));
  const threads = kernelThreads(heapMemory(backend), batch * Tq * Tk, PARALLEL_SCORES);
  const calls: KernelCall[] = [];
  forEachBlock(batch, blocks, (b, { q0, k0, rows, keys, above }) => {
    const block = 4 * ((b * Tq + q0) * Tk + k0); // (q0, k0) in the (Tq, Tk) matrices P, dS and dP
    const query = 4 * (b * Tq + q0); // the block's first query row, per float of width
    const key = 4 * (b * Tk + k0);
    calls.push([
      "attentionBlockGrad",
      DO + query * hv,
      dP ? heapOffset(backend, dP) + block : 0,
      Q + query * hs,
      K + key * hs,
      V + key * hv,
      P + block,
      DS + block,
      DQ + query * hs,
      DK + key * hs,
      DV + key * hv,
      rows,
      keys,
      hs,
      hv,
      Tk,
      above,
      scale,
    ]);
  });
  runShared(threads, simd, calls);
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

  const rows = batch * Tq;
  if (simd && dP) simd.softmaxBwd(heapOffset(backend, p), dSBase, heapOffset(backend, dP), rows, Tk, Tk, Tk, scale);
  else if (simd) simd.softmaxBwdPlain(heapOffset(backend, p), dSBase, 0, rows, Tk, Tk, Tk, scale);
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
