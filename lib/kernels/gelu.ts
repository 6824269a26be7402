import * as tf from "@tensorflow/tfjs";
import { tanhOf } from "./elementwise.js";
import { type KernelArgs, acceptMissingOutputGradients, defineKernel } from "./registry.js";
import { simdKernels } from "./simd.js";
import { kernelThreads, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset } from "./wasm-heap.js";

/**
 * GPT-2's tanh-approximated GELU as one kernel and one gradient kernel, for the wasm backend:
 *
 *   y = ½ x (1 + tanh(u)),  u = √(2/π) (x + 0.044715 x³)
 *   dy/dx = ½ (1 + t) + ½ x (1 − t²) · √(2/π) (1 + 3 · 0.044715 x²),  t = tanh(u)
 *
 * the maths of `geluTanh` (lib/nn/activations.ts), available as `fusedGeluTanh` (lib/kernels/fused.ts). Composed
 * from tfjs ops it is 8 kernels forward and ~16 backward over the MLP's widest activation (B, T, 4C), and
 * 6 of those (B, T, 4C) tensors are kept for the backward pass; here it is one pass each way (WebAssembly
 * SIMD, simd.ts; JavaScript for a tail of < 4), and x and t are kept: the forward kernel outputs t as well,
 * since computing tanh is most of the gradient's work (the gradient kernel took 10.9 ms per 2M elements
 * recomputing t, 1.7 ms reading it; one extra (B, T, 4C) tensor per layer is kept).
 */
export const FUSED_GELU_TANH = "GptFusedGeluTanh";
export const FUSED_GELU_TANH_GRAD = "GptFusedGeluTanhGrad";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const CUBIC = 0.044715;
/** Elements from which the SIMD loops are shared out among the kernel threads (~30 µs of work). */
const PARALLEL_ELEMENTS = 1 << 15;

/** Forward: outputs [y, t], t = tanh(u), both of x's shape. */
function geluWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const out = backend.makeOutput([...x.shape], "float32");
  const tanhOut = backend.makeOutput([...x.shape], "float32");
  const [xs, ys, ts] = [x, out, tanhOut].map((tensor) => f32(backend, tensor));
  const simd = simdKernels(backend);
  const done = simd ? xs.length - (xs.length % 4) : 0; // SIMD for groups of 4 (on all threads), JavaScript for the rest
  if (done > 0) {
    const [X, Y, T] = [x, out, tanhOut].map((tensor) => heapOffset(backend, tensor));
    const threads = kernelThreads(heapMemory(backend), done, PARALLEL_ELEMENTS);
    runShared(
      threads,
      simd!,
      rangeCalls(threads, done, 4, (from, count) => ["geluFwd", X + 4 * from, Y + 4 * from, T + 4 * from, count]),
    );
  }
  for (let i = done; i < xs.length; i++) {
    const v = xs[i];
    ts[i] = tanhOf(SQRT_2_OVER_PI * (v + CUBIC * v * v * v));
    ys[i] = 0.5 * v * (1 + ts[i]);
  }
  return [out, tanhOut];
}

function geluGradWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, x, t } = args.inputs as Record<string, tf.TensorInfo>;
  const out = backend.makeOutput([...x.shape], "float32");
  const [xs, ts, dys, dx] = [x, t, dy, out].map((tensor) => f32(backend, tensor));
  const simd = simdKernels(backend);
  const done = simd ? xs.length - (xs.length % 4) : 0;
  if (done > 0) {
    const [X, T, DY, DX] = [x, t, dy, out].map((tensor) => heapOffset(backend, tensor));
    const threads = kernelThreads(heapMemory(backend), done, PARALLEL_ELEMENTS);
    runShared(
      threads,
      simd!,
      rangeCalls(threads, done, 4, (from, count) => [
        "geluBwd",
        X + 4 * from,
        T + 4 * from,
        DY + 4 * from,
        DX + 4 * from,
        count,
      ]),
    );
  }
  for (let i = done; i < xs.length; i++) {
    const v = xs[i];
    const v2 = v * v;
    const ti = ts[i];
    dx[i] = dys[i] * (0.5 * (1 + ti) + 0.5 * v * (1 - ti * ti) * SQRT_2_OVER_PI * (1 + 3 * CUBIC * v2));
  }
  return out;
}

export function registerFusedGelu(): void {
  defineKernel(FUSED_GELU_TANH, "wasm", geluWasm as unknown as (a: KernelArgs) => tf.TensorInfo);
  defineKernel(FUSED_GELU_TANH_GRAD, "wasm", geluGradWasm);
  if (!tf.getGradient(FUSED_GELU_TANH)) {
    tf.registerGradient({
      kernelName: FUSED_GELU_TANH,
      inputsToSave: ["x"],
      outputsToSave: [false, true],
      // t is an internal output (fusedGeluTanh returns only y): its gradient (zeros or null) is unused
      gradFunc: (dys, saved) => {
        const dy = (dys as tf.Tensor[])[0];
        const [x, t] = saved;
        return { x: () => tf.engine().runKernel(FUSED_GELU_TANH_GRAD, { dy, x, t }) as tf.Tensor };
      },
    });
  }
  acceptMissingOutputGradients(FUSED_GELU_TANH);
}
