import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, defineKernel } from "./registry.js";
import { simdKernels } from "./simd.js";
import { type WasmBackend, f32, heapOffset } from "./wasm-heap.js";

/**
 * One AdamW update of one parameter as a single kernel, for the wasm backend (ops.ts `fusedAdamWUpdate`):
 *
 *   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   w ← w · decay − lr · (m / c₁) / (√(v / c₂) + ε)
 *
 * with c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ and decay = 1 − lr · λ (or 1 without weight decay): the maths of
 * lib/training/optimizer.ts's AdamW, which as tfjs ops is ~14 kernels per parameter per step (for the
 * course model ~730 of a training step's ~1,400 kernel calls, each with tfjs's fixed per-call cost).
 * Inputs w, m, v, g (same shape); outputs [w', m', v'].
 */
export const FUSED_ADAMW = "GptFusedAdamW";

export interface AdamWAttrs {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  decay: number; // 1 − lr·λ, or 1
  correction1: number;
  correction2: number;
}

function adamWWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmBackend;
  const { w, m, v, g } = args.inputs as Record<string, tf.TensorInfo>;
  const a = args.attrs as unknown as AdamWAttrs;
  const outs = [w, m, v].map((t) => backend.makeOutput([...t.shape], "float32"));
  const n = tf.util.sizeFromShape(w.shape);
  const simd = simdKernels(backend);
  const done = simd ? n - (n % 4) : 0;
  if (done > 0) {
    const at = (t: tf.TensorInfo) => heapOffset(backend, t);
    simd!.adamW(
      at(w),
      at(m),
      at(v),
      at(g),
      at(outs[0]),
      at(outs[1]),
      at(outs[2]),
      done,
      a.learningRate,
      a.beta1,
      a.beta2,
      a.epsilon,
      a.decay,
      a.correction1,
      a.correction2,
    );
  }
  if (done < n) {
    const [W, M, V, G] = [w, m, v, g].map((t) => f32(backend, t));
    const [W2, M2, V2] = outs.map((t) => f32(backend, t));
    for (let i = done; i < n; i++) {
      const mi = a.beta1 * M[i] + (1 - a.beta1) * G[i];
      const vi = a.beta2 * V[i] + (1 - a.beta2) * G[i] * G[i];
      M2[i] = mi;
      V2[i] = vi;
      W2[i] = W[i] * a.decay - a.learningRate * (mi / a.correction1 / (Math.sqrt(vi / a.correction2) + a.epsilon));
    }
  }
  return outs;
}

export function registerFusedAdamW(): void {
  defineKernel(FUSED_ADAMW, "wasm", adamWWasm);
}
