import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, runOriginal } from "./registry.js";
import { simdKernels } from "./simd.js";
import { kernelThreads, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, f32, heapMemory, heapOffset, i32 } from "./wasm-heap.js";

/** Elements from which a sum is shared out among the kernel threads. */
const PARALLEL_ELEMENTS = 1 << 16;

/**
 * Sum over the leading axes, e.g. a bias gradient: db = Σ_rows dy for dy of shape (B·T, C).
 *
 * The wasm backend reduces only over innermost axes, so for leading axes it first transposes the whole
 * tensor (a full extra pass with a slow general transpose) and then sums. Adding rows into one
 * accumulator row does the same sum in a single pass. Other reductions go to the original kernel.
 */
export function sumWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(args.attrs!.axis as number | number[], x.shape).sort((a, b) => a - b);
  const leading = axes.length > 0 && axes.length < rank && axes.every((axis, i) => axis === i);
  if (x.dtype !== "float32" || !leading) return runOriginal("Sum", args);
  const backend = args.backend as WasmBackend;
  const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
  const width = tf.util.sizeFromShape(x.shape.slice(axes.length));
  const outShape = args.attrs!.keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : x.shape.slice(axes.length);
  const out = backend.makeOutput(outShape, "float32");
  const simd = simdKernels(backend);
  if (simd && width % 4 === 0) {
    const acc64 = backend.makeOutput([2 * width], "float32"); // scratch: width float64 accumulators
    const [X, OUT, ACC] = [x, out, acc64].map((t) => heapOffset(backend, t));
    // columns are independent: bands of them (multiples of 4) on the kernel threads
    const threads = kernelThreads(heapMemory(backend), rows * width, PARALLEL_ELEMENTS);
    const calls = rangeCalls(threads, width, 4, (from, count) => [
      "columnSums",
      X + 4 * from,
      OUT + 4 * from,
      ACC + 8 * from,
      rows,
      count,
      width,
    ]);
    runShared(threads, simd, calls);
    backend.disposeData(acc64.dataId);
    return out;
  }
  sumRows(f32(backend, x), rows, width, f32(backend, out));
  return out;
}

/** output[j] = Σ_i input[i·width + j], accumulated in float64 blocks of 4 rows (simd.ts `columnSums` likewise). */
export function sumRows(input: Float32Array, rows: number, width: number, output: Float32Array): void {
  const acc = new Float64Array(width);
  let i = 0;
  for (; i + 4 <= rows; i += 4) {
    const r0 = i * width;
    const r1 = r0 + width;
    const r2 = r1 + width;
    const r3 = r2 + width;
    for (let j = 0; j < width; j++) acc[j] += input[r0 + j] + input[r1 + j] + input[r2 + j] + input[r3 + j];
  }
  for (; i < rows; i++) {
    const r = i * width;
    for (let j = 0; j < width; j++) acc[j] += input[r + j];
  }
  for (let j = 0; j < width; j++) output[j] = acc[j];
}

/**
 * UnsortedSegmentSum, which tfjs-backend-wasm lacks: out[segment] = Σ of the rows of x whose id is that
 * segment (the gradient of an embedding lookup). With it registered, lib's `embeddingLookup` uses
 * tf.gather and its standard gradient instead of a one-hot matmul.
 */
export function unsortedSegmentSumWasm(args: KernelArgs): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  if (x.dtype !== "float32" || segmentIds.dtype !== "int32") {
    throw new Error(
      `UnsortedSegmentSum (wasm): float32 data and int32 segment ids only, got ${x.dtype} and ${segmentIds.dtype}.`,
    );
  }
  const backend = args.backend as WasmBackend;
  const numSegments = args.attrs!.numSegments as number;
  const rows = tf.util.sizeFromShape(segmentIds.shape);
  const width = rows === 0 ? 0 : tf.util.sizeFromShape(x.shape) / rows;
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], "float32");
  const result = f32(backend, out);
  result.fill(0);
  const simd = simdKernels(backend);
  if (simd) {
    simd.scatterAddRows(
      heapOffset(backend, x),
      heapOffset(backend, segmentIds),
      heapOffset(backend, out),
      rows,
      width,
      numSegments,
    );
    return out;
  }
  const ids = i32(backend, segmentIds);
  const values = f32(backend, x);
  for (let r = 0; r < rows; r++) {
    const id = ids[r];
    if (id < 0 || id >= numSegments) continue; // as TensorFlow: ids outside [0, numSegments) are dropped
    const to = id * width;
    const from = r * width;
    for (let c = 0; c < width; c++) result[to + c] += values[from + c];
  }
  return out;
}
