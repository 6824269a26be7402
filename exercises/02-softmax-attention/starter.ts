/**
 * Exercise 02-softmax-attention: softmax and scaled dot-product attention. Read README.md in this folder,
 * fill in the TODOs, then check your work with `npm run exercise -- 02-softmax-attention`.
 */
import type { tf } from "gpt-course";
import { todo } from "../harness/check.js";

/** Softmax along the last axis, safe for large inputs. */
export function softmax(x: tf.Tensor): tf.Tensor {
  // TODO: exp(x) / sum(exp(x)) along the last axis (-1, keepDims so it broadcasts).
  //       Large inputs overflow exp: subtract each row's maximum first (it does not change the result).
  //       Write it with tensor ops (x.max, x.sub, tf.exp, x.sum, x.div), not with tf.softmax.
  return todo("softmax", x);
}

/**
 * Scaled dot-product attention for q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v).
 * Returns the output (..., Tq, d_v) and the attention weights (..., Tq, Tk).
 */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): { output: tf.Tensor; weights: tf.Tensor } {
  // TODO: scores = q · kᵀ / √d_k   (tf.matMul(q, k, false, true) multiplies by the transpose of k)
  //       weights = softmax(scores)   (your softmax above)
  //       output = weights · v
  return todo("attention", q, k, v);
}
