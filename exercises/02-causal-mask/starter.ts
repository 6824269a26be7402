/**
 * Exercise 02-causal-mask: the causal mask and masked attention. Read README.md in this folder, fill in the
 * TODOs, then check your work with `npm run exercise -- 02-causal-mask`.
 */
import type { tf } from "gpt-course";
import { todo } from "../harness/check.js";

/**
 * The (Tq, Tk) causal mask: 1 where query i may see key j, i.e. j ≤ i + (Tk − Tq). When Tq < Tk the queries
 * are the last Tq of the Tk positions (the earlier keys come from a cache), hence the offset.
 */
export function causalMask(queryLength: number, keyLength: number): tf.Tensor2D {
  // TODO: a (Tq, Tk) float tensor of 0s and 1s. One way: a column of query positions (tf.range(...).expandDims(1))
  //       compared with a row of key positions (expandDims(0)) by tf.lessEqual; broadcasting does the rest.
  //       Another: tf.linalg.bandPart(tf.ones([Tq, Tk]), -1, offset).
  return todo("causalMask", queryLength, keyLength);
}

/**
 * softmax(q·kᵀ/√d_k + M)·v where M is 0 where `mask` is 1 and MASKED_SCORE (−1e9, exported by
 * gpt-course) where it is 0.
 * `mask` is broadcastable to the scores' shape (..., Tq, Tk).
 */
export function maskedAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  mask: tf.Tensor,
): { output: tf.Tensor; weights: tf.Tensor } {
  // TODO: scores as in 02-softmax-attention (you may use tf.softmax here), then push the forbidden scores
  //       down to MASKED_SCORE before the softmax: scores + (1 − mask) · MASKED_SCORE, or tf.where(...).
  return todo("maskedAttention", q, k, v, mask);
}
