import * as tf from "@tensorflow/tfjs";
import { fusedAttentionGradWasm } from "./attention-backward.js";
import { fusedAttentionWasm } from "./attention-forward.js";
import { type KernelArgs, acceptMissingOutputGradients, defineKernel } from "./registry.js";

/**
 * Scaled dot-product attention as one kernel (forward) and one gradient kernel, for the wasm backend:
 *
 *   P = softmax(Q Kᵀ · scale + M),  O = P V      with M = −1e9 where a key is hidden (causal, documents), else 0
 *
 * exactly the maths of `scaledDotProductAttention` (lib/nn/attention.ts), which calls it through
 * `fusedAttention` (lib/kernels/fused.ts) when there is no padding mask and no dropout. Composed from tfjs ops,
 * one attention is ~10 kernels forward and ~20 backward, each a full pass over the (B, nh, Tq, Tk) score
 * tensor. Here it is one pass per step, in one of two ways:
 * - block by block (head sizes a multiple of 4, the usual case): a query's scores are computed only for the
 *   keys it may see (below the causal diagonal, inside its own document), with the SIMD kernels of simd.ts,
 *   their softmax over those keys only (the others get exactly 0), and P·V and the gradients only over
 *   those keys too, all shared out among the kernel threads. Causal attention skips half the work; rows
 *   packed with short conversations skip most of it (fine-tuning: the attention kernels' time ÷ 3).
 * - over whole rows: 2-D matmuls per (batch, head) (`multiply2d`), then the mask, and XNNPACK's softmax over
 *   whole rows (hidden keys get exactly 0). The per-head matmuls are small (~1 MFLOP): with XNNPACK (no
 *   SIMD kernels), they run without its thread pool (`withoutThreadPool`).
 * Scaling and the softmax gradient are single passes (SIMD where possible).
 *
 * Inputs q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv) with equal leading dimensions; with `causal`,
 * query i (the last Tq of Tk positions) sees keys j ≤ i + Tk − Tq, as `causalMask` defines. Optional
 * input documentIds, int32 (B, T) for q, k, v of shape (B, nh, T, hs): a query sees only keys of its own
 * document, as `documentMask` defines (packed rows).
 */
export const FUSED_ATTENTION = "GptFusedAttention";
export const FUSED_DOCUMENT_ATTENTION = "GptFusedDocumentAttention"; // the same with document ids (packed rows)
export const FUSED_ATTENTION_GRAD = "GptFusedAttentionGrad";

/** Registers the fused attention kernels on wasm and their gradients (backend-independent). */
export function registerFusedAttention(): void {
  const forward = fusedAttentionWasm as unknown as (a: KernelArgs) => tf.TensorInfo[];
  defineKernel(FUSED_ATTENTION, "wasm", forward);
  defineKernel(FUSED_DOCUMENT_ATTENTION, "wasm", forward);
  defineKernel(FUSED_ATTENTION_GRAD, "wasm", fusedAttentionGradWasm as unknown as (a: KernelArgs) => tf.TensorInfo[]);
  // two kernel names because tfjs saves inputs for the gradient by name: the document ids only where given
  for (const [kernelName, inputsToSave] of [
    [FUSED_ATTENTION, ["q", "k", "v"]],
    [FUSED_DOCUMENT_ATTENTION, ["q", "k", "v", "documentIds"]],
  ] as const) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: [...inputsToSave],
      outputsToSave: [false, true],
      gradFunc: (dys, saved, attrs) => {
        // either may be null (an output the loss does not use): dP then adds nothing, dO counts as zeros
        const [dOrNull, dP] = dys as Array<tf.Tensor | null>;
        const [q, k, v, ...rest] = saved; // then [documentIds,] p
        const p = rest.pop()!;
        const dO = dOrNull ?? tf.zeros([...q.shape.slice(0, -1), v.shape[v.rank - 1]]);
        const documentIds = rest.length > 0 ? { documentIds: rest[0] } : {};
        const [dq, dk, dv] = tf
          .engine()
          .runKernel(
            FUSED_ATTENTION_GRAD,
            { dO, q, k, v, p, ...(dP ? { dP } : {}), ...documentIds } as unknown as tf.NamedTensorMap,
            attrs as tf.NamedAttrMap,
          ) as tf.Tensor[];
        if (!dOrNull) dO.dispose();
        return { q: () => dq, k: () => dk, v: () => dv };
      },
    });
    acceptMissingOutputGradients(kernelName);
  }
}
