/**
 * Exercise 05-training-step: one training step written out (loss, gradients, clipping, AdamW). Read README.md in
 * this folder, fill in the TODOs, then check your work with `npm run exercise -- 05-training-step`.
 */
import type { AdamWOptions, GPT, tf } from "gpt-course";
// lossAndGradients also needs crossEntropy from gpt-course: add it to the import above.
import { todo } from "../harness/check.js";

/**
 * Whether AdamW's weight decay applies to this parameter: matrices that multiply activations do (rank ≥ 2);
 * biases and LayerNorm's γ and β (rank 1) do not, and neither do the embedding tables wte and wpe.
 */
export function decays(name: string, variable: tf.Variable): boolean {
  // TODO: true for a matrix (variable.rank ≥ 2) unless it is an embedding table (its name starts with "wte." or
  //       "wpe."), false otherwise.
  return todo("decays", name, variable);
}

/**
 * The loss of the model on one batch and the gradient of every parameter, keyed by the parameter's name
 * ("h.0.attn.c_attn.weight"), not by TensorFlow.js's internal variable name.
 */
export function lossAndGradients(
  model: GPT,
  inputs: tf.Tensor, // int32 (B, T)
  targets: tf.Tensor, // int32 (B, T)
): { loss: tf.Scalar; gradients: Record<string, tf.Tensor> } {
  // TODO: 1. const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(inputs), targets));
  //          value is the loss; grads maps each trainable variable's *TensorFlow.js name* (variable.name) to its
  //          gradient, which has the variable's shape;
  //       2. re-key grads by parameter name: model.namedParameters() gives [name, variable] pairs.
  return todo("lossAndGradients", model, inputs, targets);
}

/**
 * Scales all gradients by one factor so that their global norm ‖g‖ = √(Σ_θ Σ g_θ²) is at most maxNorm:
 * g ← g · min(1, maxNorm / (‖g‖ + 1e-6)). Returns the clipped gradients (new tensors) and the norm before clipping.
 */
export function clipByGlobalNorm(
  gradients: Record<string, tf.Tensor>,
  maxNorm: number,
): { clipped: Record<string, tf.Tensor>; norm: number } {
  // TODO: the global norm: the square root of the sum, over every gradient, of the sum of its squared entries
  //       (read it as a number with .dataSync()[0]); then multiply every gradient by the same factor.
  return todo("clipByGlobalNorm", gradients, maxNorm);
}

/**
 * AdamW (Loshchilov & Hutter, 2019). For each weight w with gradient g, at update t = 1, 2, …:
 *   m ← β₁m + (1 − β₁)g,   v ← β₂v + (1 − β₂)g²
 *   w ← w − lr · ( (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε) + λw )      (λw only where decays(name, w))
 */
export class AdamW {
  readonly options: AdamWOptions; // learningRate (lr), beta1, beta2, epsilon (ε), weightDecay (λ)
  /** Updates applied so far: t in the bias corrections. */
  step = 0;
  readonly parameters: Array<[string, tf.Variable]>;
  /** First and second moments (running means of g and g²) of each parameter, by name. */
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(namedParameters: Array<[string, tf.Variable]>, options: AdamWOptions) {
    this.parameters = namedParameters;
    this.options = { ...options };
    // TODO: for every [name, variable], store in this.m and this.v a variable of zeros of its shape, not trainable:
    //       tf.tidy(() => tf.variable(tf.zerosLike(variable), false)).
    todo("AdamW constructor: zero moments for every parameter", namedParameters);
  }

  /** One update from gradients keyed by parameter name; parameters without a gradient are left as they are. */
  applyGradients(gradients: Record<string, tf.Tensor>): void {
    // TODO: count this update (this.step, once per call); then, inside tf.tidy, for each [name, w] with a gradient g:
    //       update m and v (m.assign(...)), correct them for starting at 0 (divide by 1 − β₁ᵗ and 1 − β₂ᵗ), and
    //       w.assign(w − lr · (m̂ / (√v̂ + ε) + λw)), the λw term only where decays(name, w).
    todo("AdamW.applyGradients", gradients);
  }

  dispose(): void {
    for (const moment of [...this.m.values(), ...this.v.values()]) moment.dispose();
  }
}

/** One training step on one batch: forward, backward, clip, update. Returns the loss (before the update). */
export function trainStep(
  model: GPT,
  optimizer: AdamW,
  inputs: tf.Tensor,
  targets: tf.Tensor,
  maxNorm: number,
): number {
  // TODO: model.train(); lossAndGradients; clipByGlobalNorm(gradients, maxNorm); optimizer.applyGradients(clipped);
  //       read the loss as a number; dispose the loss and both sets of gradients; return the loss.
  return todo("trainStep", model, optimizer, inputs, targets, maxNorm);
}
