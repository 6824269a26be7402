/**
 * Exercise 06-repetition-penalty: repetition, frequency and presence penalties. Read README.md in this folder, fill
 * in the TODOs, then check your work with `npm run exercise -- 06-repetition-penalty`.
 */
import type { GPT } from "gpt-course";
// generateGreedyWithPenalty also needs tf and argmax from gpt-course: import { argmax, type GPT, tf } from "gpt-course".
import { todo } from "../harness/check.js";

/**
 * The repetition penalty of the CTRL paper (Keskar et al., 2019), as Hugging Face applies it: for every token
 * that occurs in `history` (once, however often it occurs), a positive logit is divided by `penalty` and a
 * negative one multiplied by it. Both make the token less likely when penalty > 1; penalty 1 changes nothing.
 * Returns a new array; `logits` is left as it was.
 */
export function applyRepetitionPenalty(
  logits: readonly number[],
  history: readonly number[],
  penalty: number,
): number[] {
  // TODO: copy the logits ([...logits]); for each *distinct* token of the history (new Set(history)), divide its
  //       logit by penalty if it is positive, multiply it by penalty otherwise. Return the copy.
  return todo("applyRepetitionPenalty", logits, history, penalty);
}

/**
 * OpenAI's frequency and presence penalties: logit[j] − count[j] · frequencyPenalty − (count[j] > 0 ? 1 : 0) ·
 * presencePenalty, where count[j] is how often token j occurs in `history`. The frequency penalty grows with
 * every repetition; the presence penalty is paid once, by any token used at all. Returns a new array.
 */
export function applyFrequencyPresencePenalty(
  logits: readonly number[],
  history: readonly number[],
  frequencyPenalty: number,
  presencePenalty: number,
): number[] {
  // TODO: count each token of the history (a Map from token to count), then compute every logit's new value.
  return todo("applyFrequencyPresencePenalty", logits, history, frequencyPenalty, presencePenalty);
}

/**
 * Greedy generation with a repetition penalty: at each step, the last position's logits, penalised for every
 * token seen so far (the prompt's and the generated ones), then the largest. Returns only the new tokens.
 * Assumes prompt.length + maxNewTokens ≤ the model's context length.
 */
export async function generateGreedyWithPenalty(
  model: GPT,
  prompt: readonly number[],
  maxNewTokens: number,
  penalty: number,
): Promise<number[]> {
  // TODO: ids = a copy of the prompt; maxNewTokens times:
  //       1. logits = model.forward(tf.tensor2d([ids], [1, ids.length], "int32"))               → (1, T, V)
  //       2. the last position's logits as a plain array (slice, then await tensor.data())      → V numbers
  //       3. applyRepetitionPenalty(those logits, ids, penalty), then argmax; push the token onto ids.
  //       Return only the new tokens. Dispose the tensors (tf.tidy).
  return todo("generateGreedyWithPenalty", model, prompt, maxNewTokens, penalty);
}
