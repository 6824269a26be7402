import * as tf from "@tensorflow/tfjs";
import type { ChatMessage } from "../finetuning/chat-template.js";
import type { GPT } from "../models/gpt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type Batch, type BatchSource, type Split, SplitRandom } from "../training/data.js";
import { IGNORE_INDEX } from "../training/loss.js";
import type { Objective } from "../training/trainer.js";
import { answerRows } from "./answers.js";
import { referenceLogProbabilities, targetLogProbabilities } from "./log-probabilities.js";

/**
 * Direct Preference Optimization (Rafailov et al., 2023): learning from pairs of a preferred ("chosen") and a
 * rejected answer to the same question, without a reward model.
 *
 * The Bradley-Terry model says a person prefers answer y_w to y_l with probability σ(r(y_w) − r(y_l)) for some
 * reward r. The policy that maximises reward with a KL leash β to a reference model π_ref is
 * π(y) ∝ π_ref(y) · exp(r(y)/β), so r(y) = β ln(π(y)/π_ref(y)) + a constant that cancels in the difference.
 * Putting that r into the Bradley-Terry likelihood gives a loss on the policy itself:
 *
 *   L = −ln σ( β [ (ln π(y_w) − ln π_ref(y_w)) − (ln π(y_l) − ln π_ref(y_l)) ] )
 *
 * It raises the chosen answer's probability relative to the reference and lowers the rejected one's; β sets how
 * far the policy may move from the reference (a larger β: a tighter leash, and sharper preferences).
 */
export function dpoLoss(
  policyChosen: tf.Tensor1D,
  policyRejected: tf.Tensor1D,
  referenceChosen: tf.Tensor1D,
  referenceRejected: tf.Tensor1D,
  beta: number,
): tf.Scalar {
  return tf.tidy(() => {
    const margin = policyChosen.sub(referenceChosen).sub(policyRejected.sub(referenceRejected)).mul(beta); // (P)
    return tf.softplus(margin.neg()).mean() as tf.Scalar; // −ln σ(m) = ln(1 + e^−m), computed without overflow
  });
}

/**
 * DPO as the Trainer's objective: a batch holds each pair as two rows, chosen then rejected (PreferenceDataset).
 *
 * `chosenWeight` > 0 adds the fine-tuning loss of the chosen answers, chosenWeight × mean over pairs of
 * −ln π(y_w) per token ("RPO", Pang et al. 2024): DPO alone only asks for a wider margin, and often gets it by
 * lowering both answers; this term keeps the chosen one likely.
 */
export function dpoObjective(beta: number, chosenWeight = 0): Objective {
  return (model, batch) =>
    tf.tidy(() => {
      if (!batch.reference) throw new Error("dpoObjective: the batch has no reference log-probabilities.");
      const perToken = targetLogProbabilities(model.forward(batch.inputs) as tf.Tensor3D, batch.targets); // (2P, T)
      const policy = perToken.sum(1); // (2P)
      const reference = batch.reference.sum(1); // (2P)
      const pairs = batch.inputs.shape[0] / 2;
      const [policyChosen, policyRejected] = tf.split(policy.reshape([pairs, 2]), 2, 1).map((t) => t.reshape([pairs]));
      const [referenceChosen, referenceRejected] = tf
        .split(reference.reshape([pairs, 2]), 2, 1)
        .map((t) => t.reshape([pairs]));
      const loss = dpoLoss(
        policyChosen as tf.Tensor1D,
        policyRejected as tf.Tensor1D,
        referenceChosen as tf.Tensor1D,
        referenceRejected as tf.Tensor1D,
        beta,
      );
      if (chosenWeight === 0) return loss;
      const tokens = batch.targets.notEqual(IGNORE_INDEX).toFloat().sum(1).reshape([pairs, 2]); // (P, 2)
      const chosenTokens = tf.split(tokens, 2, 1)[0].reshape([pairs]).maximum(1);
      const chosenNll = (policyChosen as tf.Tensor1D).div(chosenTokens).mean().neg();
      return loss.add(chosenNll.mul(chosenWeight)) as tf.Scalar;
    });
}

/** A question (the conversation up to the user's last message) with a preferred and a rejected answer. */
export interface PreferencePair {
  history: ChatMessage[];
  chosen: string;
  rejected: string;
}

export interface PreferenceDatasetOptions {
  batchSize: number; // pairs per batch (two rows each)
  validationFraction: number; // the last pairs, never trained on
  seed: number;
}

/** Batches of preference pairs for `dpoObjective`, with the frozen reference model's log-probabilities. */
export class PreferenceDataset implements BatchSource {
  readonly train: PreferencePair[];
  readonly validation: PreferencePair[];
  private readonly random: SplitRandom;

  constructor(
    pairs: readonly PreferencePair[],
    private readonly tokenizer: Tokenizer,
    private readonly reference: GPT,
    readonly options: PreferenceDatasetOptions,
  ) {
    const validationCount = Math.round(pairs.length * options.validationFraction);
    if (pairs.length - validationCount < 1 || (options.validationFraction > 0 && validationCount < 1)) {
      throw new Error(
        `PreferenceDataset: ${pairs.length} pairs are too few for a validation fraction of ${options.validationFraction}.`,
      );
    }
    this.train = pairs.slice(0, pairs.length - validationCount);
    this.validation = pairs.slice(pairs.length - validationCount);
    this.random = new SplitRandom(options.seed);
  }

  nextBatch(split: Split): Batch {
    const pool = split === "train" ? this.train : this.validation;
    const picked = Array.from({ length: this.options.batchSize }, () => pool[this.random[split].int(pool.length)]);
    const rows = picked.flatMap(({ history, chosen, rejected }) => [
      { history, answer: chosen },
      { history, answer: rejected },
    ]);
    const { inputs, targets } = answerRows(this.tokenizer, rows, this.reference.config.contextLength);
    return { inputs, targets, reference: referenceLogProbabilities(this.reference, inputs, targets) };
  }

  getState(): unknown {
    return this.random.getState();
  }

  setState(state: unknown): void {
    this.random.setState(state, "PreferenceDataset");
  }
}
