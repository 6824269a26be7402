/**
 * Exercise 07-lora · reference solution: a LoRA layer (Hu et al., 2021) around a frozen Linear layer, and merging
 * it back into an ordinary Linear layer.
 *
 *   y = x·W + b + (α/r)·x·A·B        W: (in, out) frozen, A: (in, r), B: (r, out) trained, r ≪ in, out
 */
import { Linear, Module, tf } from "gpt-course";

export interface LoRASettings {
  rank: number; // r
  alpha: number; // α: the correction is scaled by α / r
  seed: number; // seeds A's random initialisation
}

/** A frozen Linear layer plus a trainable low-rank correction. */
export class LoRALinear extends Module {
  readonly base: Linear; // the pretrained layer: frozen, not one of this module's parameters
  readonly A: tf.Variable; // (in, r)
  readonly B: tf.Variable; // (r, out)
  readonly scale: number; // α / r

  constructor(base: Linear, { rank, alpha, seed }: LoRASettings) {
    super();
    this.base = base;
    // Freeze the base: tf.variableGrads only differentiates trainable variables, so W and b get no gradient and
    // the optimizer never changes them.
    base.weight.trainable = false;
    if (base.bias) base.bias.trainable = false;
    // A random with std 1/√in, so that x·A has about the size of x; B = 0, so that the layer starts exactly as
    // the base layer (and A still gets a gradient once B has moved, B gets one at once).
    const { inFeatures, outFeatures } = base;
    this.A = this.addParameter("A", tf.randomNormal([inFeatures, rank], 0, 1 / Math.sqrt(inFeatures), "float32", seed));
    this.B = this.addParameter("B", tf.zeros([rank, outFeatures]));
    this.scale = alpha / rank;
  }

  /** x: (..., in) → (..., out). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { inFeatures, outFeatures } = this.base;
      const rows = x.reshape([-1, inFeatures]) as tf.Tensor2D; // (N, in)
      const low = tf.matMul(rows, this.A as tf.Tensor2D); // (N, r): the narrow middle, r numbers per row
      const correction = tf.matMul(low, this.B as tf.Tensor2D).mul(this.scale); // (N, out)
      return this.base.forward(x).add(correction.reshape([...x.shape.slice(0, -1), outFeatures]));
    });
  }

  /** A new, plain Linear with weight W + (α/r)·A·B and the base's bias: the same outputs, no adapter. */
  merge(): Linear {
    const { inFeatures, outFeatures } = this.base;
    const merged = new Linear(inFeatures, outFeatures, { bias: this.base.bias !== undefined });
    tf.tidy(() => {
      const delta = tf.matMul(this.A as tf.Tensor2D, this.B as tf.Tensor2D).mul(this.scale); // (in, out), rank ≤ r
      merged.weight.assign(this.base.weight.add(delta));
      if (this.base.bias && merged.bias) merged.bias.assign(this.base.bias);
    });
    return merged;
  }
}
