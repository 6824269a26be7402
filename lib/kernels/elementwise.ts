import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, runOriginal } from "./registry.js";
import { simdKernels } from "./simd.js";
import { kernelThreads, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset } from "./wasm-heap.js";

/**
 * Element-wise kernels for the wasm backend that are slow there for reasons unrelated to the maths:
 *
 *  Identity  tfjs calls it to *save* every tensor a gradient will need (engine.clone), and the wasm
 *            kernel copies the data; tensors are immutable, so sharing it (as the cpu backend does) is
 *            exact and saves a copy of every saved activation (time and peak memory).
 *  Pow       x^3 in GELU (and x^2 in its gradient) went through the C library's pow(), ~20x slower than
 *            multiplying; small integer exponents are now repeated multiplication.
 *  Tanh      the C library's tanh() per element; here a rational approximation accurate to float32
 *            precision (the one Eigen and XNNPACK use), in WebAssembly SIMD (simd.ts).
 *  Exp       the cross-entropy's log-sum-exp over the vocabulary (GPT-2: 512 × 50,257 a step): the C library's
 *            expf per element; here Cephes' expf in SIMD (simd-softmax.ts) on all kernel threads.
 *  Add       residual connections, biases and the backward pass's sums of gradients: single-threaded in
 *            tfjs; here a SIMD loop on all kernel threads (threads.ts), for two tensors of one shape or a
 *            row (a bias) added to every row. Float addition is commutative, so a + b = b + a bit for bit.
 */

export function identityWasm(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype === "string") return runOriginal("Identity", args) as tf.TensorInfo;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

export function powWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  const backend = args.backend as WasmBackend;
  if (
    a.dtype !== "float32" ||
    b.dtype !== "float32" ||
    tf.util.sizeFromShape(b.shape) !== 1 ||
    b.shape.length > a.shape.length
  ) {
    return runOriginal("Pow", args);
  }
  const exponent = f32(backend, b)[0];
  if (!Number.isInteger(exponent) || Math.abs(exponent) > 4) return runOriginal("Pow", args);
  const outShape = a.shape.length >= b.shape.length ? [...a.shape] : [...b.shape];
  const out = backend.makeOutput(outShape, "float32");
  const x = f32(backend, a);
  const y = f32(backend, out);
  const n = x.length;
  switch (exponent) {
    case 0:
      y.fill(1);
      break;
    case 1:
      y.set(x);
      break;
    case 2:
      for (let i = 0; i < n; i++) y[i] = x[i] * x[i];
      break;
    case 3:
      for (let i = 0; i < n; i++) {
        const v = x[i];
        y[i] = v * v * v;
      }
      break;
    case 4:
      for (let i = 0; i < n; i++) {
        const v = x[i] * x[i];
        y[i] = v * v;
      }
      break;
    default:
      // negative integer powers: 1 / x^|n| (x^-n of 0 is Infinity, as pow() gives)
      for (let i = 0; i < n; i++) {
        const v = x[i];
        let p = v;
        for (let k = 1; k < -exponent; k++) p *= v;
        y[i] = 1 / p;
      }
  }
  return out;
}

// Rational approximation of tanh on [-7.9, 7.9] (beyond it tanh is ±1 in float32): p(x) / q(x) with odd
// p of degree 13 and even q of degree 6. Coefficients from Eigen's generic_fast_tanh_float.
const A1 = 4.89352455891786e-3;
const A3 = 6.37261928875436e-4;
const A5 = 1.48572235717979e-5;
const A7 = 5.12229709037114e-8;
const A9 = -8.60467152213735e-11;
const A11 = 2.00018790482477e-13;
const A13 = -2.76076847742355e-16;
const B0 = 4.89352518554385e-3;
const B2 = 2.268434632439e-3;
const B4 = 1.18534705686654e-4;
const B6 = 1.19825839466702e-6;
const CLAMP = 7.905311107635498; // the float64 nearest 7.90531110763549805

/**
 * tanh(v) to float32 precision (NaN stays NaN; near 0, p/q = v · A1/B0 = v to 1e-7 relative). Beyond the
 * approximation's range (|v| > 7.9, rare) the exact 1 − 2/(e^{2v} + 1), so that saturated values are
 * as close to ±1 as float32 allows (a GELU gradient multiplies 1 − t² by large x).
 */
export function tanhOf(v: number): number {
  if (v > CLAMP) return 1 - 2 / (Math.exp(2 * v) + 1);
  if (v < -CLAMP) return 2 / (Math.exp(-2 * v) + 1) - 1;
  const v2 = v * v;
  const p = v * (A1 + v2 * (A3 + v2 * (A5 + v2 * (A7 + v2 * (A9 + v2 * (A11 + v2 * A13))))));
  const q = B0 + v2 * (B2 + v2 * (B4 + v2 * B6));
  return p / q;
}

/** tanh of every element of x into y (float32 precision). */
export function tanhInto(x: Float32Array, y: Float32Array): void {
  const n = x.length;
  for (let i = 0; i < n; i++) y[i] = tanhOf(x[i]);
}

export function tanhWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype !== "float32") return runOriginal("Tanh", args);
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput([...x.shape], "float32");
  const n = tf.util.sizeFromShape(x.shape);
  const simd = simdKernels(backend);
  const done = simd ? n - (n % 4) : 0; // SIMD for whole groups of 4, JavaScript for the rest
  if (done > 0) simd!.tanh(heapOffset(backend, x), heapOffset(backend, out), done);
  tanhInto(f32(backend, x).subarray(done), f32(backend, out).subarray(done));
  return out;
}

/** Elements from which an Add or an Exp is shared out among the kernel threads. */
const PARALLEL_ELEMENTS = 1 << 16;

export function expWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as WasmBackend;
  const simd = simdKernels(backend);
  if (x.dtype !== "float32" || !simd) return runOriginal("Exp", args);
  const out = backend.makeOutput([...x.shape], "float32");
  const n = tf.util.sizeFromShape(x.shape);
  const done = n - (n % 4); // SIMD for whole groups of 4, JavaScript for the rest
  const [X, OUT] = [x, out].map((t) => heapOffset(backend, t));
  const threads = kernelThreads(heapMemory(backend), done, PARALLEL_ELEMENTS);
  runShared(
    threads,
    simd,
    rangeCalls(threads, done, 4, (from, count) => ["exp", X + 4 * from, OUT + 4 * from, count]),
  );
  const [xs, ys] = [f32(backend, x), f32(backend, out)];
  for (let i = done; i < n; i++) ys[i] = Math.exp(xs[i]);
  return out;
}

export function addWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const simd = simdKernels(backend);
  let a = args.inputs.a as tf.TensorInfo;
  let b = args.inputs.b as tf.TensorInfo;
  if (tf.util.sizeFromShape(b.shape) > tf.util.sizeFromShape(a.shape)) [a, b] = [b, a];
  const n = tf.util.sizeFromShape(a.shape);
  const width = b.shape.length > 0 ? b.shape[b.shape.length - 1] : 1;
  const sameShape = a.shape.join() === b.shape.join();
  // b one row (leading dimensions of size 1) matching a's last dimension: a bias
  const row =
    !sameShape &&
    b.shape.length <= a.shape.length &&
    width === a.shape[a.shape.length - 1] &&
    tf.util.sizeFromShape(b.shape) === width;
  if (!simd || a.dtype !== "float32" || b.dtype !== "float32" || !(sameShape || row) || n === 0)
    return runOriginal("Add", args);
  const out = backend.makeOutput([...a.shape], "float32");
  const [A, B, OUT] = [a, b, out].map((t) => heapOffset(backend, t));
  const threads = kernelThreads(heapMemory(backend), n, PARALLEL_ELEMENTS);
  const calls = sameShape
    ? rangeCalls(threads, n, 4, (from, count) => ["addRows", A + 4 * from, B + 4 * from, OUT + 4 * from, 1, count, 0])
    : rangeCalls(threads, n / width, 1, (from, count) => [
        "addRows",
        A + 4 * from * width,
        B,
        OUT + 4 * from * width,
        count,
        width,
        0,
      ]);
  runShared(threads, simd, calls);
  return out;
}
