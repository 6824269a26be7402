import * as tf from "@tensorflow/tfjs";
import { multiply2d } from "./batch-matmul.js";
import { gemmKernels, multiplyMatrices, rowMajor } from "./gemm.js";
import { type KernelArgs, defineKernel } from "./registry.js";
import { type WasmBackend, heapOffset } from "./wasm-heap.js";

/**
 * A Linear layer's forward pass, y = x·W + b, as one kernel for the wasm backend: the maths of `Linear`
 * (lib/nn/layers.ts), available as `fusedLinear` (lib/kernels/fused.ts). The matmul (gemm.ts) adds the bias
 * as it stores each tile of y, after the sums, exactly where a separate Add would: the same result, without
 * a second pass over y (4 MB for the MLP's widest layer at the reference size) and one tfjs op fewer per
 * layer. The gradient is the composed one: dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ_rows dy.
 */
export const FUSED_LINEAR = "GptFusedLinear";

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

export function registerFusedLinear(): void {
  defineKernel(FUSED_LINEAR, "wasm", linearWasm);
  if (!tf.getGradient(FUSED_LINEAR)) {
    tf.registerGradient({
      kernelName: FUSED_LINEAR,
      inputsToSave: ["x", "weight"],
      gradFunc: (dy, [x, weight]) => ({
        x: () => tf.matMul(dy as tf.Tensor2D, weight as tf.Tensor2D, false, true),
        weight: () => tf.matMul(x as tf.Tensor2D, dy as tf.Tensor2D, true, false),
        bias: () => tf.sum(dy as tf.Tensor, 0),
      }),
    });
  }
}
