import * as tf from "@tensorflow/tfjs";
import { sumRows } from "./reduce.js";
import { type KernelArgs, acceptMissingOutputGradients, defineKernel } from "./registry.js";
import { simdKernels } from "./simd.js";
import { kernelThreads, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset } from "./wasm-heap.js";

/**
 * Layer normalisation over the last axis as one kernel and one gradient kernel, for the wasm backend:
 *
 *   y = (x − mean) / √(var + ε) · γ + β
 *
 * the maths of `LayerNorm.forward` (lib/nn/layers.ts), which calls it through `fusedLayerNorm`
 * (lib/kernels/fused.ts). Composed from tfjs ops that is ~8 kernels forward and ~20 backward, each a pass over
 * the activations and each output kept for the backward pass; here it is one pass each way (WebAssembly
 * SIMD when C is a multiple of 4, simd.ts; else JavaScript with float64 statistics), and the backward pass
 * needs only x and the per-row mean and 1/√(var + ε).
 *
 * Gradient, with x̂ = (x − mean)·r, r = 1/√(var + ε), g = dy ⊙ γ, C features:
 *   dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂)),   dγ = Σ_rows dy ⊙ x̂,   dβ = Σ_rows dy
 */
export const FUSED_LAYER_NORM = "GptFusedLayerNorm";
export const FUSED_LAYER_NORM_GRAD = "GptFusedLayerNormGrad";
/** Elements from which the forward pass is shared out among the kernel threads. */
const PARALLEL_ELEMENTS = 1 << 16;
/** Rows per block of dγ and dβ partial sums in float32 (then added in float64): 32 keeps float32's error small. */
const BLOCK_ROWS = 32;

/** Forward: inputs x (..., C), gamma (C), beta (C) → [y (..., C), mean (rows), rstd (rows)]. */
function layerNormWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const epsilon = args.attrs!.epsilon as number;
  const C = x.shape[x.shape.length - 1];
  const rows = C === 0 ? 0 : tf.util.sizeFromShape(x.shape) / C;
  const y = backend.makeOutput([...x.shape], "float32");
  const meanOut = backend.makeOutput([rows], "float32");
  const rstdOut = backend.makeOutput([rows], "float32");
  const simd = simdKernels(backend);
  if (simd && C % 4 === 0 && rows > 0) {
    // rows are independent: a few ranges of them per kernel thread
    const [X, G, B, Y, MEAN, RSTD] = [x, gamma, beta, y, meanOut, rstdOut].map((t) => heapOffset(backend, t));
    const threads = kernelThreads(heapMemory(backend), rows * C, PARALLEL_ELEMENTS);
    const calls = rangeCalls(threads, rows, 1, (from, count) => [
      "layerNormFwd",
      X + 4 * from * C,
      G,
      B,
      Y + 4 * from * C,
      MEAN + 4 * from,
      RSTD + 4 * from,
      count,
      C,
      epsilon,
    ]);
    runShared(threads, simd, calls);
    return [y, meanOut, rstdOut];
  }
  const xs = f32(backend, x);
  const ys = f32(backend, y);
  const g = f32(backend, gamma);
  const b = f32(backend, beta);
  const means = f32(backend, meanOut);
  const rstds = f32(backend, rstdOut);
  for (let r = 0; r < rows; r++) {
    const start = r * C;
    const end = start + C;
    let sum = 0;
    for (let i = start; i < end; i++) sum += xs[i];
    const mean = sum / C;
    let squares = 0;
    for (let i = start; i < end; i++) {
      const d = xs[i] - mean;
      squares += d * d;
    }
    const rstd = 1 / Math.sqrt(squares / C + epsilon);
    for (let i = start, c = 0; i < end; i++, c++) ys[i] = (xs[i] - mean) * rstd * g[c] + b[c];
    means[r] = mean;
    rstds[r] = rstd;
  }
  return [y, meanOut, rstdOut];
}

/** Backward: inputs dy, x, gamma, mean, rstd → [dx, dgamma, dbeta]. */
function layerNormGradWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { dy, x, gamma, mean, rstd } = args.inputs as Record<string, tf.TensorInfo>;
  const C = x.shape[x.shape.length - 1];
  const rows = C === 0 ? 0 : tf.util.sizeFromShape(x.shape) / C;
  const dxOut = backend.makeOutput([...x.shape], "float32");
  const dgammaOut = backend.makeOutput([C], "float32");
  const dbetaOut = backend.makeOutput([C], "float32");
  const simd = simdKernels(backend);
  if (simd && C % 4 === 0 && rows > 0) {
    // dγ and dβ: float32 sums per block of BLOCK_ROWS rows (one slot each, so that threads can take different
    // blocks), then the blocks' column sums in float64 (`columnSums`): the same sums on any number of threads
    const blocks = Math.ceil(rows / BLOCK_ROWS);
    const slotBytes = 4 * C;
    // the slots, then columnSums' float64 scratch (unsigned offsets: the heap may exceed 2 GB)
    const scratch = backend.wasm._malloc(2 * blocks * slotBytes + 8 * C) >>> 0;
    new Uint8Array(backend.wasm.HEAPU8.buffer, scratch, 2 * blocks * slotBytes).fill(0);
    const blockB = scratch + blocks * slotBytes;
    const [DY, X, GAMMA, MEAN, RSTD, DX] = [dy, x, gamma, mean, rstd, dxOut].map((t) => heapOffset(backend, t));
    const threads = kernelThreads(heapMemory(backend), rows * C, PARALLEL_ELEMENTS);
    const calls = rangeCalls(threads, blocks, 1, (from, count) => {
      const row = from * BLOCK_ROWS;
      return [
        "layerNormBwd",
        DY + 4 * row * C,
        X + 4 * row * C,
        GAMMA,
        MEAN + 4 * row,
        RSTD + 4 * row,
        DX + 4 * row * C,
        scratch + from * slotBytes,
        blockB + from * slotBytes,
        Math.min(rows, row + count * BLOCK_ROWS) - row,
        C,
      ];
    });
    runShared(threads, simd, calls);
    const acc64 = scratch + 2 * blocks * slotBytes;
    simd.columnSums(scratch, heapOffset(backend, dgammaOut), acc64, blocks, C, C);
    simd.columnSums(blockB, heapOffset(backend, dbetaOut), acc64, blocks, C, C);
    backend.wasm._free(scratch);
    return [dxOut, dgammaOut, dbetaOut];
  }
  const dys = f32(backend, dy);
  const xs = f32(backend, x);
  const g = f32(backend, gamma);
  const means = f32(backend, mean);
  const rstds = f32(backend, rstd);
  const dx = f32(backend, dxOut);
  const dgamma = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const start = r * C;
    const m = means[r];
    const s = rstds[r];
    let sumG = 0;
    let sumGX = 0;
    for (let c = 0; c < C; c++) {
      const xhat = (xs[start + c] - m) * s;
      const d = dys[start + c];
      const gc = d * g[c];
      sumG += gc;
      sumGX += gc * xhat;
      dgamma[c] += d * xhat;
    }
    const meanG = sumG / C;
    const meanGX = sumGX / C;
    for (let c = 0; c < C; c++) {
      const xhat = (xs[start + c] - m) * s;
      dx[start + c] = s * (dys[start + c] * g[c] - meanG - xhat * meanGX);
    }
  }
  f32(backend, dgammaOut).set(dgamma);
  sumRows(dys, rows, C, f32(backend, dbetaOut));
  return [dxOut, dgammaOut, dbetaOut];
}

export function registerFusedLayerNorm(): void {
  defineKernel(FUSED_LAYER_NORM, "wasm", layerNormWasm);
  defineKernel(FUSED_LAYER_NORM_GRAD, "wasm", layerNormGradWasm);
  if (!tf.getGradient(FUSED_LAYER_NORM)) {
    tf.registerGradient({
      kernelName: FUSED_LAYER_NORM,
      inputsToSave: ["x", "gamma"],
      outputsToSave: [false, true, true],
      // mean and rstd are internal outputs (fusedLayerNorm returns only y): their gradients (zeros or null) are unused
      gradFunc: (dys, saved, attrs) => {
        const dy = (dys as tf.Tensor[])[0];
        const [x, gamma, mean, rstd] = saved;
        const [dx, dgamma, dbeta] = tf
          .engine()
          .runKernel(
            FUSED_LAYER_NORM_GRAD,
            { dy, x, gamma, mean, rstd } as unknown as tf.NamedTensorMap,
            attrs as tf.NamedAttrMap,
          ) as tf.Tensor[];
        return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
      },
    });
  }
  acceptMissingOutputGradients(FUSED_LAYER_NORM);
}
