/**
 * Exercise 02-causal-mask · reference solution.
 *
 * A decoder must not look ahead: when predicting token t it may attend to positions 0..t only. A mask
 * (1 = may attend, 0 = may not) is applied to the scores before the softmax; a masked score becomes a large
 * negative number, so its weight comes out as exp(−1e9) = 0.
 */
import { MASKED_SCORE, tf } from "gpt-course";

/**
 * The (Tq, Tk) causal mask: 1 where query i may see key j, i.e. j ≤ i + (Tk − Tq). When Tq < Tk the queries
 * are the last Tq of the Tk positions (the earlier keys come from a cache), hence the offset.
 */
export function causalMask(queryLength: number, keyLength: number): tf.Tensor2D {
  return tf.tidy(() => {
    const offset = keyLength - queryLength;
    const queryPositions = tf.range(offset, offset + queryLength, 1, "int32").expandDims(1); // (Tq, 1)
    const keyPositions = tf.range(0, keyLength, 1, "int32").expandDims(0); // (1, Tk)
    // Broadcasting compares every query position with every key position: a (Tq, Tk) table.
    return tf.lessEqual(keyPositions, queryPositions).toFloat() as tf.Tensor2D;
  });
}

/**
 * softmax(q·kᵀ/√d_k + M)·v where M is 0 where `mask` is 1 and MASKED_SCORE where it is 0.
 * `mask` is broadcastable to the scores' shape (..., Tq, Tk).
 */
export function maskedAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  mask: tf.Tensor,
): { output: tf.Tensor; weights: tf.Tensor } {
  return tf.tidy(() => {
    const dk = q.shape[q.rank - 1] as number;
    const scores = tf.matMul(q, k, false, true).div(Math.sqrt(dk));
    // (1 − mask) is 1 exactly where attending is forbidden. A finite −1e9 rather than −Infinity keeps a
    // fully masked row finite (−Infinity everywhere would give 0/0 = NaN).
    const masked = scores.add(tf.sub(1, mask).mul(MASKED_SCORE));
    const weights = tf.softmax(masked);
    return { output: tf.matMul(weights, v), weights };
  });
}
