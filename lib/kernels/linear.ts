import * as tf from "@tensorflow/tfjs";
import { multiply2d } from "./batch-matmul.js";
import { gemmKernels, multiplyMatrices, rowMajor } from "./gemm.js";
import { STRIP, SUM_BLOCK_ROWS } from "./gemm-pack.js";
import { type KernelArgs, defineKernel } from "./registry.js";
import { type WasmBackend, heapOffset } from "./wasm-heap.js";

/**
 * A Linear layer, y = x·W + b, as one kernel each way for the wasm backend: the maths of `Linear`
 * (lib/nn/layers.ts), available as `fusedLinear` (lib/kernels/fused.ts).
 *  - Forward: the matmul (gemm.ts) adds the bias as it stores each tile of y, after the sums, exactly where a
 *    separate Add would: the same result, without a second pass over y (4 MB for the MLP's widest layer at
 *    the reference size) and one tfjs op fewer per layer.
 *  - Gradient: dx = dy·Wᵀ (a matmul), and dW = xᵀ·dy with db = Σ_rows dy in one kernel: the matmul packs dy
 *    (its right-hand side) strip by strip anyway, and each strip's column sums are taken while it is still
 *    in cache, instead of another pass over dy from memory (blocks of 32 rows in float32, added in float64).
 */
export const FUSED_LINEAR = "GptFusedLinear";
export const FUSED_LINEAR_GRAD = "GptFusedLinearGrad";

/** Forward: x (M, K), W (K, N), bias (N) → y (M, N). */
function linearWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, weight, bias } = args.inputs as Record<"x" | "weight" | "bias", tf.TensorInfo>;
  const [M, K] = x.shape;
  const N = weight.shape[1];
  const y = backend.makeOutput([M, N], "float32");
  const [X, W, BIAS, Y] = [x, weight, bias, y].map((t) => heapOffset(backend, t));
  const gemm = gemmKernels(backend);
  if (gemm && K > 0) {
    multiplyMatrices(backend, gemm, rowMajor(X, K), rowMajor(W, N), Y, N, M, K, N, BIAS);
    return y;
  }
  // without SIMD (XNNPACK's matmul), or no products at all (K = 0): the bias added in JavaScript
  const ys = new Float32Array(backend.wasm.HEAPU8.buffer, Y, M * N);
  if (K > 0) multiply2d(backend, X, M, K, W, N, Y);
  else ys.fill(0);
  const b = new Float32Array(backend.wasm.HEAPU8.buffer, BIAS, N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) ys[m * N + n] += b[n];
  return y;
}

/** Gradient of W and b: x (M, K), dy (M, N) → [dW = xᵀ·dy (K, N), db = Σ_rows dy (N)]. */
function linearGradWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as Record<"x" | "dy", tf.TensorInfo>;
  const [M, K] = x.shape;
  const N = dy.shape[1];
  const dW = backend.makeOutput([K, N], "float32");
  const db = backend.makeOutput([N], "float32");
  const [X, DY, DW, DB] = [x, dy, dW, db].map((t) => heapOffset(backend, t));
  const gemm = gemmKernels(backend);
  if (gemm && M > 0 && K > 0 && N > 0) {
    const sums = backend.wasm._malloc(4 * (N + STRIP)) >>> 0; // ⌈N/8⌉ · 8 floats
    try {
      multiplyMatrices(backend, gemm, rowMajor(X, K, true), rowMajor(DY, N), DW, N, K, M, N, 0, sums);
      backend.wasm.HEAPU8.copyWithin(DB, sums, sums + 4 * N);
    } finally {
      backend.wasm._free(sums);
    }
    return [dW, db];
  }
  // without SIMD, or empty: in JavaScript, dW in float64, db in the same blocks as the packing's sums
  const heap = backend.wasm.HEAPU8.buffer;
  const [xs, dys] = [new Float32Array(heap, X, M * K), new Float32Array(heap, DY, M * N)];
  const dWs = new Float64Array(K * N);
  for (let m = 0; m < M; m++)
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) dWs[k * N + n] += xs[m * K + k] * dys[m * N + n];
  new Float32Array(heap, DW, K * N).set(dWs);
  const dbs = new Float32Array(heap, DB, N);
  for (let n = 0; n < N; n++) {
    let [total, block] = [0, 0];
    for (let m = 0; m < M; m++) {
      block = Math.fround(block + dys[m * N + n]);
      if (m % SUM_BLOCK_ROWS === SUM_BLOCK_ROWS - 1) [total, block] = [total + block, 0];
    }
    dbs[n] = total + block;
  }
  return [dW, db];
}

export function registerFusedLinear(): void {
  defineKernel(FUSED_LINEAR, "wasm", linearWasm);
  defineKernel(FUSED_LINEAR_GRAD, "wasm", linearGradWasm as unknown as (a: KernelArgs) => tf.TensorInfo);
  if (!tf.getGradient(FUSED_LINEAR)) {
    tf.registerGradient({
      kernelName: FUSED_LINEAR,
      inputsToSave: ["x", "weight"],
      gradFunc: (dy, [x, weight], attrs) => {
        const dx = () => tf.matMul(dy as tf.Tensor2D, weight as tf.Tensor2D, false, true);
        if (!attrs.trainable) {
          // frozen parameters (LoRA's base layers): their gradients are normally not asked for, so not computed
          return {
            x: dx,
            weight: () => tf.matMul(x as tf.Tensor2D, dy as tf.Tensor2D, true, false),
            bias: () => tf.sum(dy as tf.Tensor, 0),
          };
        }
        // dW and db from one kernel, run here: each gradient function below runs in a scope of its own, which
        // would dispose whichever of the two it does not return
        const [dW, db] = tf.engine().runKernel(FUSED_LINEAR_GRAD, { x, dy: dy as tf.Tensor }) as tf.Tensor[];
        return { x: dx, weight: () => dW, bias: () => db };
      },
    });
  }
}
