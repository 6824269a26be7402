/**
 * Exercise 06-kv-cache · reference solution.
 *
 * Generating token t+1 needs the keys and values of all positions 0..t. They do not change from one step to
 * the next (causal attention: a position never sees what comes after it), so each block keeps them in a
 * cache and each step only computes them for the one new token.
 */
import { argmax, type GPT, tf } from "gpt-course";

/** One block's cache: keys and values of the positions seen so far, each (B, nh, T, hs). */
export class KVCache {
  keys?: tf.Tensor;
  values?: tf.Tensor;

  /** Number of positions already cached (the time axis, axis 2). */
  get length(): number {
    return this.keys ? (this.keys.shape[2] as number) : 0;
  }

  /** Appends this step's keys and values along the time axis and returns all of them. */
  append(keys: tf.Tensor, values: tf.Tensor): { keys: tf.Tensor; values: tf.Tensor } {
    const allKeys = this.keys ? tf.concat([this.keys, keys], 2) : keys.clone();
    const allValues = this.values ? tf.concat([this.values, values], 2) : values.clone();
    this.dispose(); // the old, shorter tensors are no longer needed
    // append is called inside the model's tf.tidy, which disposes every tensor created in it when it ends.
    // tf.keep exempts the cache's own copies, so they are still there for the next step.
    this.keys = tf.keep(allKeys);
    this.values = tf.keep(allValues);
    return { keys: allKeys, values: allValues };
  }

  dispose(): void {
    this.keys?.dispose();
    this.values?.dispose();
    this.keys = undefined;
    this.values = undefined;
  }
}

/**
 * Greedy generation with a cache: run the model once on the whole prompt, then once per new token on that
 * token alone. Assumes prompt.length + maxNewTokens ≤ the model's context length.
 */
export async function generateGreedy(model: GPT, prompt: readonly number[], maxNewTokens: number): Promise<number[]> {
  const caches = model.h.map(() => new KVCache()); // one per block
  const tokens: number[] = [];
  try {
    let input = [...prompt]; // the first step feeds the whole prompt
    for (let step = 0; step < maxNewTokens; step++) {
      const lastLogits = tf.tidy(() => {
        const ids = tf.tensor2d([input], [1, input.length], "int32");
        const logits = model.forward(ids, { cache: caches }); // (1, T, V)
        return logits.slice([0, input.length - 1, 0], [1, 1, -1]).reshape([-1]); // the last position's scores
      });
      const next = argmax(await lastLogits.data());
      lastLogits.dispose();
      tokens.push(next);
      input = [next]; // from now on, only the new token: the cache holds everything before it
    }
  } finally {
    for (const cache of caches) cache.dispose();
  }
  return tokens;
}
