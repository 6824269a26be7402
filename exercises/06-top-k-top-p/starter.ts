/**
 * Exercise 06-top-k-top-p: temperature, top-k and top-p (nucleus) sampling. Read README.md in this folder,
 * fill in the TODOs, then check your work with `npm run exercise -- 06-top-k-top-p`.
 */
import type { SamplingOptions } from "gpt-course";
import { todo } from "../harness/check.js";

/** softmax(logits / temperature), in float64, stable for large logits. */
export function softmaxWithTemperature(logits: readonly number[], temperature: number): number[] {
  // TODO: divide by the temperature, subtract the maximum, exponentiate, normalise to sum 1.
  return todo("softmaxWithTemperature", logits, temperature);
}

/** Every probability but the k largest set to 0, the rest renormalised to sum to 1. */
export function keepTopK(probabilities: readonly number[], k: number): number[] {
  // TODO: sort the ids by decreasing probability, keep the first k, zero the others, renormalise.
  return todo("keepTopK", probabilities, k);
}

/**
 * The nucleus: the smallest set of most likely tokens whose probabilities add up to at least p (the token
 * that crosses p is included); every other probability set to 0, the rest renormalised.
 */
export function keepTopP(probabilities: readonly number[], p: number): number[] {
  // TODO: walk the ids by decreasing probability, adding each to the kept set and its probability to a running
  //       sum; stop as soon as the sum reaches p. Zero the others, renormalise.
  return todo("keepTopP", probabilities, p);
}

/** Temperature, then top-k, then top-p. Temperature 0 means greedy: all the mass on the largest logit. */
export function nextTokenProbabilities(logits: readonly number[], options: SamplingOptions = {}): number[] {
  // TODO: options.temperature (default 1; 0 = greedy: probability 1 for the first largest logit),
  //       options.topK (default: no limit), options.topP (default 1: no nucleus). Combine the functions above.
  return todo("nextTokenProbabilities", logits, options);
}

/**
 * Draws a token from `probabilities` given a uniform random number u in [0, 1): the first id whose cumulative
 * probability exceeds u (inverse transform sampling).
 */
export function sampleToken(probabilities: readonly number[], u: number): number {
  // TODO: add up the probabilities in id order; return the first id where the running sum exceeds u.
  return todo("sampleToken", probabilities, u);
}
