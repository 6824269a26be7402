/**
 * Exercise 06-repetition-penalty · reference solution: making tokens that were already used less likely, so
 * that greedy decoding does not loop.
 */
import { argmax, type GPT, tf } from "gpt-course";

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
  const penalised = [...logits];
  for (const token of new Set(history)) {
    const logit = penalised[token] as number;
    // Dividing a negative logit would move it towards 0, making the token *more* likely: multiply it instead.
    penalised[token] = logit > 0 ? logit / penalty : logit * penalty;
  }
  return penalised;
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
  const counts = new Map<number, number>();
  for (const token of history) counts.set(token, (counts.get(token) ?? 0) + 1);
  return logits.map((logit, token) => {
    const count = counts.get(token) ?? 0;
    return logit - count * frequencyPenalty - (count > 0 ? presencePenalty : 0);
  });
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
  const ids = [...prompt];
  for (let step = 0; step < maxNewTokens; step++) {
    const last = tf.tidy(() => {
      const logits = model.forward(tf.tensor2d([ids], [1, ids.length], "int32")); // (1, T, V)
      return logits.slice([0, ids.length - 1, 0], [1, 1, -1]).reshape([-1]); // (V): the next token's scores
    });
    const logits = Array.from(await last.data());
    last.dispose();
    ids.push(argmax(applyRepetitionPenalty(logits, ids, penalty)));
  }
  return ids.slice(prompt.length);
}
