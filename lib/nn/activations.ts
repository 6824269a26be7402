import * as tf from "@tensorflow/tfjs";
import { fusedGeluTanh } from "../kernels/fused.js";

/**
 * GELU, the smooth ReLU used by GPT: GELU(x) = x · Φ(x), where Φ is the standard normal CDF.
 * A unit lets through the fraction of its input that a standard normal variable falls below.
 */
export type Activation = "gelu" | "gelu_tanh";

/** Exact GELU: x · ½ (1 + erf(x / √2)). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => x.mul(tf.erf(x.div(Math.SQRT2)).add(1)).mul(0.5));
}

/**
 * GPT-2's GELU ("gelu_new"), the tanh approximation of the normal CDF:
 * ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))). It differs from exact GELU by less than 1e-3, but a
 * pretrained GPT-2 expects exactly this one.
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  // The same maths as one fused kernel where the backend has one (a speed-up only; see ops.ts).
  const fused = fusedGeluTanh(x);
  if (fused) return fused;
  return tf.tidy(() => {
    const inner = x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
    return x.mul(tf.tanh(inner).add(1)).mul(0.5);
  });
}

export function activationFunction(name: Activation): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case "gelu":
      return gelu;
    case "gelu_tanh":
      return geluTanh;
  }
}
