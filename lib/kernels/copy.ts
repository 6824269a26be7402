import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, runOriginal } from "./registry.js";
import { type SimdKernels, simdKernels } from "./simd.js";
import { type KernelCall, kernelThreads, pieceCount, rangeCalls, runShared } from "./threads.js";
import { type WasmBackend, heapMemory } from "./wasm-heap.js";

/**
 * Kernels that only move data, for the wasm backend:
 *
 *  Cast    to the dtype a tensor already has (tf.moments does this on every call) copied the data; it
 *          now shares it, as Identity does.
 *  SplitV  (splitting the fused q|k|v projection) went through a general Slice with index arithmetic per
 *          element; it is now a copy of rows (SIMD, all threads: `copyRows`).
 *  Concat  (its gradient) likewise.
 *  GatherV2 (embedding lookups, the loss's target logits) computed every element's position through
 *          general index arithmetic (11 ms for 2,048 rows of 128); it now copies whole rows.
 *
 * float32 and int32 tensors are moved as 32-bit words inside the heap (the SIMD `copyBlocks` kernel, or
 * `copyWithin` without it); other dtypes go to the original kernels.
 */

const movable = (dtype: tf.DataType) => dtype === "float32" || dtype === "int32";

/** A copy of blocks of rows, as SimdKernels.copyBlocks makes it (offsets and strides in bytes). */
export interface RowCopy {
  src: number;
  dst: number;
  outer: number;
  srcOuter: number;
  dstOuter: number;
  rows: number;
  rowBytes: number;
  srcRow: number;
  dstRow: number;
}

/** Bytes from which copies are shared out among the kernel threads. */
const PARALLEL_BYTES = 1 << 18;

/**
 * Makes the copies with the SIMD kernel: one call each when there are at least as many as the threads' pieces
 * (merging heads: one copy per batch row), else each cut into pieces (by its blocks, or its rows).
 */
export function copyRows(backend: WasmBackend, simd: SimdKernels, copies: RowCopy[]): void {
  const bytes = copies.reduce((sum, c) => sum + c.outer * c.rows * c.rowBytes, 0);
  const threads = kernelThreads(heapMemory(backend), bytes, PARALLEL_BYTES);
  const whole = copies.length >= pieceCount(threads);
  const calls = copies.flatMap((c): KernelCall[] =>
    whole
      ? [["copyBlocks", c.src, c.dst, c.outer, c.srcOuter, c.dstOuter, c.rows, c.rowBytes, c.srcRow, c.dstRow]]
      : c.outer > 1
        ? rangeCalls(threads, c.outer, 1, (from, count) => [
            "copyBlocks",
            c.src + from * c.srcOuter,
            c.dst + from * c.dstOuter,
            count,
            c.srcOuter,
            c.dstOuter,
            c.rows,
            c.rowBytes,
            c.srcRow,
            c.dstRow,
          ])
        : rangeCalls(threads, c.rows, 1, (from, count) => [
            "copyBlocks",
            c.src + from * c.srcRow,
            c.dst + from * c.dstRow,
            1,
            0,
            0,
            count,
            c.rowBytes,
            c.srcRow,
            c.dstRow,
          ]),
  );
  runShared(threads, simd, calls);
}

/** The heap as 32-bit words, and a tensor's offset in words. */
function words(backend: WasmBackend): Int32Array {
  return new Int32Array(backend.wasm.HEAPU8.buffer);
}
function wordOffset(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset >>> 2;
}

export function castWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  if (args.attrs?.dtype !== x.dtype || x.dtype === "string" || x.dtype === "complex64")
    return runOriginal("Cast", args);
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

export function splitVWasm(args: KernelArgs): tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  if (!movable(x.dtype)) return runOriginal("SplitV", args) as tf.TensorInfo[];
  const backend = args.backend as WasmBackend;
  const axis = tf.util.parseAxisParam(args.attrs!.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(
    x as tf.Tensor,
    args.attrs!.numOrSizeSplits as number | number[],
    axis,
  );
  const outer = tf.util.sizeFromShape(x.shape.slice(0, axis));
  const inner = tf.util.sizeFromShape(x.shape.slice(axis + 1));
  const rowLength = x.shape[axis] * inner;
  const outputs = sizes.map((size) => {
    const shape = [...x.shape];
    shape[axis] = size;
    return backend.makeOutput(shape, x.dtype);
  });
  const simd = simdKernels(backend);
  const heap = words(backend);
  const src = wordOffset(backend, x);
  let start = 0;
  const copies: RowCopy[] = [];
  outputs.forEach((out, i) => {
    const length = sizes[i] * inner;
    const dst = wordOffset(backend, out);
    if (simd)
      copies.push({
        src: 4 * (src + start),
        dst: 4 * dst,
        outer: 1,
        srcOuter: 0,
        dstOuter: 0,
        rows: outer,
        rowBytes: 4 * length,
        srcRow: 4 * rowLength,
        dstRow: 4 * length,
      });
    else if (outer === 1 || length === rowLength) heap.copyWithin(dst, src + start, src + start + outer * length);
    else
      for (let o = 0; o < outer; o++)
        heap.copyWithin(dst + o * length, src + o * rowLength + start, src + o * rowLength + start + length);
    start += length;
  });
  if (simd) copyRows(backend, simd, copies);
  return outputs;
}

export function concatWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  if (inputs.length === 0 || !inputs.every((t) => movable(t.dtype) && t.dtype === inputs[0].dtype))
    return runOriginal("Concat", args);
  const backend = args.backend as WasmBackend;
  const axis = tf.util.parseAxisParam(args.attrs!.axis as number, inputs[0].shape)[0];
  tf.backend_util.assertParamsConsistent(
    inputs.map((t) => t.shape),
    axis,
  );
  const outShape = tf.backend_util.computeOutShape(
    inputs.map((t) => t.shape),
    axis,
  );
  const out = backend.makeOutput(outShape, inputs[0].dtype);
  const parts = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  if (parts.length === 0) return out;
  const outer = tf.util.sizeFromShape(outShape.slice(0, axis));
  const outRow = tf.util.sizeFromShape(outShape.slice(axis));
  const simd = simdKernels(backend);
  const heap = words(backend);
  const dst = wordOffset(backend, out);
  let start = 0;
  const copies: RowCopy[] = [];
  for (const part of parts) {
    const length = tf.util.sizeFromShape(part.shape.slice(axis));
    const src = wordOffset(backend, part);
    if (simd)
      copies.push({
        src: 4 * src,
        dst: 4 * (dst + start),
        outer: 1,
        srcOuter: 0,
        dstOuter: 0,
        rows: outer,
        rowBytes: 4 * length,
        srcRow: 4 * length,
        dstRow: 4 * outRow,
      });
    else if (outer === 1 || length === outRow) heap.copyWithin(dst + start, src, src + outer * length);
    else
      for (let o = 0; o < outer; o++)
        heap.copyWithin(dst + o * outRow + start, src + o * length, src + (o + 1) * length);
    start += length;
  }
  if (simd) copyRows(backend, simd, copies);
  return out;
}

export function gatherV2Wasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const batchDims = (args.attrs?.batchDims as number | undefined) ?? 0;
  if (!movable(x.dtype) || indices.dtype !== "int32" || batchDims !== 0) return runOriginal("GatherV2", args);
  const backend = args.backend as WasmBackend;
  const axis = tf.util.parseAxisParam(args.attrs!.axis as number, x.shape)[0];
  const ids = new Int32Array(
    backend.wasm.HEAPU8.buffer,
    backend.dataIdMap.get(indices.dataId).memoryOffset,
    tf.util.sizeFromShape(indices.shape),
  ).slice();
  const axisDim = x.shape[axis];
  for (const index of ids) {
    if (!(index >= 0 && index <= axisDim - 1))
      throw new Error(`GatherV2: the index value ${index} is not in [0, ${axisDim - 1}]`);
  }
  const outer = tf.util.sizeFromShape(x.shape.slice(0, axis));
  const inner = tf.util.sizeFromShape(x.shape.slice(axis + 1));
  const out = backend.makeOutput([...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)], x.dtype);
  if (tf.util.sizeFromShape(out.shape) === 0) return out;
  const heap = words(backend);
  const src = wordOffset(backend, x);
  let dst = wordOffset(backend, out);
  for (let o = 0; o < outer; o++) {
    const base = src + o * axisDim * inner;
    if (inner >= 8) {
      for (const index of ids) {
        heap.copyWithin(dst, base + index * inner, base + (index + 1) * inner);
        dst += inner;
      }
    } else {
      for (const index of ids) {
        const from = base + index * inner;
        for (let c = 0; c < inner; c++) heap[dst + c] = heap[from + c];
        dst += inner;
      }
    }
  }
  return out;
}
