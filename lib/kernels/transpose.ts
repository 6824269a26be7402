import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, runOriginal } from "./registry.js";
import { type SimdKernels, simdKernels } from "./simd.js";
import { type RowCopy, copyRows } from "./copy.js";
import { type WasmBackend, heapOffset } from "./wasm-heap.js";

/**
 * Transpose (permute axes) in JavaScript over the wasm heap, for float32 and int32 tensors.
 *
 * The wasm backend's C++ transpose walks the output with a general index computation per element; the
 * common cases here are simpler: axes that stay next to each other are merged first, so splitting heads
 * ((B, T, nh, hs) → (B, nh, T, hs)) becomes a copy of contiguous hs-float rows, and a matrix transpose
 * is done in cache-sized tiles.
 */

type Words = Int32Array; // float32 and int32 are both moved as 32-bit words

/** Merges axes that are adjacent both before and after the permutation; drops size-1 axes. */
export function simplifyPermutation(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const keep = shape.map((d) => d !== 1);
  // drop size-1 axes
  const oldToNew = new Map<number, number>();
  const reducedShape: number[] = [];
  shape.forEach((d, i) => {
    if (keep[i]) {
      oldToNew.set(i, reducedShape.length);
      reducedShape.push(d);
    }
  });
  const reducedPerm = perm.filter((p) => keep[p]).map((p) => oldToNew.get(p)!);
  // merge runs p, p+1, ... in the permutation
  const groups: number[][] = [];
  for (const p of reducedPerm) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1] + 1 === p) last.push(p);
    else groups.push([p]);
  }
  const order = [...groups].sort((a, b) => a[0] - b[0]);
  const mergedShape = order.map((g) => g.reduce((size, axis) => size * reducedShape[axis], 1));
  const mergedPerm = groups.map((g) => order.indexOf(g));
  return { shape: mergedShape, perm: mergedPerm };
}

/** dst = src permuted; both dense row-major, `shape` is src's shape. */
export function transposeWords(
  src: Words,
  dst: Words,
  shape: number[],
  perm: number[],
  simd?: SimdKernels | null,
): void {
  const simple = simplifyPermutation(shape, perm);
  const s = simple.shape;
  const p = simple.perm;
  if (p.length <= 1) {
    dst.set(src.subarray(0, dst.length));
    return;
  }
  const matrices =
    p.length === 2 ? [1, s[0], s[1]] : p.length === 3 && p[0] === 0 && p[1] === 2 && p[2] === 1 ? s : undefined;
  if (matrices) {
    // one matrix transpose, or a batch of them; WebAssembly SIMD 4 × 4 blocks when both sides are multiples of 4
    const [n, rows, cols] = matrices;
    const size = rows * cols;
    const useSimd = simd && rows % 4 === 0 && cols % 4 === 0 && src.buffer === dst.buffer;
    for (let b = 0; b < n; b++) {
      if (useSimd) simd.transpose(src.byteOffset + 4 * b * size, dst.byteOffset + 4 * b * size, rows, cols, cols, rows);
      else transpose2d(src, b * size, dst, b * size, rows, cols);
    }
    return;
  }
  if (p[p.length - 1] === p.length - 1) {
    // innermost axis stays innermost: move contiguous rows
    const inner = s[s.length - 1];
    const outer = s.slice(0, -1);
    const outerPerm = p.slice(0, -1);
    permuteGeneric(src, dst, outer, outerPerm, inner);
    return;
  }
  permuteGeneric(src, dst, s, p, 1);
}

/**
 * dst[j, i] = src[i, j] for a rows × cols matrix at the given word offsets, in 32 × 32 tiles; inside a
 * tile 8 source rows are read together so that each write fills 8 consecutive destination words.
 */
function transpose2d(src: Words, srcOffset: number, dst: Words, dstOffset: number, rows: number, cols: number): void {
  const tile = 32;
  for (let i0 = 0; i0 < rows; i0 += tile) {
    const iEnd = Math.min(i0 + tile, rows);
    for (let j0 = 0; j0 < cols; j0 += tile) {
      const jEnd = Math.min(j0 + tile, cols);
      let i = i0;
      for (; i + 8 <= iEnd; i += 8) {
        let from = srcOffset + i * cols + j0;
        let to = dstOffset + j0 * rows + i;
        for (let j = j0; j < jEnd; j++) {
          dst[to] = src[from];
          dst[to + 1] = src[from + cols];
          dst[to + 2] = src[from + 2 * cols];
          dst[to + 3] = src[from + 3 * cols];
          dst[to + 4] = src[from + 4 * cols];
          dst[to + 5] = src[from + 5 * cols];
          dst[to + 6] = src[from + 6 * cols];
          dst[to + 7] = src[from + 7 * cols];
          from++;
          to += rows;
        }
      }
      for (; i < iEnd; i++) {
        let from = srcOffset + i * cols + j0;
        let to = dstOffset + j0 * rows + i;
        for (let j = j0; j < jEnd; j++) {
          dst[to] = src[from++];
          to += rows;
        }
      }
    }
  }
}

/**
 * General permutation of blocks of `block` contiguous words: walks the output in order with an odometer
 * over its axes, tracking the matching input offset incrementally.
 */
function permuteGeneric(src: Words, dst: Words, shape: number[], perm: number[], block: number): void {
  const rank = shape.length;
  // When both live in one buffer (the wasm heap), long runs are copied with copyWithin.
  const heap = block >= 8 && src.buffer === dst.buffer ? new Int32Array(src.buffer) : undefined;
  const srcBase = src.byteOffset >>> 2;
  const dstBase = dst.byteOffset >>> 2;
  const inStrides = new Array<number>(rank);
  let stride = block;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = stride;
    stride *= shape[i];
  }
  const outShape = perm.map((axis) => shape[axis]);
  const step = perm.map((axis) => inStrides[axis]); // input stride of each output axis
  const index = new Array<number>(rank).fill(0);
  const lastSize = outShape[rank - 1];
  const lastStep = step[rank - 1];
  const total = outShape.reduce((a, b) => a * b, 1) / lastSize;
  let out = 0;
  let inBase = 0;
  for (let n = 0; n < total; n++) {
    let from = inBase;
    if (block === 1) {
      for (let j = 0; j < lastSize; j++) {
        dst[out++] = src[from];
        from += lastStep;
      }
    } else if (heap) {
      // contiguous runs of `block` words: memmove within the heap
      for (let j = 0; j < lastSize; j++) {
        heap.copyWithin(dstBase + out, srcBase + from, srcBase + from + block);
        out += block;
        from += lastStep;
      }
    } else {
      for (let j = 0; j < lastSize; j++) {
        for (let k = 0; k < block; k++) dst[out + k] = src[from + k];
        out += block;
        from += lastStep;
      }
    }
    // advance the odometer over the output axes 0 .. rank-2
    for (let axis = rank - 2; axis >= 0; axis--) {
      index[axis]++;
      inBase += step[axis];
      if (index[axis] < outShape[axis]) break;
      inBase -= step[axis] * outShape[axis];
      index[axis] = 0;
    }
  }
}

/**
 * A permutation that keeps the innermost axis (simplified: `shape`, `perm` with perm[last] = last) as copies
 * of rows of that axis: the last two other output axes are each copy's blocks and rows, and every index of
 * the output axes before them is one copy. src and dst are byte offsets in the heap.
 */
function rowCopies(shape: number[], perm: number[], src: number, dst: number): RowCopy[] {
  const rank = shape.length;
  const inStrides = shape.map((_, axis) => 4 * tf.util.sizeFromShape(shape.slice(axis + 1))); // bytes
  const outShape = perm.map((axis) => shape[axis]);
  const outStrides = outShape.map((_, axis) => 4 * tf.util.sizeFromShape(outShape.slice(axis + 1)));
  const [blockAxis, rowAxis] = [rank - 3, rank - 2]; // output axes (rank ≥ 3: rank 2 keeping its last axis is no permutation)
  const copy = (srcBase: number, dstBase: number): RowCopy => ({
    src: srcBase,
    dst: dstBase,
    outer: outShape[blockAxis],
    srcOuter: inStrides[perm[blockAxis]],
    dstOuter: outStrides[blockAxis],
    rows: outShape[rowAxis],
    rowBytes: outStrides[rowAxis],
    srcRow: inStrides[perm[rowAxis]],
    dstRow: outStrides[rowAxis],
  });
  const copies: RowCopy[] = [];
  const visit = (axis: number, srcBase: number, dstBase: number) => {
    if (axis === blockAxis) copies.push(copy(srcBase, dstBase));
    else
      for (let i = 0; i < outShape[axis]; i++)
        visit(axis + 1, srcBase + i * inStrides[perm[axis]], dstBase + i * outStrides[axis]);
  };
  visit(0, src, dst);
  return copies;
}

export function wordsOf(backend: WasmBackend, tensor: tf.TensorInfo): Words {
  const { memoryOffset } = backend.dataIdMap.get(tensor.dataId);
  return new Int32Array(backend.wasm.HEAPU8.buffer, memoryOffset, tf.util.sizeFromShape(tensor.shape));
}

/** Transposes a float32/int32 tensor into a new tensor (used by other kernels too). */
export function transposeTensor(backend: WasmBackend, x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
  const outShape = perm.map((axis) => x.shape[axis]);
  const out = backend.makeOutput(outShape, x.dtype);
  transposeWords(wordsOf(backend, x), wordsOf(backend, out), x.shape, perm, simdKernels(backend));
  return out;
}

export function transposeWasm(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const perm = args.attrs!.perm as number[];
  if (x.dtype !== "float32" && x.dtype !== "int32") return runOriginal("Transpose", args);
  const backend = args.backend as WasmBackend;
  const simple = simplifyPermutation(x.shape, perm);
  if (simple.perm.every((axis, i) => axis === i)) {
    backend.incRef(x.dataId); // only size-1 axes move: the data is already in order, share it
    return { dataId: x.dataId, shape: perm.map((axis) => x.shape[axis]), dtype: x.dtype };
  }
  const simd = simdKernels(backend);
  if (simple.perm[simple.perm.length - 1] === simple.perm.length - 1) {
    // Moving whole rows (innermost axis stays innermost, e.g. splitting heads): the SIMD copy kernel, on all
    // threads; without it the C++ kernel, faster than ours in JavaScript.
    if (!simd) return runOriginal("Transpose", args);
    const out = backend.makeOutput(
      perm.map((axis) => x.shape[axis]),
      x.dtype,
    );
    copyRows(backend, simd, rowCopies(simple.shape, simple.perm, heapOffset(backend, x), heapOffset(backend, out)));
    return out;
  }
  return transposeTensor(backend, x, perm);
}
