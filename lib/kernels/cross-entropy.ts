import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, acceptMissingOutputGradients, defineKernel } from "./registry.js";
import { simdKernels } from "./simd.js";
import { kernelThreads, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset, i32 } from "./wasm-heap.js";

/**
 * The mean cross-entropy of next-token predictions as one kernel and one gradient kernel, for the wasm backend:
 *
 *   loss = 1/N Σ_i (lse_i − x_i,t_i),  lse_i = log Σ_j exp(x_ij)       over the N rows whose target ≠ ignoreIndex
 *   ∂loss/∂x_ij = (exp(x_ij − lse_i) − [j = t_i]) / N                   (0 for ignored rows)
 *
 * the maths of `crossEntropy` (lib/training/loss.ts), which calls it through `fusedCrossEntropy`
 * (lib/kernels/fused.ts). Composed from tfjs ops the loss is ~20 small kernels forward, and its gradient
 * builds four (N, V) tensors (the softmax, a one-hot int32, its float copy, their difference) before the
 * result: at GPT-2's vocabulary, 512 positions, 103 MB each. Here the forward pass reads the logits once for
 * each row's max and Σ exp (SIMD, simd-softmax.ts), and keeps lse; the gradient writes its result directly.
 *
 * Inputs logits (..., V) float32 and targets (...) int32 (checked by crossEntropy: in [0, V) or ignoreIndex);
 * outputs the loss (a scalar) and lse (N), kept for the gradient.
 */
export const FUSED_CROSS_ENTROPY = "GptFusedCrossEntropy";
export const FUSED_CROSS_ENTROPY_GRAD = "GptFusedCrossEntropyGrad";

/** Logits from which the rows are shared out among the kernel threads (~30 µs of work). */
const PARALLEL_LOGITS = 1 << 15;

/** Rows and vocabulary size of (..., V) logits. */
function rowsOf(logits: tf.TensorInfo): { N: number; V: number } {
  const V = logits.shape[logits.shape.length - 1];
  return { N: V === 0 ? 0 : tf.util.sizeFromShape(logits.shape) / V, V };
}

/** Forward: [loss, lse]. */
function crossEntropyWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { logits, targets } = args.inputs as Record<"logits" | "targets", tf.TensorInfo>;
  const ignoreIndex = args.attrs?.ignoreIndex as number;
  const { N, V } = rowsOf(logits);
  const lseOut = backend.makeOutput([N], "float32");
  const lse = f32(backend, lseOut);
  const x = f32(backend, logits);
  const simd = simdKernels(backend);
  if (simd && N > 0) {
    // the rows' max into lse, their Σ exp(x − max) into scratch; then lse = max + ln(sum)
    const sums = backend.wasm._malloc(4 * N) >>> 0;
    const threads = kernelThreads(heapMemory(backend), N * V, PARALLEL_LOGITS);
    const [X, LSE] = [heapOffset(backend, logits), heapOffset(backend, lseOut)];
    runShared(
      threads,
      simd,
      rangeCalls(threads, N, 1, (from, count) => [
        "rowMaxSumExp",
        X + 4 * from * V,
        LSE + 4 * from,
        sums + 4 * from,
        count,
        V,
      ]),
    );
    const sum = new Float32Array(backend.wasm.HEAPU8.buffer, sums, N);
    for (let i = 0; i < N; i++) lse[i] += Math.log(sum[i]);
    backend.wasm._free(sums);
  } else {
    for (let i = 0; i < N; i++) {
      let max = -Infinity;
      for (let j = i * V; j < (i + 1) * V; j++) max = Math.max(max, x[j]);
      let sum = 0;
      for (let j = i * V; j < (i + 1) * V; j++) sum += Math.exp(x[j] - max);
      lse[i] = max + Math.log(sum);
    }
  }
  const t = i32(backend, targets);
  let total = 0;
  let count = 0;
  for (let i = 0; i < N; i++) {
    if (t[i] === ignoreIndex) continue;
    total += lse[i] - x[i * V + t[i]];
    count++;
  }
  const loss = backend.makeOutput([], "float32");
  f32(backend, loss)[0] = total / Math.max(count, 1);
  return [loss, lseOut];
}

/** Backward: inputs dy (the loss's gradient, a scalar), logits, targets, lse → ∂loss/∂logits. */
function crossEntropyGradWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, logits, targets, lse } = args.inputs as Record<"dy" | "logits" | "targets" | "lse", tf.TensorInfo>;
  const ignoreIndex = args.attrs?.ignoreIndex as number;
  const { N, V } = rowsOf(logits);
  const out = backend.makeOutput([...logits.shape], "float32");
  const t = i32(backend, targets);
  let count = 0;
  for (let i = 0; i < N; i++) if (t[i] !== ignoreIndex) count++;
  const g = f32(backend, dy)[0] / Math.max(count, 1);
  // each row's factor: dy / N, or 0 for an ignored row
  const scales = backend.wasm._malloc(4 * Math.max(N, 1)) >>> 0;
  const scale = new Float32Array(backend.wasm.HEAPU8.buffer, scales, N);
  for (let i = 0; i < N; i++) scale[i] = t[i] === ignoreIndex ? 0 : g;
  const simd = simdKernels(backend);
  if (simd) {
    const threads = kernelThreads(heapMemory(backend), N * V, PARALLEL_LOGITS);
    const [X, LSE, OUT] = [logits, lse, out].map((tensor) => heapOffset(backend, tensor));
    runShared(
      threads,
      simd,
      rangeCalls(threads, N, 1, (from, count) => [
        "scaledSoftmaxRows",
        X + 4 * from * V,
        LSE + 4 * from,
        scales + 4 * from,
        OUT + 4 * from * V,
        count,
        V,
      ]),
    );
  } else {
    const [x, lses, dx] = [f32(backend, logits), f32(backend, lse), f32(backend, out)];
    for (let i = 0; i < N; i++) for (let j = i * V; j < (i + 1) * V; j++) dx[j] = Math.exp(x[j] - lses[i]) * scale[i];
  }
  const dx = f32(backend, out);
  for (let i = 0; i < N; i++) if (t[i] !== ignoreIndex) dx[i * V + t[i]] -= g; // − onehot(target) / N
  backend.wasm._free(scales);
  return out;
}

/** Registers the fused cross-entropy kernels on wasm and their gradient. */
export function registerFusedCrossEntropy(): void {
  defineKernel(FUSED_CROSS_ENTROPY, "wasm", crossEntropyWasm);
  defineKernel(FUSED_CROSS_ENTROPY_GRAD, "wasm", crossEntropyGradWasm);
  if (!tf.getGradient(FUSED_CROSS_ENTROPY)) {
    tf.registerGradient({
      kernelName: FUSED_CROSS_ENTROPY,
      inputsToSave: ["logits", "targets"],
      outputsToSave: [false, true],
      // lse is an internal output (fusedCrossEntropy returns only the loss): its gradient (zeros or null) is unused
      gradFunc: (dys, saved, attrs) => {
        const dy = (dys as tf.Tensor[])[0];
        const [logits, targets, lse] = saved;
        const dLogits = tf
          .engine()
          .runKernel(FUSED_CROSS_ENTROPY_GRAD, { dy, logits, targets, lse }, attrs as tf.NamedAttrMap) as tf.Tensor;
        return { logits: () => dLogits, targets: () => tf.zerosLike(targets) };
      },
    });
  }
  acceptMissingOutputGradients(FUSED_CROSS_ENTROPY);
}
