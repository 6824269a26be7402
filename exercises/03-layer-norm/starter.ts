/**
 * Exercise 03-layer-norm: layer normalisation. Read README.md in this folder, fill in the TODOs, then check
 * your work with `npm run exercise -- 03-layer-norm`.
 */
import type { tf } from "gpt-course";
import { todo } from "../harness/check.js";

/** Mean and (biased) variance over the last axis, with that axis kept (size 1) so they broadcast. */
export function meanAndVariance(x: tf.Tensor): { mean: tf.Tensor; variance: tf.Tensor } {
  // TODO: mean = average over axis -1 (keepDims true); variance = average of (x − mean)² over axis -1.
  //       Write it with x.mean, x.sub, .square (not tf.moments, which does it for you).
  return todo("meanAndVariance", x);
}

/** Layer normalisation of each vector along the last axis, then scaled by `weight` (γ) and shifted by `bias` (β). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, epsilon = 1e-5): tf.Tensor {
  // TODO: (x − mean) / √(variance + ε) · weight + bias. weight and bias have shape [C] and broadcast.
  return todo("layerNorm", x, weight, bias, epsilon);
}
