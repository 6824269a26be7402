/**
 * Exercise 06-top-k-top-p · reference solution: from logits to the distribution the next token is drawn
 * from, then the draw itself.
 */
import type { SamplingOptions } from "gpt-course";

/** softmax(logits / temperature), in float64, stable for large logits. */
export function softmaxWithTemperature(logits: readonly number[], temperature: number): number[] {
  const scaled = logits.map((logit) => logit / temperature);
  const max = Math.max(...scaled); // subtracting the max keeps exp from overflowing
  const exps = scaled.map((x) => Math.exp(x - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

/** Token ids by decreasing probability; ties keep the lower id first. */
function byProbability(probabilities: readonly number[]): number[] {
  return probabilities
    .map((_, id) => id)
    .sort((a, b) => (probabilities[b] as number) - (probabilities[a] as number) || a - b);
}

/** Every probability but the k largest set to 0, the rest renormalised to sum to 1. */
export function keepTopK(probabilities: readonly number[], k: number): number[] {
  const kept = new Set(byProbability(probabilities).slice(0, k));
  const total = [...kept].reduce((sum, id) => sum + (probabilities[id] as number), 0);
  return probabilities.map((p, id) => (kept.has(id) ? p / total : 0));
}

/**
 * The nucleus: the smallest set of most likely tokens whose probabilities add up to at least p (the token
 * that crosses p is included); every other probability set to 0, the rest renormalised.
 */
export function keepTopP(probabilities: readonly number[], p: number): number[] {
  const kept = new Set<number>();
  let cumulative = 0;
  for (const id of byProbability(probabilities)) {
    kept.add(id);
    cumulative += probabilities[id] as number;
    if (cumulative >= p) break;
  }
  const total = [...kept].reduce((sum, id) => sum + (probabilities[id] as number), 0);
  return probabilities.map((q, id) => (kept.has(id) ? q / total : 0));
}

/** Temperature, then top-k, then top-p. Temperature 0 means greedy: all the mass on the largest logit. */
export function nextTokenProbabilities(logits: readonly number[], options: SamplingOptions = {}): number[] {
  const { temperature = 1, topK, topP = 1 } = options;
  if (temperature === 0) {
    const best = logits.indexOf(Math.max(...logits)); // the first one on a tie
    return logits.map((_, id) => (id === best ? 1 : 0));
  }
  let probabilities = softmaxWithTemperature(logits, temperature);
  if (topK !== undefined) probabilities = keepTopK(probabilities, topK);
  if (topP < 1) probabilities = keepTopP(probabilities, topP);
  return probabilities;
}

/**
 * Draws a token from `probabilities` given a uniform random number u in [0, 1): the first id whose cumulative
 * probability exceeds u (inverse transform sampling). Each id is picked with its probability, because it
 * owns a stretch of [0, 1) exactly that long.
 */
export function sampleToken(probabilities: readonly number[], u: number): number {
  let cumulative = 0;
  let last = 0;
  for (let id = 0; id < probabilities.length; id++) {
    const p = probabilities[id] as number;
    if (p === 0) continue;
    last = id;
    cumulative += p;
    if (u < cumulative) return id;
  }
  return last; // rounding can leave the total a hair below 1: give that sliver to the last possible token
}
