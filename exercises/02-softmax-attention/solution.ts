/**
 * Exercise 02-softmax-attention · reference solution.
 *
 *   softmax(x)_i = exp(x_i) / Σ_j exp(x_j)
 *   Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V
 */
import { tf } from "gpt-course";

/** Softmax along the last axis, safe for large inputs. */
export function softmax(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    // softmax(x) = softmax(x − c) for any constant c. With c = the row's maximum, every exponent is ≤ 0, so
    // exp never overflows to Infinity (float32 overflows beyond exp(88)), and the largest term is exactly 1.
    const shifted = x.sub(x.max(-1, true));
    const exps = shifted.exp();
    return exps.div(exps.sum(-1, true));
  });
}

/**
 * Scaled dot-product attention for q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v).
 * Returns the output (..., Tq, d_v) and the attention weights (..., Tq, Tk).
 */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): { output: tf.Tensor; weights: tf.Tensor } {
  return tf.tidy(() => {
    const dk = q.shape[q.rank - 1] as number;
    // scores[i, j] = q_i · k_j: how well query i matches key j. Dividing by √d_k keeps their variance near 1
    // whatever the head size, so the softmax does not saturate.
    const scores = tf.matMul(q, k, false, true).div(Math.sqrt(dk)); // (..., Tq, Tk)
    const weights = softmax(scores); // each row sums to 1
    return { output: tf.matMul(weights, v), weights }; // (..., Tq, d_v): weighted averages of the values
  });
}
