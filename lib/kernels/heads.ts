import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, defineKernel } from "./registry.js";
import { simdKernels } from "./simd.js";
import { type KernelCall, kernelThreads, runShared } from "./threads.js";
import { type WasmBackend, heapMemory, heapOffset } from "./wasm-heap.js";

/**
 * Splitting a projection into attention heads as one copy, and its gradient as one copy back, for the wasm
 * backend: the maths of `AttentionHeads.splitHeads` (lib/nn/attention.ts), available as `fusedSplitHeads`
 * (lib/kernels/fused.ts):
 *
 *   x (B, T, parts · C)  →  parts tensors (B, nh, T, hs)      (q, k, v from c_attn: parts = 3)
 *
 * Composed from tfjs ops it is a SplitV (a copy of every float), then a reshape and a Transpose per part
 * (another copy), and the gradient a Transpose per part and a Concat: two passes over memory and 2 · parts + 1
 * kernels each way, three times per layer and step. Here each way is one kernel and one pass: for every part
 * and batch entry, the rows of hs floats of each head go straight to their place (`copyBlocks`, SIMD, on all
 * kernel threads).
 */
export const FUSED_SPLIT_HEADS = "GptSplitHeads";
export const FUSED_SPLIT_HEADS_GRAD = "GptSplitHeadsGrad";

interface HeadsLayout {
  B: number;
  T: number;
  parts: number;
  numHeads: number;
  hs: number;
}

/** Bytes from which the copies are shared out among the kernel threads. */
const PARALLEL_BYTES = 1 << 18;

/**
 * The copies between x (B, T, parts · nh · hs) and the parts' (B, nh, T, hs) tensors, one call per part and
 * batch entry: nh blocks (heads) of T rows of hs floats. `toHeads`: from x to the parts, else back.
 */
function headCopies(x: number, parts: number[], { B, T, numHeads, hs }: HeadsLayout, toHeads: boolean) {
  const width = parts.length * numHeads * hs; // floats per row of x
  const calls: KernelCall[] = [];
  parts.forEach((part, p) => {
    for (let b = 0; b < B; b++) {
      const inX = x + 4 * (b * T * width + p * numHeads * hs); // part p's first row of batch entry b in x
      const inPart = part + 4 * b * numHeads * T * hs;
      // per head: hs floats apart in x, T rows of hs in the part; per row: width floats in x, hs in the part
      const xSide = { at: inX, outer: 4 * hs, row: 4 * width };
      const partSide = { at: inPart, outer: 4 * T * hs, row: 4 * hs };
      const [from, to] = toHeads ? [xSide, partSide] : [partSide, xSide];
      calls.push(["copyBlocks", from.at, to.at, numHeads, from.outer, to.outer, T, 4 * hs, from.row, to.row]);
    }
  });
  return calls;
}

function layoutOf(x: tf.TensorInfo, attrs: KernelArgs["attrs"]): HeadsLayout {
  const [B, T, width] = x.shape;
  const parts = attrs!.parts as number;
  const numHeads = attrs!.numHeads as number;
  return { B, T, parts, numHeads, hs: width / parts / numHeads };
}

/** Makes the copies: SIMD on the kernel threads, or row by row in JavaScript where SIMD is unavailable. */
function copy(backend: WasmBackend, calls: KernelCall[], bytes: number): void {
  const simd = simdKernels(backend);
  if (simd) {
    runShared(kernelThreads(heapMemory(backend), bytes, PARALLEL_BYTES), simd, calls);
    return;
  }
  const heap = backend.wasm.HEAPU8;
  for (const [, src, dst, outer, srcOuter, dstOuter, rows, rowBytes, srcRow, dstRow] of calls) {
    for (let o = 0; o < outer; o++) {
      for (let r = 0; r < rows; r++) {
        const from = src + o * srcOuter + r * srcRow;
        heap.copyWithin(dst + o * dstOuter + r * dstRow, from, from + rowBytes);
      }
    }
  }
}

/** Forward: x (B, T, parts · C) → parts tensors (B, nh, T, hs). */
function splitHeadsWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const layout = layoutOf(x, args.attrs);
  const { B, T, parts, numHeads, hs } = layout;
  const outputs = Array.from({ length: parts }, () => backend.makeOutput([B, numHeads, T, hs], "float32"));
  const offsets = outputs.map((t) => heapOffset(backend, t));
  copy(backend, headCopies(heapOffset(backend, x), offsets, layout, true), 4 * tf.util.sizeFromShape(x.shape));
  return outputs;
}

/** Backward: the parts' gradients dy0 … (B, nh, T, hs) each → dx (B, T, parts · C). */
function splitHeadsGradWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { B, T } = args.attrs as { B: number; T: number };
  const dys = Object.keys(args.inputs)
    .sort()
    .map((name) => args.inputs[name] as tf.TensorInfo);
  const [, numHeads, , hs] = dys[0].shape;
  const layout = { B, T, parts: dys.length, numHeads, hs };
  const dx = backend.makeOutput([B, T, dys.length * numHeads * hs], "float32");
  const offsets = dys.map((t) => heapOffset(backend, t));
  copy(backend, headCopies(heapOffset(backend, dx), offsets, layout, false), 4 * tf.util.sizeFromShape(dx.shape));
  return dx;
}

export function registerFusedSplitHeads(): void {
  defineKernel(FUSED_SPLIT_HEADS, "wasm", splitHeadsWasm as unknown as (a: KernelArgs) => tf.TensorInfo);
  defineKernel(FUSED_SPLIT_HEADS_GRAD, "wasm", splitHeadsGradWasm);
  if (!tf.getGradient(FUSED_SPLIT_HEADS)) {
    tf.registerGradient({
      kernelName: FUSED_SPLIT_HEADS,
      gradFunc: (dys, _saved, attrs) => {
        const parts = Array.isArray(dys) ? dys : [dys]; // one part: tfjs hands a single-output kernel one tensor
        const [B, , T] = parts[0].shape;
        // inputs named so that they sort in part order (dy0 … dy9: at most 3 parts are ever used)
        const inputs = Object.fromEntries(parts.map((dy, p) => [`dy${p}`, dy]));
        return {
          x: () =>
            tf.engine().runKernel(FUSED_SPLIT_HEADS_GRAD, inputs, { ...attrs, B, T } as tf.NamedAttrMap) as tf.Tensor,
        };
      },
    });
  }
}
