import * as tf from "@tensorflow/tfjs";
import { fusedGatherRows } from "../kernels/fused.js";
import type { GPT } from "../models/gpt.js";
import { ProgressBar } from "../utils/progress.js";
import type { Batch, BatchSource, Split } from "./data.js";
import { crossEntropy, IGNORE_INDEX } from "./loss.js";
import { AdamW, type AdamWState, clipByGlobalNorm, sumAll } from "./optimizer.js";
import { learningRateAt } from "./schedule.js";

export interface TrainerOptions {
  maxSteps: number; // optimizer steps in the whole run; the learning-rate schedule spans them
  learningRate: number; // peak learning rate, reached after warm-up
  minLearningRate: number; // where the cosine decay ends
  warmupSteps: number; // linear warm-up from 0
  weightDecay: number; // AdamW's decoupled decay on weight matrices
  beta1: number;
  beta2: number; // 0.99 rather than 0.999: small models on small batches like a shorter memory
  gradientClip: number; // largest global gradient norm; 0 turns clipping off
  gradientAccumulationSteps: number; // micro-batches summed into one step: a larger batch in the same memory
  evalInterval: number; // estimate train and validation loss every this many steps (0: never)
  evalBatches: number; // batches averaged per estimate
}

export const defaultTrainerOptions: Omit<TrainerOptions, "maxSteps"> = {
  learningRate: 1e-3,
  minLearningRate: 1e-4,
  warmupSteps: 100,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  gradientClip: 1.0,
  gradientAccumulationSteps: 1,
  evalInterval: 250,
  evalBatches: 20,
};

export interface StepResult {
  step: number; // number of optimizer steps done, this one included
  loss: number; // training loss of this step's batch (mean over accumulation)
  learningRate: number;
  gradientNorm: number; // before clipping
  tokensPerSecond: number;
}

export interface EvalResult {
  step: number;
  train: number;
  validation: number;
}

export interface TrainingHistory {
  steps: StepResult[];
  evals: EvalResult[];
}

/** Everything needed to continue training exactly where it stopped (see checkpoint.ts). */
export interface TrainerState {
  step: number;
  optimizer: AdamWState;
  data: unknown;
  modelRandom: number;
  history: TrainingHistory;
}

/**
 * What a step minimises, from the model and a batch. The default is the cross-entropy of the next-token
 * predictions (pretraining, fine-tuning); lib/alignment has preference-tuning objectives (DPO, policy gradient).
 */
export type Objective = (model: GPT, batch: Batch) => tf.Scalar;

export interface TrainOptions {
  /** Steps to run now (default: until maxSteps). */
  steps?: number;
  /** Called after every step: a notebook draws its live loss curve from here. */
  onStep?: (result: StepResult) => void | Promise<void>;
  /** Called after every evaluation. */
  onEval?: (result: EvalResult) => void | Promise<void>;
  /** Draw a progress bar on stderr (default true). */
  progress?: boolean;
  /** Stops training cleanly after the current step when aborted. */
  signal?: AbortSignal;
}

/**
 * The training loop shared by pretraining and fine-tuning. One step:
 *   1. draw a batch, run the model, measure the cross-entropy of its next-token predictions;
 *   2. backpropagate to get every parameter's gradient (summed over `gradientAccumulationSteps` batches);
 *   3. clip the gradients' global norm, set the scheduled learning rate, and let AdamW update the weights.
 * Every random choice (batches, dropout) comes from seeded generators whose state is part of
 * `getState()`, so a run that is saved and resumed follows exactly the same path as one that never stopped.
 */
export class Trainer {
  readonly options: TrainerOptions;
  readonly optimizer: AdamW;
  readonly history: TrainingHistory = { steps: [], evals: [] };
  private stepCount = 0;
  private readonly parameterNames: Map<string, string>; // tf.Variable name → our parameter name

  constructor(
    readonly model: GPT,
    readonly data: BatchSource,
    options: Partial<TrainerOptions> & { maxSteps: number },
    /** What to minimise instead of the next-token cross-entropy (see `Objective`). */
    readonly objective?: Objective,
  ) {
    this.options = { ...defaultTrainerOptions, ...options };
    const { maxSteps, gradientAccumulationSteps, evalBatches } = this.options;
    if (!Number.isInteger(maxSteps) || maxSteps < 1)
      throw new Error(`Trainer: maxSteps must be a positive integer, got ${maxSteps}.`);
    if (!Number.isInteger(gradientAccumulationSteps) || gradientAccumulationSteps < 1) {
      throw new Error(
        `Trainer: gradientAccumulationSteps must be a positive integer, got ${gradientAccumulationSteps}.`,
      );
    }
    if (!Number.isInteger(evalBatches) || evalBatches < 1)
      throw new Error(`Trainer: evalBatches must be a positive integer, got ${evalBatches}.`);
    const named = model.namedParameters();
    this.parameterNames = new Map(named.map(([name, variable]) => [variable.name, name]));
    this.optimizer = new AdamW(named, {
      learningRate: this.learningRate(0),
      beta1: this.options.beta1,
      beta2: this.options.beta2,
      weightDecay: this.options.weightDecay,
    });
  }

  /** Optimizer steps done so far. */
  get step(): number {
    return this.stepCount;
  }

  learningRate(step: number): number {
    const { learningRate, minLearningRate, warmupSteps, maxSteps } = this.options;
    return learningRateAt(step, { maxLearningRate: learningRate, minLearningRate, warmupSteps, totalSteps: maxSteps });
  }

  /**
   * One optimizer step (forward, backward, update); returns its figures. Asynchronous because the loss and
   * the gradient norm are read back from the device once the step is queued: on a GPU, reading earlier
   * would make it wait in the middle of the step.
   */
  async trainStep(): Promise<StepResult> {
    const started = performance.now();
    const { gradientAccumulationSteps: accumulation, gradientClip } = this.options;
    this.model.train();
    let summed: Record<string, tf.Tensor> = {};
    const losses: tf.Scalar[] = [];
    let tokens = 0;
    for (let micro = 0; micro < accumulation; micro++) {
      const batch = await this.data.nextBatch("train");
      tokens += batch.inputs.size;
      const graded = this.objective ? undefined : await gradedPositions(batch.targets);
      const { value, grads } = tf.variableGrads(() => this.loss(batch, graded));
      graded?.dispose();
      losses.push(value);
      summed = this.accumulate(summed, grads);
      disposeBatch(batch);
    }
    const gradients = accumulation > 1 ? this.scale(summed, 1 / accumulation) : summed;
    const { clipped, norm } =
      gradientClip > 0 ? clipByGlobalNorm(gradients, gradientClip) : { clipped: gradients, norm: undefined };
    const meanLoss = tf.tidy(() => sumAll(losses).div(accumulation));
    // Read the loss before the update: a NaN or infinite loss (training diverged) must not reach the weights.
    const [loss, gradientNorm] = await Promise.all([meanLoss.data(), norm?.data()]);
    tf.dispose([meanLoss, ...losses, ...(norm ? [norm] : [])]);
    if (!Number.isFinite(loss[0]) || (gradientNorm && !Number.isFinite(gradientNorm[0]))) {
      disposeAll(gradients, clipped);
      const what = Number.isFinite(loss[0]) ? `the gradient norm is ${gradientNorm![0]}` : `the loss is ${loss[0]}`;
      throw new Error(
        `Trainer: at step ${this.stepCount + 1} ${what}: training diverged. The weights were not updated, so they (and ` +
          "the last checkpoint) are those of the previous step. Lower the learning rate, or keep gradient clipping on.",
      );
    }
    const learningRate = this.learningRate(this.stepCount);
    this.optimizer.setLearningRate(learningRate);
    this.optimizer.applyGradients(clipped);
    disposeAll(gradients, clipped);
    this.stepCount++;
    const result: StepResult = {
      step: this.stepCount,
      loss: loss[0],
      learningRate,
      gradientNorm: gradientNorm ? gradientNorm[0] : NaN,
      tokensPerSecond: tokens / ((performance.now() - started) / 1000),
    };
    this.history.steps.push(result);
    return result;
  }

  /** Mean loss over `evalBatches` batches of each split, with dropout off. */
  async evaluate(): Promise<EvalResult> {
    const wasTraining = this.model.training;
    this.model.eval();
    const meanLoss = async (split: Split): Promise<number> => {
      let total = 0;
      for (let i = 0; i < this.options.evalBatches; i++) {
        const batch = await this.data.nextBatch(split);
        const graded = this.objective ? undefined : await gradedPositions(batch.targets);
        const loss = tf.tidy(() => this.loss(batch, graded));
        total += (await loss.data())[0];
        loss.dispose();
        graded?.dispose();
        disposeBatch(batch);
      }
      return total / this.options.evalBatches;
    };
    const result: EvalResult = {
      step: this.stepCount,
      train: await meanLoss("train"),
      validation: await meanLoss("validation"),
    };
    this.model.train(wasTraining);
    this.history.evals.push(result);
    return result;
  }

  /**
   * Runs steps until `steps` more are done or `maxSteps` is reached, evaluating every `evalInterval`
   * steps and at the end (never when evalInterval is 0). Yields to the event loop between steps so notebooks can redraw and Ctrl-C works.
   */
  async train(options: TrainOptions = {}): Promise<TrainingHistory> {
    const { maxSteps, evalInterval } = this.options;
    const last = Math.min(maxSteps, this.stepCount + (options.steps ?? maxSteps));
    const bar = options.progress === false ? undefined : new ProgressBar(last, "train");
    let lastEval: EvalResult | undefined;
    while (this.stepCount < last && !options.signal?.aborted) {
      const result = await this.trainStep();
      await options.onStep?.(result);
      if (evalInterval > 0 && (this.stepCount % evalInterval === 0 || this.stepCount === last)) {
        lastEval = await this.evaluate();
        await options.onEval?.(lastEval);
      }
      bar?.update(this.stepCount, {
        loss: result.loss.toFixed(3),
        ...(lastEval ? { val: lastEval.validation.toFixed(3) } : {}),
        "tok/s": Math.round(result.tokensPerSecond).toLocaleString("en-US"),
      });
      await new Promise((resolve) => setImmediate(resolve));
    }
    bar?.finish();
    return this.history;
  }

  /** A snapshot for a checkpoint (the caller disposes the optimizer tensors). */
  getState(): TrainerState {
    return {
      step: this.stepCount,
      optimizer: this.optimizer.getState(),
      data: this.data.getState(),
      modelRandom: this.model.random.getState(),
      history: structuredClone(this.history),
    };
  }

  setState(state: TrainerState): void {
    this.optimizer.setState(state.optimizer);
    this.data.setState(state.data);
    this.model.random.setState(state.modelRandom);
    this.stepCount = state.step;
    this.history.steps = [...state.history.steps];
    this.history.evals = [...state.history.evals];
  }

  dispose(): void {
    this.optimizer.dispose();
  }

  /**
   * Mean cross-entropy of the model's next-token predictions on one batch. With `graded` (the flat
   * positions whose target is not ignored), the output head scores only those: in fine-tuning most
   * positions are prompts, and with a large vocabulary the head is one of the biggest matmuls of a step.
   */
  private loss(batch: Batch, graded?: tf.Tensor1D): tf.Scalar {
    if (this.objective) return this.objective(this.model, batch);
    const { inputs, targets, documents } = batch;
    if (!graded) return crossEntropy(this.model.forward(inputs, { documents }), targets);
    const hidden = this.model.features(inputs, { documents }); // (B, T, C)
    const positions = hidden.reshape([-1, hidden.shape[2]]) as tf.Tensor2D; // (B·T, C)
    const gradedHidden = fusedGatherRows(positions, graded) ?? tf.gather(positions, graded); // (N, C)
    return crossEntropy(this.model.head(gradedHidden), tf.gather(targets.reshape([-1]), graded));
  }

  /** Adds gradients keyed by tf.Variable name into `sums` keyed by our parameter names. */
  private accumulate(sums: Record<string, tf.Tensor>, grads: tf.NamedTensorMap): Record<string, tf.Tensor> {
    for (const [variableName, grad] of Object.entries(grads)) {
      const name = this.parameterNames.get(variableName) ?? variableName;
      const previous = sums[name];
      if (previous) {
        sums[name] = previous.add(grad);
        tf.dispose([previous, grad]);
      } else {
        sums[name] = grad;
      }
    }
    return sums;
  }

  private scale(gradients: Record<string, tf.Tensor>, factor: number): Record<string, tf.Tensor> {
    const scaled: Record<string, tf.Tensor> = {};
    for (const [name, g] of Object.entries(gradients)) {
      scaled[name] = g.mul(factor);
      g.dispose();
    }
    return scaled;
  }
}

/**
 * The flat positions (B·T) whose target counts, or undefined when that is all of them (pretraining) or none.
 * Read back asynchronously (`whereAsync`), so it costs no stall on a GPU.
 */
async function gradedPositions(targets: tf.Tensor2D): Promise<tf.Tensor1D | undefined> {
  const isGraded = tf.tidy(() => targets.reshape([-1]).notEqual(IGNORE_INDEX));
  const positions = await tf.whereAsync(isGraded); // (N, 1)
  isGraded.dispose();
  if (positions.shape[0] === targets.size || positions.shape[0] === 0) {
    positions.dispose();
    return undefined;
  }
  const flat = positions.reshape([-1]) as tf.Tensor1D;
  positions.dispose();
  return flat;
}

function disposeBatch({ inputs, targets, documents, reference, advantages }: Batch): void {
  tf.dispose([inputs, targets, ...(documents ? [documents.documentIds, documents.positions] : [])]);
  if (reference) reference.dispose();
  if (advantages) advantages.dispose();
}

/** Disposes every tensor of both maps once (they may share tensors). */
function disposeAll(...maps: Array<Record<string, tf.Tensor>>): void {
  const tensors = new Set(maps.flatMap((map) => Object.values(map)));
  tf.dispose([...tensors]);
}
