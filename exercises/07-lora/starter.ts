/**
 * Exercise 07-lora: a LoRA layer around a frozen Linear layer, and merging it back. Read README.md in this folder,
 * fill in the TODOs, then check your work with `npm run exercise -- 07-lora`.
 */
import { type Linear, Module, type tf } from "gpt-course";
import { todo } from "../harness/check.js";

export interface LoRASettings {
  rank: number; // r
  alpha: number; // α: the correction is scaled by α / r
  seed: number; // seeds A's random initialisation
}

/** A frozen Linear layer plus a trainable low-rank correction: y = x·W + b + (α/r)·x·A·B. */
export class LoRALinear extends Module {
  readonly base: Linear; // the pretrained layer: frozen, not one of this module's parameters
  readonly A: tf.Variable; // (in, r)
  readonly B: tf.Variable; // (r, out)
  readonly scale: number; // α / r

  constructor(base: Linear, settings: LoRASettings) {
    super();
    this.base = base;
    // TODO: 1. freeze the base: set base.weight.trainable = false, and the same for base.bias when it has one;
    //       2. this.A = this.addParameter("A", ...): shape (base.inFeatures, rank), normal with std 1/√in,
    //          seeded: tf.randomNormal(shape, 0, std, "float32", settings.seed);
    //       3. this.B = this.addParameter("B", ...): zeros of shape (rank, base.outFeatures);
    //       4. this.scale = alpha / rank.
    todo("LoRALinear constructor", base, settings);
  }

  /** x: (..., in) → (..., out). */
  forward(x: tf.Tensor): tf.Tensor {
    // TODO: inside tf.tidy: rows = x reshaped to (N, in); the correction (rows · A) · B times this.scale, (N, out),
    //       reshaped back to x's leading axes with out last; return this.base.forward(x) plus the correction.
    return todo("LoRALinear.forward", x);
  }

  /** A new, plain Linear with weight W + (α/r)·A·B and the base's bias: the same outputs, no adapter. */
  merge(): Linear {
    // TODO: merged = new Linear(in, out, { bias: this.base.bias !== undefined }); assign it the weight
    //       W + scale · A·B and (if any) the base's bias; return it. Leave the base layer unchanged.
    return todo("LoRALinear.merge");
  }
}
