/**
 * Exercise 06-kv-cache: a KV cache, and greedy generation that uses it. Read README.md in this folder, fill
 * in the TODOs, then check your work with `npm run exercise -- 06-kv-cache`.
 */
import type { GPT, tf } from "gpt-course";
import { todo } from "../harness/check.js";

/** One block's cache: keys and values of the positions seen so far, each (B, nh, T, hs). */
export class KVCache {
  keys?: tf.Tensor;
  values?: tf.Tensor;

  /** Number of positions already cached (the time axis, axis 2). */
  get length(): number {
    // TODO: 0 while empty, else the size of the keys' time axis.
    return todo("KVCache.length");
  }

  /** Appends this step's keys and values along the time axis and returns all of them. */
  append(keys: tf.Tensor, values: tf.Tensor): { keys: tf.Tensor; values: tf.Tensor } {
    // TODO: concatenate the cached keys (if any) with the new ones on axis 2 (tf.concat), the same for values;
    //       dispose the old cached tensors; store the new ones; return them.
    //       The model calls append inside tf.tidy: wrap what you store in tf.keep(...), or tidy disposes it.
    return todo("KVCache.append", keys, values);
  }

  dispose(): void {
    // TODO: dispose the cached tensors (if any) and forget them.
    todo("KVCache.dispose");
  }
}

/**
 * Greedy generation with a cache: run the model once on the whole prompt, then once per new token on that
 * token alone. Assumes prompt.length + maxNewTokens ≤ the model's context length.
 */
export async function generateGreedy(model: GPT, prompt: readonly number[], maxNewTokens: number): Promise<number[]> {
  // TODO: 1. one KVCache per block: model.h.map(() => new KVCache());
  //       2. each step: logits = model.forward(ids, { cache: caches }) with ids an int32 tensor of shape [1, T]
  //          (T = the prompt's length in the first step, 1 afterwards); take the last position's logits,
  //          pick the largest (argmax from gpt-course), and feed only that token next time;
  //       3. dispose the caches at the end.
  return todo("generateGreedy", model, prompt, maxNewTokens);
}
