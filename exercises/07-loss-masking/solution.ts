/**
 * Exercise 07-loss-masking · reference solution: supervised fine-tuning trains only on the assistant's tokens.
 */
import { IGNORE_INDEX, tf } from "gpt-course";

/**
 * A conversation rendered with the chat template (the shape gpt-course's `renderConversation` returns):
 * `assistantMask[i]` is 1 when ids[i] was written by the assistant (its closing <|end|> included), else 0.
 */
export interface Conversation {
  ids: number[];
  assistantMask: number[];
}

/**
 * Next-token inputs and targets: inputs[t] = ids[t], targets[t] = ids[t + 1], but IGNORE_INDEX where ids[t + 1]
 * is not the assistant's. The model still reads the whole conversation; it is only graded on its own words.
 */
export function shiftedTargets({ ids, assistantMask }: Conversation): { inputs: number[]; targets: number[] } {
  const inputs = ids.slice(0, -1);
  // The target of position t is the token at t + 1, so it is that token's mask bit that decides.
  const targets = inputs.map((_, t) => (assistantMask[t + 1] === 1 ? (ids[t + 1] as number) : IGNORE_INDEX));
  return { inputs, targets };
}

/**
 * A rectangular batch: every row padded to the longest one, inputs with `padId`, targets with IGNORE_INDEX
 * (padding must never count in the loss).
 */
export function padBatch(
  conversations: readonly Conversation[],
  padId: number,
): { inputs: number[][]; targets: number[][] } {
  const rows = conversations.map(shiftedTargets);
  const length = Math.max(...rows.map((row) => row.inputs.length));
  const pad = (values: number[], value: number): number[] => [
    ...values,
    ...Array<number>(length - values.length).fill(value),
  ];
  return {
    inputs: rows.map((row) => pad(row.inputs, padId)),
    targets: rows.map((row) => pad(row.targets, IGNORE_INDEX)),
  };
}

/**
 * Mean cross-entropy over the positions whose target is not IGNORE_INDEX.
 * logits: (..., V) float32; targets: (...) int32.
 */
export function maskedCrossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const V = logits.shape[logits.rank - 1] as number;
    const rows = logits.reshape([-1, V]); // (N, V)
    const flatTargets = targets.reshape([-1]); // (N)
    const valid = flatTargets.notEqual(IGNORE_INDEX); // (N) bool
    // oneHot needs ids in 0..V-1: give ignored positions id 0, their loss is zeroed below anyway.
    const safeTargets = tf.where(valid, flatTargets, tf.zerosLike(flatTargets)) as tf.Tensor1D;
    const logProbabilities = tf.logSoftmax(rows); // stable log(softmax)
    const targetLogProbability = logProbabilities.mul(tf.oneHot(safeTargets, V)).sum(-1); // log p(target), (N)
    const losses = targetLogProbability.neg().mul(valid.toFloat()); // 0 where ignored
    // Average over the counted positions only; at least 1 so a batch with nothing to learn gives 0, not NaN.
    return losses.sum().div(tf.maximum(valid.sum(), 1)) as tf.Scalar;
  });
}
