import * as tf from "@tensorflow/tfjs";
import type { GPT } from "../models/gpt.js";
import { IGNORE_INDEX } from "../training/loss.js";

/**
 * ln p(target_t | tokens up to t) for every position, from a model's logits: (B, T, V) and (B, T) → (B, T), and 0
 * where the target is IGNORE_INDEX. Summed over a row's graded positions it is the log-probability of the whole
 * answer: the quantity DPO and policy gradients work with.
 *
 * It picks each target's log-probability with a one-hot product rather than a gather, so its gradient is a plain
 * product as well (the gather's gradient is missing on some backends).
 */
export function targetLogProbabilities(logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const vocabSize = logits.shape[2];
    const graded = targets.notEqual(IGNORE_INDEX); // (B, T)
    const safeTargets = tf.where(graded, targets, tf.zerosLike(targets)); // any id where ignored
    const picked = tf.logSoftmax(logits).mul(tf.oneHot(safeTargets, vocabSize)).sum(-1); // (B, T)
    return picked.mul(graded.toFloat()) as tf.Tensor2D;
  });
}

/** The same for a frozen model: no gradient is recorded (a reference model in preference tuning). */
export function referenceLogProbabilities(model: GPT, inputs: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor2D {
  const wasTraining = model.training;
  model.eval();
  const result = tf.tidy(() => targetLogProbabilities(model.forward(inputs) as tf.Tensor3D, targets));
  model.train(wasTraining);
  return result;
}
