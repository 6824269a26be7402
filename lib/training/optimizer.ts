import * as tf from "@tensorflow/tfjs";
import { fusedAdamWUpdate } from "../kernels/fused.js";

export interface AdamWOptions {
  learningRate: number; // step size; a schedule may change it every step (`setLearningRate`)
  beta1: number; // decay of the running mean of gradients (momentum)
  beta2: number; // decay of the running mean of squared gradients (per-weight step scaling)
  epsilon: number; // keeps the division finite where gradients are ~0
  weightDecay: number; // pulls weights towards 0 by learningRate · weightDecay · w every step
}

export const defaultAdamWOptions: AdamWOptions = {
  learningRate: 1e-3,
  beta1: 0.9,
  beta2: 0.99,
  epsilon: 1e-8,
  weightDecay: 0.1,
};

/**
 * Which weights get weight decay. Matrices that multiply activations do; biases, LayerNorm gains and
 * embedding tables do not: shrinking a bias or a norm's gain towards 0 is not a useful prior, and an
 * embedding row is only updated when its token appears, so decay would erase rare tokens.
 */
export function defaultDecays(name: string, variable: tf.Variable): boolean {
  return variable.rank >= 2 && !/(^|\.)(wte|wpe|[a-z_]*embedding)\./.test(name);
}

/** Saved optimizer state: the step count and both moment estimates of every parameter, by name. */
export interface AdamWState {
  step: number;
  firstMoments: Record<string, tf.Tensor>;
  secondMoments: Record<string, tf.Tensor>;
}

/**
 * Adam with decoupled weight decay (Loshchilov & Hutter, 2019). For each weight w with gradient g:
 *
 *   m ← β₁ m + (1 − β₁) g            running mean of the gradient
 *   v ← β₂ v + (1 − β₂) g²           running mean of its square
 *   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)   corrections for starting at 0
 *   w ← w − lr · (m̂ / (√v̂ + ε) + λ w)
 *
 * Each weight moves by about lr whatever its gradient's scale. "Decoupled" means the decay λw is applied
 * to the weight directly rather than added to g, where Adam's scaling would weaken it for weights with
 * large gradients.
 */
export class AdamW {
  readonly options: AdamWOptions;
  private readonly parameters: Array<{
    name: string;
    variable: tf.Variable;
    decays: boolean;
    m: tf.Variable;
    v: tf.Variable;
  }>;
  private stepCount = 0;

  constructor(
    namedParameters: Array<[string, tf.Variable]>,
    options: Partial<AdamWOptions> = {},
    decays: (name: string, variable: tf.Variable) => boolean = defaultDecays,
  ) {
    this.options = { ...defaultAdamWOptions, ...options };
    for (const [key, value] of Object.entries(this.options)) {
      if (!Number.isFinite(value) || value < 0)
        throw new Error(`AdamW: ${key} must be a finite number ≥ 0, got ${value}.`);
    }
    const zeroVariable = (like: tf.Variable): tf.Variable => {
      const zeros = tf.zerosLike(like);
      const variable = tf.variable(zeros, false);
      zeros.dispose(); // the variable holds its own copy
      return variable;
    };
    this.parameters = namedParameters.map(([name, variable]) => ({
      name,
      variable,
      decays: decays(name, variable),
      m: zeroVariable(variable),
      v: zeroVariable(variable),
    }));
  }

  /** Number of updates applied so far (t in the bias corrections). */
  get step(): number {
    return this.stepCount;
  }

  setLearningRate(learningRate: number): void {
    this.options.learningRate = learningRate;
  }

  /** Applies one update from gradients keyed by parameter name (missing names are left unchanged). */
  applyGradients(gradients: Record<string, tf.Tensor>): void {
    this.stepCount++;
    const { learningRate: lr, beta1, beta2, epsilon, weightDecay } = this.options;
    const correction1 = 1 - beta1 ** this.stepCount;
    const correction2 = 1 - beta2 ** this.stepCount;
    tf.tidy(() => {
      for (const { name, variable, decays, m, v } of this.parameters) {
        const g = gradients[name];
        if (!g) continue;
        // The same update as one kernel where the backend has one (a speed-up only; see ops.ts).
        const fused = fusedAdamWUpdate(variable, m, v, g, {
          learningRate: lr,
          beta1,
          beta2,
          epsilon,
          weightDecay: decays ? weightDecay : 0,
          correction1,
          correction2,
        });
        if (fused) {
          m.assign(fused.m);
          v.assign(fused.v);
          variable.assign(fused.w);
          continue;
        }
        const mNew = m.mul(beta1).add(g.mul(1 - beta1));
        const vNew = v.mul(beta2).add(g.square().mul(1 - beta2));
        m.assign(mNew);
        v.assign(vNew);
        const update = mNew.div(correction1).div(vNew.div(correction2).sqrt().add(epsilon));
        const decayed = decays && weightDecay > 0 ? variable.mul(1 - lr * weightDecay) : variable;
        variable.assign(decayed.sub(update.mul(lr)));
      }
    });
  }

  /** A copy of the state for a checkpoint; the caller disposes the tensors. */
  getState(): AdamWState {
    const firstMoments: Record<string, tf.Tensor> = {};
    const secondMoments: Record<string, tf.Tensor> = {};
    for (const { name, m, v } of this.parameters) {
      firstMoments[name] = m.clone();
      secondMoments[name] = v.clone();
    }
    return { step: this.stepCount, firstMoments, secondMoments };
  }

  /** Restores a saved state; every parameter must be present with its shape. */
  setState(state: AdamWState): void {
    for (const { name, variable, m, v } of this.parameters) {
      const savedM = state.firstMoments[name];
      const savedV = state.secondMoments[name];
      if (!savedM || !savedV)
        throw new Error(`AdamW.setState: the saved state has no moments for parameter "${name}".`);
      if (savedM.shape.join() !== variable.shape.join() || savedV.shape.join() !== variable.shape.join()) {
        throw new Error(
          `AdamW.setState: moments of "${name}" have shape [${savedM.shape}], the parameter has [${variable.shape}].`,
        );
      }
      m.assign(savedM);
      v.assign(savedV);
    }
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const { m, v } of this.parameters) {
      m.dispose();
      v.dispose();
    }
  }
}

/**
 * Scales all gradients together so their global L2 norm is at most `maxNorm`, and returns the norm before
 * clipping (a scalar tensor: read it with `await norm.data()`). One unusually steep batch then cannot throw
 * the weights far from where training was going.
 *
 *   ‖g‖ = sqrt(Σ_θ ‖g_θ‖²),   g ← g · min(1, maxNorm / (‖g‖ + 1e-6))
 *
 * The scale is computed on the device, as PyTorch's clip_grad_norm_ does, so nothing waits for a value to be
 * read back (on a GPU that would stall every step).
 */
export function clipByGlobalNorm(
  gradients: Record<string, tf.Tensor>,
  maxNorm: number,
): { clipped: Record<string, tf.Tensor>; norm: tf.Scalar } {
  // Summed one by one rather than with tf.addN: WebGPU's addN binds every input at once, and a GPU may
  // accept as few as 8 buffers per shader (WebGPU's default limit), fewer than a GPT has parameters.
  const norm = tf.tidy(() => sumAll(Object.values(gradients).map((g) => g.square().sum())).sqrt() as tf.Scalar);
  const scale = tf.tidy(() => tf.minimum(1, tf.div(maxNorm, norm.add(1e-6))));
  const clipped: Record<string, tf.Tensor> = {};
  for (const [name, g] of Object.entries(gradients)) clipped[name] = g.mul(scale);
  scale.dispose();
  return { clipped, norm };
}

/** The sum of same-shaped tensors, added pairwise (see clipByGlobalNorm for why not tf.addN). */
export function sumAll(tensors: readonly tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => tensors.slice(1).reduce((total, tensor) => total.add(tensor), tensors[0]));
}
