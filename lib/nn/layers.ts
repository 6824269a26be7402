import * as tf from "@tensorflow/tfjs";
import type { Random } from "../utils/random.js";
import { Module } from "./module.js";
import { fusedGatherRows, fusedLayerNorm, fusedLinear, fusedMatMul } from "../kernels/fused.js";

/**
 * Linear layer y = x·W + b, applied to the last axis of x.
 *
 * The weight is stored (inFeatures, outFeatures), the layout of GPT-2's `Conv1D`, so a GPT-2 checkpoint
 * loads without transposing and the forward pass is a plain matmul.
 */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean; initStd?: number; seed?: number } = {},
  ) {
    super();
    const { bias = true, initStd = 0.02, seed } = options;
    this.weight = this.addParameter("weight", tf.randomNormal([inFeatures, outFeatures], 0, initStd, "float32", seed));
    if (bias) this.bias = this.addParameter("bias", tf.zeros([outFeatures]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const leading = x.shape.slice(0, -1); // e.g. (B, T)
      const rows = x.reshape([-1, this.inFeatures]) as tf.Tensor2D; // (B·T, in)
      const W = this.weight as tf.Tensor2D;
      const b = this.bias as tf.Tensor1D | undefined;
      // the fused routes (lib/kernels/fused.ts): on wasm one kernel adding b as it stores x·W
      let y: tf.Tensor | undefined = b && fusedLinear(rows, W, b);
      if (!y) {
        y = fusedMatMul(rows, W) ?? tf.matMul(rows, W); // (B·T, out)
        if (b) y = y.add(b);
      }
      return y.reshape([...leading, this.outFeatures]);
    });
  }
}

/**
 * Layer normalisation: each vector along the last axis is shifted to mean 0 and scaled to variance 1, then
 * scaled and shifted by learned `weight` (γ) and `bias` (β):
 *   y = (x − mean) / √(var + ε) · γ + β
 * It keeps activations in a stable range however deep the network, which is what lets Transformers train.
 */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly features: number,
    readonly epsilon = 1e-5,
  ) {
    super();
    this.weight = this.addParameter("weight", tf.ones([features]));
    this.bias = this.addParameter("bias", tf.zeros([features]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    // The same maths as one fused kernel where the backend has one (a speed-up only; see ops.ts).
    const fused = fusedLayerNorm(x, this.weight, this.bias, this.epsilon);
    if (fused) return fused;
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const normalised = x.sub(mean).mul(tf.rsqrt(variance.add(this.epsilon)));
      return normalised.mul(this.weight).add(this.bias);
    });
  }
}

/** A lookup table of learned vectors, one row per id: token embeddings (`wte`) and positions (`wpe`). */
export class Embedding extends Module {
  readonly weight: tf.Variable;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: { initStd?: number; seed?: number } = {},
  ) {
    super();
    const { initStd = 0.02, seed } = options;
    this.weight = this.addParameter(
      "weight",
      tf.randomNormal([numEmbeddings, embeddingDim], 0, initStd, "float32", seed),
    );
  }

  /** ids: integer tensor of any shape → (...ids.shape, embeddingDim). */
  forward(ids: tf.Tensor): tf.Tensor {
    const table = this.weight as tf.Tensor2D;
    return fusedGatherRows(table, ids) ?? tf.gather(table, ids); // row ids[...] of the table
  }
}

/**
 * Dropout: while training, zero each value with probability `rate` and scale the survivors by 1/(1 − rate)
 * so the expected sum is unchanged; at evaluation it does nothing. Masks come from a seeded generator, so a
 * training run can be replayed exactly.
 */
export class Dropout extends Module {
  constructor(
    readonly rate: number,
    private readonly random: Random,
  ) {
    super();
    if (!(rate >= 0 && rate < 1)) throw new Error(`Dropout: rate must be in [0, 1), got ${rate}.`);
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this.rate === 0) return x;
    return tf.dropout(x, this.rate, undefined, this.random.seed());
  }
}
