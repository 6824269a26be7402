import type { Random } from "../utils/random.js";

/**
 * How the next token is chosen from the model's scores (logits) over the vocabulary.
 *
 *   greedy       always the most likely token: deterministic, and prone to loops
 *   temperature  divide the logits by T before the softmax: T < 1 sharpens, T > 1 flattens
 *   top-k        keep only the k most likely tokens
 *   top-p        keep the smallest set of most likely tokens whose probabilities add up to at least p
 *                ("nucleus" sampling: the set grows when the model is unsure, shrinks when it is sure)
 */
export interface SamplingOptions {
  temperature?: number; // 0 means greedy; default 1
  topK?: number; // keep the k most likely tokens (default: all)
  topP?: number; // keep the smallest nucleus with probability ≥ p (default 1: all)
}

/**
 * Probabilities after temperature, top-k and top-p: the distribution the next token is drawn from.
 * Tokens removed by top-k or top-p get probability exactly 0. With temperature 0, all the mass is on
 * the most likely token (the first one on a tie).
 */
export function nextTokenProbabilities(logits: ArrayLike<number>, options: SamplingOptions = {}): Float64Array {
  const { temperature = 1, topK, topP = 1 } = options;
  const V = logits.length;
  if (V === 0) throw new Error("nextTokenProbabilities: the logits are empty.");
  if (!(temperature >= 0) || !Number.isFinite(temperature))
    throw new Error(`temperature must be a number ≥ 0, got ${temperature}.`);
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1))
    throw new Error(`topK must be a positive integer, got ${topK}.`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`topP must be in (0, 1], got ${topP}.`);

  const probabilities = new Float64Array(V);
  if (temperature === 0) {
    probabilities[argmax(logits)] = 1;
    return probabilities;
  }
  // Tokens by decreasing logit; ties keep the lower id first, so results never depend on sort stability.
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const kept = order.slice(0, Math.min(topK ?? V, V));
  // Softmax over the kept tokens, at this temperature (subtract the max for numerical safety).
  const max = logits[kept[0]] / temperature;
  let total = 0;
  for (const id of kept) total += probabilities[id] = Math.exp(logits[id] / temperature - max);
  for (const id of kept) probabilities[id] /= total;
  if (topP < 1) {
    let cumulative = 0;
    let cut = kept.length;
    for (let i = 0; i < kept.length; i++) {
      cumulative += probabilities[kept[i]];
      if (cumulative >= topP) {
        cut = i + 1;
        break;
      }
    }
    let nucleus = 0;
    for (let i = 0; i < cut; i++) nucleus += probabilities[kept[i]];
    for (let i = 0; i < kept.length; i++) probabilities[kept[i]] = i < cut ? probabilities[kept[i]] / nucleus : 0;
  }
  return probabilities;
}

/** Draws one token id from the filtered distribution, using `random` (seeded: replayable). */
export function sampleNextToken(logits: ArrayLike<number>, options: SamplingOptions, random: Random): number {
  if ((options.temperature ?? 1) === 0) return argmax(logits);
  const probabilities = nextTokenProbabilities(logits, options);
  let threshold = random.next();
  let last = 0;
  for (let id = 0; id < probabilities.length; id++) {
    if (probabilities[id] === 0) continue;
    last = id;
    threshold -= probabilities[id];
    if (threshold < 0) return id;
  }
  return last; // rounding left a sliver of mass: give it to the last allowed token
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
