/**
 * Checks for 06-kv-cache: the cache on its own (concatenation, length, surviving tf.tidy), plugged into
 * gpt-course's GPT (cached logits must equal uncached ones), and greedy generation against gpt-course's
 * `generate`, including a check that each step after the prompt really feeds only one token.
 */
import { generate, GPT, type Random, tf } from "gpt-course";
import {
  CheckFailure,
  type Conforms,
  defineExercise,
  expectClose,
  expectTensor,
  fail,
  isTodo,
  randomInt,
  randomTensor,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** A small GPT with random weights of a healthy size, so its logits are far apart and greedy picks are clear. */
function randomModel(random: Random): GPT {
  const numHeads = randomInt(random, 1, 2);
  return new GPT({
    vocabSize: randomInt(random, 20, 50),
    contextLength: 32,
    numLayers: 2,
    numHeads,
    embeddingDim: 8 * numHeads,
    initStd: 0.5,
    seed: random.seed(),
  });
}

const randomPrompt = (random: Random, vocabSize: number): number[] =>
  Array.from({ length: randomInt(random, 1, 6) }, () => random.int(vocabSize));

const TIDY_HINT =
  "The model calls append inside tf.tidy, which disposes every tensor created inside it when it returns. Store " +
  "tf.keep(allKeys) and tf.keep(allValues) in the cache (and return them as usual).";

export default defineExercise<Exports>({
  title: "A KV cache",
  teaches: "why keys and values can be cached, concat on the time axis, tf.tidy/tf.keep, incremental decoding",
  checks: [
    {
      name: "append concatenates along the time axis and length counts the cached positions",
      hint:
        "The tensors are (B, nh, T, hs): time is axis 2. The first append just stores the keys and values; later " +
        "ones use tf.concat([this.keys, keys], 2). length is keys.shape[2], or 0 while empty.",
      run({ KVCache }, random) {
        const cache = new KVCache();
        try {
          if (cache.length !== 0) fail(`a new cache has length ${cache.length}, expected 0.`);
          const [B, nh, hs] = [randomInt(random, 1, 2), randomInt(random, 1, 3), randomInt(random, 2, 5)];
          const parts = Array.from({ length: randomInt(random, 2, 4) }, () => randomInt(random, 1, 4));
          const allKeys: tf.Tensor[] = [];
          const allValues: tf.Tensor[] = [];
          for (const T of parts) {
            const [keys, values] = [randomTensor(random, [B, nh, T, hs]), randomTensor(random, [B, nh, T, hs])];
            allKeys.push(keys);
            allValues.push(values);
            const result = cache.append(keys, values);
            const total = allKeys.reduce((n, k) => n + (k.shape[2] as number), 0);
            expectClose(
              result?.keys,
              tf.concat(allKeys, 2),
              `the keys returned after appending ${allKeys.length} steps`,
              { atol: 0, rtol: 0 },
            );
            expectClose(
              result?.values,
              tf.concat(allValues, 2),
              `the values returned after appending ${allValues.length} steps`,
              { atol: 0, rtol: 0 },
            );
            if (cache.length !== total) fail(`after appending ${total} positions, length is ${cache.length}.`);
          }
        } finally {
          disposeQuietly(cache);
        }
      },
    },
    {
      name: "the cached tensors survive tf.tidy (as in a forward pass) and dispose() frees them",
      hint: TIDY_HINT,
      run({ KVCache }, random) {
        const cache = new KVCache();
        const shape = [1, 2, 3, 4];
        for (let step = 0; step < 2; step++)
          tf.tidy(() => void cache.append(randomTensor(random, shape), randomTensor(random, shape)));
        const keys = expectTensor(cache.keys, "cache.keys after two appends inside tf.tidy");
        if (keys.shape[2] !== 6)
          fail(`cache.keys has shape [${keys.shape}] after two appends of 3 positions, expected time axis 6.`);
        const values = expectTensor(cache.values, "cache.values");
        const before = tf.memory().numTensors;
        cache.dispose();
        if (!keys.isDisposed || !values.isDisposed)
          fail("dispose() should dispose the cached keys and values (memory leak).");
        if (cache.length !== 0) fail(`after dispose() the cache should be empty, but length is ${cache.length}.`);
        if (tf.memory().numTensors > before - 2) fail("dispose() did not free the cached tensors.");
      },
    },
    {
      name: "GPT with your caches gives the same logits as without a cache",
      hint:
        "Feed the prompt first, then one token per call with { cache: caches }: position t's logits must match the " +
        "full forward pass. If they drift apart, check the concatenation axis (2) and that length counts positions.",
      async run({ KVCache }, random) {
        const model = randomModel(random);
        const caches = model.h.map(() => new KVCache());
        try {
          const tokens = Array.from({ length: randomInt(random, 5, 12) }, () => random.int(model.config.vocabSize));
          const full = model.forward(tf.tensor2d([tokens], [1, tokens.length], "int32"));
          const promptLength = randomInt(random, 1, tokens.length - 2);
          const chunks = [tokens.slice(0, promptLength), ...tokens.slice(promptLength).map((t) => [t])];
          let position = 0;
          for (const chunk of chunks) {
            const logits = await explainDisposed(() =>
              model.forward(tf.tensor2d([chunk], [1, chunk.length], "int32"), { cache: caches }),
            );
            const expected = full.slice([0, position, 0], [1, chunk.length, -1]);
            expectClose(
              logits,
              expected,
              `the logits of positions ${position}..${position + chunk.length - 1} (with ${position} cached)`,
              { atol: 1e-3, rtol: 1e-3 },
            );
            position += chunk.length;
          }
        } finally {
          for (const cache of caches) disposeQuietly(cache);
          model.dispose();
        }
      },
    },
    {
      name: "generateGreedy produces gpt-course's greedy tokens",
      hint: "Each step: the last position's logits, argmax, append that token. Return only the new tokens, not the prompt.",
      async run({ generateGreedy }, random) {
        const model = randomModel(random);
        try {
          const prompt = randomPrompt(random, model.config.vocabSize);
          const maxNewTokens = randomInt(random, 4, 12);
          const expected = await generate(model, prompt, { maxNewTokens, temperature: 0 });
          const tokens = await explainDisposed(() => generateGreedy(model, [...prompt], maxNewTokens));
          if (!Array.isArray(tokens) || tokens.join() !== (expected.tokens[0] as number[]).join()) {
            fail(
              `for the prompt [${prompt}], generateGreedy gave ${JSON.stringify(tokens)}, expected [${expected.tokens[0]}].`,
            );
          }
        } finally {
          model.dispose();
        }
      },
    },
    {
      name: "generateGreedy runs the model on the prompt once, then on one new token per step",
      hint:
        "That is the point of the cache: after the first call, model.forward gets ids of shape [1, 1] (only the token " +
        "just chosen) and { cache: caches }, because the caches already hold the keys and values of everything before.",
      async run({ generateGreedy }, random) {
        const model = randomModel(random);
        const calls: Array<{ length: number; cached: boolean }> = [];
        const forward = model.forward.bind(model);
        model.forward = (ids, options = {}) => {
          calls.push({ length: ids.shape[1] as number, cached: options.cache !== undefined });
          return forward(ids, options);
        };
        try {
          const prompt = randomPrompt(random, model.config.vocabSize);
          const maxNewTokens = randomInt(random, 3, 8);
          await explainDisposed(() => generateGreedy(model, [...prompt], maxNewTokens));
          if (calls.length !== maxNewTokens)
            fail(
              `generating ${maxNewTokens} tokens called model.forward ${calls.length} times, expected ${maxNewTokens}.`,
            );
          if (calls.some((call) => !call.cached)) fail("some calls of model.forward had no { cache }.");
          const lengths = calls.map((call) => call.length);
          const expected = [prompt.length, ...Array<number>(maxNewTokens - 1).fill(1)];
          if (lengths.join() !== expected.join()) {
            fail(
              `model.forward was called on ${lengths.join(", ")} tokens; with a cache it should be ${expected.join(", ")}.`,
            );
          }
        } finally {
          model.dispose();
        }
      },
    },
  ],
});

/**
 * Runs `f`; an error from using a disposed tensor gets the tf.keep hint: it almost always means the cache's
 * tensors were freed by the tf.tidy around the model's forward pass.
 */
async function explainDisposed<T>(f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (!isTodo(error) && !(error instanceof CheckFailure) && /disposed|reading 'backend'/i.test(message)) {
      fail(`your code threw ${message} (a tensor was used after it had been disposed).`, TIDY_HINT);
    }
    throw error;
  }
}

/** Cleanup that never hides the real failure (the starter's dispose() is itself a TODO). */
function disposeQuietly(cache: { dispose(): void }): void {
  try {
    cache.dispose();
  } catch {
    // ignored: the check has already passed or failed
  }
}
