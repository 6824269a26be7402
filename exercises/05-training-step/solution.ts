/**
 * Exercise 05-training-step · reference solution: one training step written out, as gpt-course's Trainer does it.
 *
 *   1. forward and loss        cross-entropy of the next-token predictions
 *   2. backward                tf.variableGrads: ∂loss/∂θ for every trainable weight θ
 *   3. clip                    scale all gradients together so their global norm is at most maxNorm
 *   4. update                  AdamW: moments, bias correction, decoupled weight decay on matrices only
 */
import { type AdamWOptions, crossEntropy, type GPT, tf } from "gpt-course";

/**
 * Whether AdamW's weight decay applies to this parameter: matrices that multiply activations do (rank ≥ 2);
 * biases and LayerNorm's γ and β (rank 1) do not, and neither do the embedding tables wte and wpe.
 */
export function decays(name: string, variable: tf.Variable): boolean {
  const isEmbedding = name.startsWith("wte.") || name.startsWith("wpe.");
  return variable.rank >= 2 && !isEmbedding;
}

/**
 * The loss of the model on one batch and the gradient of every parameter, keyed by the parameter's name
 * ("h.0.attn.c_attn.weight"), not by TensorFlow.js's internal variable name.
 */
export function lossAndGradients(
  model: GPT,
  inputs: tf.Tensor,
  targets: tf.Tensor,
): { loss: tf.Scalar; gradients: Record<string, tf.Tensor> } {
  // tf.variableGrads runs f, records every operation, and returns ∂f/∂v for each trainable variable f used.
  const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(inputs), targets));
  const nameOf = new Map(model.namedParameters().map(([name, variable]) => [variable.name, name]));
  const gradients: Record<string, tf.Tensor> = {};
  for (const [variableName, gradient] of Object.entries(grads))
    gradients[nameOf.get(variableName) ?? variableName] = gradient;
  return { loss: value, gradients };
}

/**
 * Scales all gradients by one factor so that their global norm ‖g‖ = √(Σ_θ Σ g_θ²) is at most maxNorm:
 * g ← g · min(1, maxNorm / (‖g‖ + 1e-6)). Returns the clipped gradients (new tensors) and the norm before clipping.
 */
export function clipByGlobalNorm(
  gradients: Record<string, tf.Tensor>,
  maxNorm: number,
): { clipped: Record<string, tf.Tensor>; norm: number } {
  const norm = tf.tidy(() => {
    const squares = Object.values(gradients).map((g) => g.square().sum()); // one scalar per parameter
    return squares
      .reduce((total, s) => total.add(s))
      .sqrt()
      .dataSync()[0] as number;
  });
  // One factor for all: the direction of the whole update is kept, only its length shrinks.
  const scale = Math.min(1, maxNorm / (norm + 1e-6));
  const clipped: Record<string, tf.Tensor> = {};
  for (const [name, g] of Object.entries(gradients)) clipped[name] = g.mul(scale);
  return { clipped, norm };
}

/**
 * AdamW (Loshchilov & Hutter, 2019). For each weight w with gradient g, at update t = 1, 2, …:
 *   m ← β₁m + (1 − β₁)g,   v ← β₂v + (1 − β₂)g²
 *   w ← w − lr · ( (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε) + λw )      (λw only where decays(name, w))
 */
export class AdamW {
  readonly options: AdamWOptions;
  /** Updates applied so far: t in the bias corrections. */
  step = 0;
  readonly parameters: Array<[string, tf.Variable]>;
  /** First and second moments (running means of g and g²) of each parameter, by name. */
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(namedParameters: Array<[string, tf.Variable]>, options: AdamWOptions) {
    this.parameters = namedParameters;
    this.options = { ...options };
    for (const [name, variable] of namedParameters) {
      // Moments start at 0, not trainable: they are the optimizer's memory, not the model's weights.
      // (tf.tidy frees the zeros once the variable has taken its own copy.)
      this.m.set(
        name,
        tf.tidy(() => tf.variable(tf.zerosLike(variable), false)),
      );
      this.v.set(
        name,
        tf.tidy(() => tf.variable(tf.zerosLike(variable), false)),
      );
    }
  }

  /** One update from gradients keyed by parameter name; parameters without a gradient are left as they are. */
  applyGradients(gradients: Record<string, tf.Tensor>): void {
    this.step++; // once per update, not once per parameter
    const { learningRate: lr, beta1, beta2, epsilon, weightDecay } = this.options;
    // m and v start at 0, so early on they are too small by a factor 1 − βᵗ: divide it out.
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    tf.tidy(() => {
      for (const [name, w] of this.parameters) {
        const g = gradients[name];
        if (!g) continue;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(m.mul(beta1).add(g.mul(1 - beta1)));
        v.assign(v.mul(beta2).add(g.square().mul(1 - beta2)));
        const update = m.div(correction1).div(v.div(correction2).sqrt().add(epsilon));
        // Decoupled weight decay: λw is added to the step, not to the gradient (where Adam's scaling would
        // shrink it for weights with large gradients).
        const decay = decays(name, w) ? w.mul(weightDecay) : tf.zerosLike(w);
        w.assign(w.sub(update.add(decay).mul(lr)));
      }
    });
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
  model.train(); // dropout on (when the model has any)
  const { loss, gradients } = lossAndGradients(model, inputs, targets);
  const { clipped } = clipByGlobalNorm(gradients, maxNorm);
  optimizer.applyGradients(clipped);
  const value = loss.dataSync()[0] as number;
  tf.dispose([loss, ...Object.values(gradients), ...Object.values(clipped)]);
  return value;
}
