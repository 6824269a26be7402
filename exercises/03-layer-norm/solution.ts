/**
 * Exercise 03-layer-norm · reference solution.
 *
 *   y = (x − mean) / √(var + ε) · γ + β       (mean and var over the last axis, one pair per vector)
 */
import { tf } from "gpt-course";

/** Mean and (biased) variance over the last axis, with that axis kept (size 1) so they broadcast. */
export function meanAndVariance(x: tf.Tensor): { mean: tf.Tensor; variance: tf.Tensor } {
  return tf.tidy(() => {
    const mean = x.mean(-1, true);
    // Divide by N, not N − 1: LayerNorm normalises the vector it has, it does not estimate a population.
    const variance = x.sub(mean).square().mean(-1, true);
    return { mean, variance };
  });
}

/** Layer normalisation of each vector along the last axis, then scaled by `weight` (γ) and shifted by `bias` (β). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, epsilon = 1e-5): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = meanAndVariance(x);
    // ε inside the square root keeps the division finite for a constant vector (variance 0).
    const normalised = x.sub(mean).div(variance.add(epsilon).sqrt());
    return normalised.mul(weight).add(bias);
  });
}
