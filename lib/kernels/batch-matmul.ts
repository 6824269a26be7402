import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, replaceKernel, runOriginal } from "./registry.js";
import { gemmKernels, multiplyMatrices, rowMajor } from "./gemm.js";
import { transposeTensor } from "./transpose.js";
import {
  type WasmBackend,
  heapOffset,
  registerView,
  releaseView,
  scratchInt32,
  tensorId,
  withoutThreadPool,
} from "./wasm-heap.js";

/**
 * A faster `BatchMatMul` kernel for the WebAssembly backend.
 *
 * tfjs-backend-wasm 4.22 sends a matmul to XNNPACK (fast, SIMD, blocked) only when both operands are plain
 * 2-D matrices and neither is transposed; everything else (batched matmuls like attention's Q·Kᵀ and
 * weights·V, and every transposed operand) runs in a scalar triple loop 15-30x slower.
 *
 * This kernel computes the same product as a sequence of 2-D matmuls, one per batch entry, with our own
 * SIMD kernels (gemm.ts: 1.5-2x XNNPACK's speed here), which read transposed operands through strides.
 * Without WebAssembly SIMD it uses XNNPACK's 2-D matmuls on views of the operands registered in place, a
 * transposed operand first transposed explicitly (one pass over memory, cheap next to the multiplication).
 * Shapes it does not handle (broadcast batch dimensions other than 1, non-float32) fall back to the
 * original kernel.
 */

/** Multiply-adds below which a matmul runs on the calling thread only. */
const SMALL_PRODUCT = 1 << 21;

export function batchMatMulWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  const transposeA = Boolean(args.attrs?.transposeA);
  const transposeB = Boolean(args.attrs?.transposeB);
  const aRank = a.shape.length;
  const bRank = b.shape.length;
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const sameBatchShape = a.shape.slice(0, -2).join() === b.shape.slice(0, -2).join();
  if (a.dtype !== "float32" || b.dtype !== "float32" || !(sameBatchShape || batchA === 1 || batchB === 1)) {
    return runOriginal("BatchMatMul", args) as tf.TensorInfo;
  }
  const M = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
  const K = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
  const N = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
  const kB = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
  if (K !== kB) {
    throw new Error(
      `Error in matMul: inner shapes (${K}) and (${kB}) of Tensors with shapes ${a.shape} and ${b.shape} and ` +
        `transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const batch = Math.max(batchA, batchB);
  const outBatchShape = batchA >= batchB ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
  const outShape = [...outBatchShape, M, N];
  const out = backend.makeOutput(outShape, "float32");
  if (batch === 0 || M === 0 || N === 0) return out;
  if (K === 0) {
    // empty inner dimension: the product is all zeros
    new Float32Array(backend.wasm.HEAPU8.buffer, heapOffset(backend, out), batch * M * N).fill(0);
    return out;
  }

  const gemm = gemmKernels(backend);
  if (gemm) {
    const aStride = batchA === 1 ? 0 : M * K * 4;
    const bStride = batchB === 1 ? 0 : K * N * 4;
    const aBase = heapOffset(backend, a);
    const bBase = heapOffset(backend, b);
    const outBase = heapOffset(backend, out);
    if (batchB === 1 && !transposeA) {
      // one right-hand matrix for the whole batch: a single (batch·M, K) × (K, N) product, B packed once
      multiplyMatrices(
        backend,
        gemm,
        rowMajor(aBase, K),
        rowMajor(bBase, transposeB ? K : N, transposeB),
        outBase,
        N,
        batch * M,
        K,
        N,
      );
      return out;
    }
    for (let i = 0; i < batch; i++) {
      const aMatrix = rowMajor(aBase + i * aStride, transposeA ? M : K, transposeA);
      const bMatrix = rowMajor(bBase + i * bStride, transposeB ? K : N, transposeB);
      multiplyMatrices(backend, gemm, aMatrix, bMatrix, outBase + i * M * N * 4, N, M, K, N);
    }
    return out;
  }

  if (batch === 1 && preferTransposedProduct(M, K, N, transposeA, transposeB)) {
    // C = op(A)·op(B) computed as Cᵀ = op(B)ᵀ·op(A)ᵀ, then transposed: see preferTransposedProduct.
    const cT = batchMatMulWasm({
      inputs: { a: b, b: a },
      backend,
      attrs: { transposeA: !transposeB, transposeB: !transposeA },
    });
    const c = transposeTensor(backend, { dataId: cT.dataId, shape: [N, M], dtype: "float32" }, [1, 0]);
    new Int32Array(backend.wasm.HEAPU8.buffer, heapOffset(backend, out), M * N).set(
      new Int32Array(backend.wasm.HEAPU8.buffer, heapOffset(backend, c), M * N),
    );
    backend.disposeData(cT.dataId);
    backend.disposeData(c.dataId);
    return out;
  }

  // Operands as row-major (batch, M, K) and (batch, K, N): transpose explicitly where needed.
  const temporaries: tf.TensorInfo[] = [];
  const plain = (x: tf.TensorInfo, xBatch: number, rows: number, cols: number, transposed: boolean): tf.TensorInfo => {
    if (!transposed) return x;
    const x3 = { dataId: x.dataId, shape: [xBatch, cols, rows], dtype: x.dtype };
    const t = transposeTensor(backend, x3, [0, 2, 1]);
    temporaries.push(t);
    return t;
  };
  const a3 = plain(a, batchA, M, K, transposeA);
  const b3 = plain(b, batchB, K, N, transposeB);

  const aBase = heapOffset(backend, a3);
  const bBase = heapOffset(backend, b3);
  const outBase = heapOffset(backend, out);

  // Products of a few MFLOP are not worth a parallel region (see withoutThreadPool).
  const small = (rows: number) => rows * K * N < SMALL_PRODUCT;
  if (batchB === 1) {
    // One right-hand matrix for the whole batch: a single (batch·M, K) × (K, N) matmul on the tensors
    // themselves, so XNNPACK's cache of packed weights (keyed by b's id) is reused across calls.
    const multiply = () =>
      xnnMatMul(backend, tensorId(backend, a3), batchA * M, K, tensorId(backend, b3), N, tensorId(backend, out));
    if (small(batchA * M)) withoutThreadPool(backend, multiply);
    else multiply();
  } else {
    const aStride = batchA === 1 ? 0 : M * K * 4;
    const bStride = K * N * 4;
    const outStride = M * N * 4;
    const multiplyAll = () => {
      for (let i = 0; i < batch; i++) {
        multiply2d(backend, aBase + i * aStride, M, K, bBase + i * bStride, N, outBase + i * outStride);
      }
    };
    if (small(M)) withoutThreadPool(backend, multiplyAll);
    else multiplyAll();
  }
  for (const t of temporaries) backend.disposeData(t.dataId);
  return out;
}

/**
 * XNNPACK packs (re-lays out) the right-hand operand on every call, at several ns per element, several
 * times the cost of a SIMD transpose. For a weight gradient dW = xᵀ·dy the right-hand operand dy is the
 * big one; computing dWᵀ = dyᵀ·x packs x instead. Estimated costs, in element moves:
 *   direct:     pack K·N (+ transpose M·K if A is transposed, K·N if B is)
 *   transposed: pack K·M (+ K·N if B is not transposed, M·K if A is not) + transpose M·N for the result
 */
function preferTransposedProduct(M: number, K: number, N: number, transposeA: boolean, transposeB: boolean): boolean {
  const PACK = 5; // packing cost per element relative to a transpose
  const direct = PACK * K * N + (transposeA ? M * K : 0) + (transposeB ? K * N : 0);
  const swapped = PACK * K * M + (transposeB ? 0 : K * N) + (transposeA ? 0 : M * K) + M * N;
  return swapped < 0.8 * direct && M * N * K > 1 << 20;
}

/** out (M, N) = a (M, K) · b (K, N), all row-major float32 at the given heap byte offsets. */
export function multiply2d(
  backend: WasmBackend,
  a: number,
  M: number,
  K: number,
  b: number,
  N: number,
  out: number,
): void {
  const gemm = gemmKernels(backend);
  if (gemm) {
    multiplyMatrices(backend, gemm, rowMajor(a, K), rowMajor(b, N), out, N, M, K, N);
    return;
  }
  const aId = registerView(backend, a, M * K);
  const bId = registerView(backend, b, K * N);
  const outId = registerView(backend, out, M * N);
  xnnMatMul(backend, aId, M, K, bId, N, outId);
  releaseView(backend, aId);
  releaseView(backend, bId);
  releaseView(backend, outId);
}

/** The wasm backend's 2-D XNNPACK path on C++ tensor ids: out (M, N) = a (M, K) · b (K, N). */
export function xnnMatMul(
  backend: WasmBackend,
  aId: number,
  M: number,
  K: number,
  bId: number,
  N: number,
  outId: number,
): void {
  const aShape = scratchInt32(backend, [1, M, K], 0);
  const bShape = scratchInt32(backend, [1, K, N], 1);
  backend.wasm._BatchMatMul(aId, aShape, 3, bId, bShape, 3, 0, 0, outId);
}

/** Replaces the wasm backend's BatchMatMul with `batchMatMulWasm`. */
export function registerWasmBatchMatMul(): void {
  replaceKernel("BatchMatMul", "wasm", batchMatMulWasm);
}

/** True when the wasm backend runs `batchMatMulWasm` (which handles transposed operands itself). */
export function wasmBatchMatMulIsFast(): boolean {
  return tf.getKernel("BatchMatMul", "wasm")?.kernelFunc === (batchMatMulWasm as unknown);
}
