/**
 * Attention's gradients (dq, dk, dv) against the float64 reference's formulas (tests/reference/float64.ts), on
 * the plain cpu backend (tfjs's automatic differentiation) and on wasm (the course's fused kernels, forward and
 * backward written by hand): causal and not, more keys than queries (a KV cache) and more queries than keys.
 */
import { describe, expect, it } from "vitest";
import { initBackend, scaledDotProductAttention, tf } from "gpt-course";
import * as ref from "./reference/float64.js";

/** Deterministic values in (−1, 1). */
function values(count: number, seed: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.sin(seed * 7919 + i * 104.729) * Math.cos(i * 0.37 + seed));
}

const cases = [
  { Tq: 6, Tk: 6, hs: 8, hv: 8, causal: true }, // GPT self-attention; head size a multiple of 4: the block kernels
  { Tq: 5, Tk: 5, hs: 3, hv: 5, causal: true }, // odd head size: the general path
  { Tq: 3, Tk: 7, hs: 4, hv: 4, causal: true }, // queries after a cache of 4 keys
  { Tq: 7, Tk: 3, hs: 4, hv: 8, causal: false }, // cross-attention, more queries than keys
  { Tq: 4, Tk: 9, hs: 8, hv: 4, causal: false },
];

describe.each(["cpu", "wasm"])("attention gradients on %s", (backend) => {
  it.each(cases)(
    "Tq $Tq, Tk $Tk, head sizes $hs/$hv, causal $causal: dq, dk, dv equal the formulas",
    async ({ Tq, Tk, hs, hv, causal }) => {
      await initBackend(backend);
      const heads = 2;
      const [q, k, v, dO] = [
        [Tq, hs],
        [Tk, hs],
        [Tk, hv],
        [Tq, hv],
      ].map(([rows, cols], n) =>
        Array.from({ length: heads }, (_, h) =>
          Array.from({ length: rows }, (_, r) => values(cols, 100 * n + 10 * h + r)),
        ),
      );
      const before = tf.memory().numTensors;
      const grads = tf.tidy(() => {
        const [tq, tk, tv, tdO] = [q, k, v, dO].map((m) => tf.tensor3d(m).expandDims(0)); // (1, heads, T, size)
        const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          scaledDotProductAttention(a, b, c, { causal }).output.mul(tdO).sum() as tf.Scalar;
        return tf
          .grads(loss)([tq, tk, tv])
          .map((g) => g.squeeze([0]).arraySync() as number[][][]);
      });
      expect(tf.memory().numTensors).toBe(before);
      for (let h = 0; h < heads; h++) {
        const expected = ref.attentionGradients(q[h], k[h], v[h], dO[h], { causal });
        (["dq", "dk", "dv"] as const).forEach((name, n) => {
          const got = grads[n][h];
          const worst = Math.max(...expected[name].flatMap((row, i) => row.map((x, j) => Math.abs(x - got[i][j]))));
          const size = Math.max(...expected[name].flat().map(Math.abs));
          expect(worst / size, `${name}, head ${h}`).toBeLessThan(1e-5);
        });
      }
    },
  );
});
