import * as tf from "@tensorflow/tfjs";
import { FUSED_ADAMW, registerFusedAdamW } from "./adamw.js";
import {
  FUSED_ATTENTION,
  FUSED_ATTENTION_GRAD,
  FUSED_DOCUMENT_ATTENTION,
  registerFusedAttention,
} from "./attention.js";
import { registerWasmBatchMatMul } from "./batch-matmul.js";
import { castWasm, concatWasm, gatherV2Wasm, splitVWasm } from "./copy.js";
import { FUSED_CROSS_ENTROPY, FUSED_CROSS_ENTROPY_GRAD, registerFusedCrossEntropy } from "./cross-entropy.js";
import { addWasm, expWasm, identityWasm, powWasm, tanhWasm } from "./elementwise.js";
import { gemmKernels, gemmModule } from "./gemm.js";
import { FUSED_GELU_TANH, FUSED_GELU_TANH_GRAD, registerFusedGelu } from "./gelu.js";
import { FUSED_SPLIT_HEADS, FUSED_SPLIT_HEADS_GRAD, registerFusedSplitHeads } from "./heads.js";
import { FUSED_LAYER_NORM, FUSED_LAYER_NORM_GRAD, registerFusedLayerNorm } from "./layernorm.js";
import { FUSED_LINEAR, FUSED_LINEAR_GRAD, registerFusedLinear } from "./linear.js";
import { sumWasm, unsortedSegmentSumWasm } from "./reduce.js";
import { defineKernel, replaceKernel, restoreKernel, unregisterFusedKernels } from "./registry.js";
import { simdKernels, simdModule } from "./simd.js";
import { KernelThreads, kernelThreads, setKernelThreads } from "./threads.js";
import { transposeWasm } from "./transpose.js";
import { isShared } from "./wasm-module.js";
import { type WasmBackend, heapMemory } from "./wasm-heap.js";

/**
 * Custom kernels that make the WebAssembly backend fast at training: replacements for tfjs-backend-wasm
 * kernels that are slow (BatchMatMul ... GatherV2), one it lacks (UnsortedSegmentSum), and fused kernels
 * that lib/kernels/fused.ts uses when present (attention, a Linear layer's x·W + b, splitting heads, LayerNorm,
 * GELU, the cross-entropy, the AdamW update).
 * Each computes what
 * tfjs computes (tests/kernels.test.ts checks them against the cpu backend, forward and gradients);
 * `initBackend()` registers them when it selects wasm. GPT_WASM_KERNELS=0 keeps tfjs's own kernels; the
 * bench's `--without A,B` drops some of them (names below) for A/B measurements. Results: bench/NOTES.md.
 */
export const wasmKernelNames = [
  "BatchMatMul",
  "Identity",
  "Cast",
  "Transpose",
  "SplitV",
  "Concat",
  "Pow",
  "Tanh",
  "Exp",
  "Add",
  "Sum",
  "GatherV2",
  "UnsortedSegmentSum", // missing in tfjs-backend-wasm
  "Attention", // fused kernels, used by lib/kernels/fused.ts
  "Linear",
  "SplitHeads",
  "LayerNorm",
  "GeluTanh",
  "CrossEntropy",
  "AdamW",
] as const;

const fusedKernels: Record<string, string[]> = {
  Attention: [FUSED_ATTENTION, FUSED_DOCUMENT_ATTENTION, FUSED_ATTENTION_GRAD],
  Linear: [FUSED_LINEAR, FUSED_LINEAR_GRAD],
  SplitHeads: [FUSED_SPLIT_HEADS, FUSED_SPLIT_HEADS_GRAD],
  LayerNorm: [FUSED_LAYER_NORM, FUSED_LAYER_NORM_GRAD],
  GeluTanh: [FUSED_GELU_TANH, FUSED_GELU_TANH_GRAD],
  CrossEntropy: [FUSED_CROSS_ENTROPY, FUSED_CROSS_ENTROPY_GRAD],
  AdamW: [FUSED_ADAMW],
  UnsortedSegmentSum: ["UnsortedSegmentSum"],
};

/** The tfjs kernel names behind one of `wasmKernelNames`. */
export function kernelsOf(name: string): string[] {
  return fusedKernels[name] ?? [name];
}

export function registerWasmKernels(): void {
  registerWasmBatchMatMul();
  replaceKernel("Identity", "wasm", identityWasm);
  replaceKernel("Cast", "wasm", castWasm);
  replaceKernel("Transpose", "wasm", transposeWasm);
  replaceKernel("SplitV", "wasm", splitVWasm);
  replaceKernel("Concat", "wasm", concatWasm);
  replaceKernel("Pow", "wasm", powWasm);
  replaceKernel("Tanh", "wasm", tanhWasm);
  replaceKernel("Exp", "wasm", expWasm);
  replaceKernel("Add", "wasm", addWasm);
  replaceKernel("Sum", "wasm", sumWasm);
  replaceKernel("GatherV2", "wasm", gatherV2Wasm);
  defineKernel("UnsortedSegmentSum", "wasm", unsortedSegmentSumWasm);
  registerFusedAttention();
  registerFusedLinear();
  registerFusedSplitHeads();
  registerFusedLayerNorm();
  registerFusedGelu();
  registerFusedCrossEntropy();
  registerFusedAdamW();
}

/** Puts TensorFlow.js's own wasm kernels back (all, or the named ones; "Attention" = the fused attention). */
export function unregisterWasmKernels(names: readonly string[] = wasmKernelNames): void {
  for (const name of names) {
    if (fusedKernels[name]) unregisterFusedKernels(fusedKernels[name]);
    else restoreKernel(name, "wasm");
  }
}

/**
 * Starts `count` threads (the caller and count − 1 workers) for our kernels, on the threaded build's shared
 * heap; returns how many run (1: the kernels run on the calling thread, as with a single-threaded build).
 */
export async function startKernelThreads(count: number): Promise<number> {
  const backend = tf.findBackend("wasm") as unknown as WasmBackend | null;
  const memory = backend ? heapMemory(backend) : undefined;
  const usable = memory && isShared(memory) && gemmKernels(backend!) && simdKernels(backend!);
  const threads = usable
    ? await KernelThreads.start(memory, [gemmModule.module(true), simdModule.module(true)], count)
    : null;
  setKernelThreads(threads);
  return threads?.count ?? 1;
}

/** How many threads our kernels run on (the pool `startKernelThreads` started, which outlives a re-init). */
export function kernelThreadCount(): number {
  const backend = tf.findBackend("wasm") as unknown as WasmBackend | null;
  return (backend && kernelThreads(heapMemory(backend))?.count) || 1;
}
