/**
 * Exercise 07-loss-masking: loss masking for fine-tuning. Read README.md in this folder, fill in the TODOs,
 * then check your work with `npm run exercise -- 07-loss-masking`.
 */
import type { tf } from "gpt-course";
import { todo } from "../harness/check.js";

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
export function shiftedTargets(conversation: Conversation): { inputs: number[]; targets: number[] } {
  // TODO: inputs: every id but the last. targets: the id that follows each input, or IGNORE_INDEX (from
  //       gpt-course) when that following id is not the assistant's (look at the mask of the *following* id).
  return todo("shiftedTargets", conversation);
}

/**
 * A rectangular batch: every row padded to the longest one, inputs with `padId`, targets with IGNORE_INDEX
 * (padding must never count in the loss).
 */
export function padBatch(
  conversations: readonly Conversation[],
  padId: number,
): { inputs: number[][]; targets: number[][] } {
  // TODO: shiftedTargets for each conversation, then pad every row at the end to the longest row's length.
  return todo("padBatch", conversations, padId);
}

/**
 * Mean cross-entropy over the positions whose target is not IGNORE_INDEX.
 * logits: (..., V) float32; targets: (...) int32.
 */
export function maskedCrossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  // TODO: 1. flatten: logits to (N, V), targets to (N);
  //       2. valid = targets ≠ IGNORE_INDEX; replace ignored targets by 0 so tf.oneHot accepts them;
  //       3. per position: −log softmax(logits)[target] (tf.logSoftmax, then · tf.oneHot(targets, V), summed);
  //       4. zero the ignored positions and divide the sum by the number of valid positions (not by N).
  return todo("maskedCrossEntropy", logits, targets);
}
