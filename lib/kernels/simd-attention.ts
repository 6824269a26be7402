/**
 * Attention's per-block routines for simd.ts: a block of queries against the keys they may see (attention.ts),
 * all of its forward pass, or all of its backward pass, in one call. Each calls the products (simd-products.ts)
 * and softmax routines (simd-softmax.ts) one after the other, so that the block's scores, weights and their
 * gradients (64 KiB for 128 × 128) are still in the core's cache when the next step reads them, and a whole
 * layer's attention is one job for the kernel threads instead of three.
 */
import { Func } from "./wasm-asm.js";

/** The routines the per-block functions call: functions of the same module. */
export interface AttentionRoutines {
  dotProducts: Func;
  weightedRows: Func;
  softmaxBlock: Func;
  softmaxBwd: Func;
  softmaxBwdPlain: Func;
}

const i32Params = (count: number) => Array<"i32">(count).fill("i32");

/** Pushes the given locals (arguments of a call). */
function push(f: Func, ...locals: number[]): Func {
  for (const local of locals) f.get(local);
  return f;
}

/**
 * Forward, one block: P = softmax(scale · Q Kᵀ) over the visible keys, written into p (rows Tk floats apart;
 * the scores are computed in place there), and O = P V. Arguments: the block's first query, key and value
 * rows (hs, hs and hv floats each), its first entry of P, its first output row; rows, keys, hs, hv, Tk,
 * above (query i sees key j ≤ i + above), k0 (the block's first key, for the zeros before it), scale.
 */
export function attentionBlockFunc({ dotProducts, softmaxBlock, weightedRows }: AttentionRoutines): Func {
  const f = new Func("attentionBlock", 13, [...i32Params(12), "f32"]);
  const [q, k, v, p, o, rows, keys, hs, hv, Tk, above, k0, scale] = Array.from({ length: 13 }, (_, i) => i);
  const args = (...locals: number[]) => push(f, ...locals);
  args(q, k, p, rows, keys, hs, hs, hs, Tk, above, scale);
  f.call(dotProducts);
  args(p, p, rows, keys, above, Tk, k0);
  f.call(softmaxBlock);
  args(p, v, o, rows, hv, keys, Tk);
  f.i32(1);
  args(hv, hv, rows, above);
  f.call(weightedRows);
  return f;
}

/**
 * Backward, one block, from dO and the saved weights P: dS = dO Vᵀ, dV = Pᵀ dO, then the softmax gradient
 * dS ← P ⊙ (dS + dP − Σ P ⊙ (dS + dP)) · scale (dP: the gradient reaching the weights themselves, or 0 for
 * none), then dQ = dS K and dK = dSᵀ Q. Only visible entries of dS are written and read. Arguments: dO, dP,
 * q, k, v, P, dS (P's and dS's first entries of the block; rows Tk floats apart), dq, dk, dv; rows, keys, hs,
 * hv, Tk, above, scale.
 */
export function attentionBlockGradFunc({
  dotProducts,
  weightedRows,
  softmaxBwd,
  softmaxBwdPlain,
}: AttentionRoutines): Func {
  const f = new Func("attentionBlockGrad", 17, [...i32Params(16), "f32"]);
  const [dO, dP, q, k, v, p, dS, dq, dk, dv, rows, keys, hs, hv, Tk, above, scale] = Array.from(
    { length: 17 },
    (_, i) => i,
  );
  const args = (...locals: number[]) => push(f, ...locals);
  args(dO, v, dS, rows, keys, hv, hv, hv, Tk, above);
  f.f32(1);
  f.call(dotProducts);
  args(p, dO, dv, keys, hv, rows);
  f.i32(1);
  args(Tk, hv, hv, above, rows);
  f.call(weightedRows);
  f.get(dP).ifElse(
    () => args(p, dS, dP, rows, keys, Tk, above, scale).call(softmaxBwd),
    () => args(p, dS, dP, rows, keys, Tk, above, scale).call(softmaxBwdPlain),
  );
  args(dS, k, dq, rows, hs, keys, Tk);
  f.i32(1);
  args(hs, hs, rows, above);
  f.call(weightedRows);
  args(dS, q, dk, keys, hs, rows);
  f.i32(1);
  args(Tk, hs, hs, above, rows);
  f.call(weightedRows);
  return f;
}
