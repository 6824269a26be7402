import * as tf from "@tensorflow/tfjs";
import type { GPTConfig } from "../models/config.js";
import { GPT } from "../models/gpt.js";
import type { Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";

/**
 * LoRA, low-rank adaptation (Hu et al., 2021): fine-tune a big model by training a few small matrices
 * instead of all its weights.
 *
 * A Linear layer computes y = x·W with W of shape (in, out). LoRA freezes W and learns a correction of
 * rank r ≪ min(in, out):
 *
 *   y = x·W + (α/r) · x·A·B        A: (in, r), B: (r, out)
 *
 * Trainable numbers per layer drop from in·out to r·(in + out) (for a 768×768 layer at r = 8: 590k → 12k),
 * and so does the optimizer's memory. B starts at zero, so training starts from exactly the base model;
 * A starts random, so the gradient of B is not zero. α/r keeps the size of the update comparable when r
 * changes. Once trained, A·B is added into W ("merged"): the result is an ordinary model, as fast as the
 * original, saved as an ordinary checkpoint.
 */
export interface LoRAOptions {
  rank: number; // r
  alpha: number; // α: the update is scaled by α / r
  /** Which Linear layers of each block get an adapter (default: all four). */
  targets: readonly LoRATarget[];
  /**
   * Base parameters that stay trainable (default: the token embedding). Fine-tuning for chat adds tokens
   * whose embedding rows start untrained: frozen, they would never learn what <|end|> means.
   */
  alsoTrain: readonly string[];
  seed: number;
}

export type LoRATarget = "attn.c_attn" | "attn.c_proj" | "mlp.c_fc" | "mlp.c_proj";

export const defaultLoRAOptions: LoRAOptions = {
  rank: 8,
  alpha: 16,
  targets: ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
  alsoTrain: ["wte.weight"],
  seed: 1337,
};

/** The low-rank correction of one Linear layer: x ↦ (α/r)·x·A·B. */
export class LoRAAdapter extends Module {
  readonly A: tf.Variable; // (in, r)
  readonly B: tf.Variable; // (r, out)
  readonly scale: number; // α / r

  constructor(inFeatures: number, outFeatures: number, rank: number, alpha: number, seed: number) {
    super();
    // A ~ N(0, 1/in): x·A then has about the variance of x. B = 0: the model starts unchanged.
    this.A = this.addParameter("A", tf.randomNormal([inFeatures, rank], 0, 1 / Math.sqrt(inFeatures), "float32", seed));
    this.B = this.addParameter("B", tf.zeros([rank, outFeatures]));
    this.scale = alpha / rank;
  }

  /** x: (..., in) → (..., out). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [inFeatures, outFeatures] = [this.A.shape[0] as number, this.B.shape[1] as number];
      const rows = x.reshape([-1, inFeatures]) as tf.Tensor2D;
      const low = tf.matMul(rows, this.A as tf.Tensor2D); // (N, r): the narrow middle of the correction
      const y = tf.matMul(low, this.B as tf.Tensor2D).mul(this.scale); // (N, out)
      return y.reshape([...x.shape.slice(0, -1), outFeatures]);
    });
  }

  /** (α/r)·A·B, the change this adapter makes to W. */
  delta(): tf.Tensor2D {
    return tf.tidy(() => tf.matMul(this.A as tf.Tensor2D, this.B as tf.Tensor2D).mul(this.scale) as tf.Tensor2D);
  }
}

/**
 * A GPT with LoRA adapters: the base weights are frozen (except `alsoTrain`), only the adapters learn. It
 * is a GPT, so the Trainer, `generate` and `chat` use it unchanged. Build it with `LoRAGPT.from(model)`,
 * train, then `merge()` it into a plain GPT to save.
 */
export class LoRAGPT extends GPT {
  readonly loraOptions: LoRAOptions;
  /** Adapter of each adapted layer, by the layer's name, e.g. "h.0.attn.c_attn". */
  readonly adapters = new Map<string, LoRAAdapter>();

  constructor(config: Partial<GPTConfig>, options: Partial<LoRAOptions> = {}) {
    super(config);
    this.loraOptions = { ...defaultLoRAOptions, ...options };
    const { rank, alpha, targets, alsoTrain, seed } = this.loraOptions;
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA: rank must be a positive integer, got ${rank}.`);
    let adapterSeed = seed;
    this.h.forEach((block, i) => {
      for (const target of targets) {
        const linear = target.startsWith("attn.")
          ? block.attn[target.slice(5) as "c_attn" | "c_proj"]
          : block.mlp[target.slice(4) as "c_fc" | "c_proj"];
        if (!linear)
          throw new Error(`LoRA: unknown target "${target}"; choose from ${defaultLoRAOptions.targets.join(", ")}.`);
        const name = `h.${i}.${target}`;
        const adapter = this.addModule(
          `lora.${name}`,
          new LoRAAdapter(linear.inFeatures, linear.outFeatures, rank, alpha, adapterSeed++),
        );
        this.adapters.set(name, adapter);
        attach(linear, adapter);
      }
    });
    // Freeze: TensorFlow.js computes gradients only for trainable variables, so the Trainer (and its
    // optimizer, which skips parameters without a gradient) leaves these weights exactly as they are.
    for (const [name, variable] of this.namedParameters()) {
      if (!name.startsWith("lora.") && !alsoTrain.includes(name)) variable.trainable = false;
    }
  }

  /** A LoRA copy of a trained GPT: same weights, adapters at zero. */
  static from(base: GPT, options: Partial<LoRAOptions> = {}): LoRAGPT {
    const model = new LoRAGPT(base.config, options);
    const baseParameters = new Map(base.namedParameters());
    for (const [name, variable] of model.namedParameters()) {
      const weight = baseParameters.get(name);
      if (weight) variable.assign(weight);
    }
    return model;
  }

  /** Numbers the optimizer actually trains. */
  numTrainableParameters(): number {
    return this.parameters().reduce((total, variable) => total + (variable.trainable ? variable.size : 0), 0);
  }

  /** A plain GPT whose adapted weights are W + (α/r)·A·B: same outputs, no adapters, ready to save. */
  merge(): GPT {
    const merged = new GPT(this.config);
    const own = new Map(this.namedParameters());
    tf.tidy(() => {
      for (const [name, variable] of merged.namedParameters()) {
        const adapter = this.adapters.get(name.replace(/\.weight$/, ""));
        const weight = own.get(name) as tf.Variable;
        variable.assign(adapter ? weight.add(adapter.delta()) : weight);
      }
    });
    return merged;
  }
}

/** Makes `linear` add the adapter's correction to its output: y = x·W + b + (α/r)·x·A·B. */
function attach(linear: Linear, adapter: LoRAAdapter): void {
  const baseForward = linear.forward.bind(linear);
  linear.forward = (x: tf.Tensor) => tf.tidy(() => baseForward(x).add(adapter.forward(x)));
}
