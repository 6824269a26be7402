import * as tf from "@tensorflow/tfjs";
import type { GPT } from "../models/gpt.js";
import type { KVCache } from "../nn/attention.js";
import { Random } from "../utils/random.js";
import { type SamplingOptions, sampleNextToken } from "./sampling.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number; // stop after this many new tokens
  stopTokens?: readonly number[]; // a sequence ends when it produces one of these (it is not included)
  numSequences?: number; // continuations of the same prompt, generated side by side as one batch
  seed?: number; // seeds the sampling: same seed, same text (default 1337)
  useCache?: boolean; // reuse keys and values of earlier positions (default true): same tokens, much faster
  /** Called for each new token as soon as it is chosen: stream text to a terminal or notebook. */
  onToken?: (token: number, sequence: number) => void;
  /** Stops generation after the current token when aborted (Ctrl-C in the chat CLI). */
  signal?: AbortSignal;
}

export interface GenerateResult {
  /** New tokens of each sequence (the prompt not included, a stop token not included). */
  tokens: number[][];
  finishReason: Array<"stop" | "length" | "aborted">;
}

/**
 * Autoregressive generation: run the model on the tokens so far, turn the last position's logits into a
 * distribution, draw the next token, append it, repeat.
 *
 * Context: the model sees at most `contextLength` tokens. Longer inputs are cropped to their last
 * `contextLength` tokens, as nanoGPT does. With the KV cache, the keys and values of earlier positions are
 * kept, so each step runs the model on one new token instead of the whole sequence. When the window is full
 * and must slide, every position's embedding changes, so the cache is rebuilt from the cropped window:
 * the tokens are exactly those of uncached generation.
 */
export async function generate(
  model: GPT,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<GenerateResult> {
  const { maxNewTokens, stopTokens = [], numSequences = 1, seed = 1337, useCache = true } = options;
  if (prompt.length === 0)
    throw new Error("generate: the prompt is empty; give at least one token (e.g. an end-of-text token).");
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)
    throw new Error(`generate: maxNewTokens must be an integer ≥ 0, got ${maxNewTokens}.`);
  if (!Number.isInteger(numSequences) || numSequences < 1)
    throw new Error(`generate: numSequences must be a positive integer, got ${numSequences}.`);
  const { contextLength, vocabSize } = model.config;
  const bad = prompt.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0) {
    const what = Number.isInteger(prompt[bad]) ? "out of range" : "not an integer";
    throw new Error(
      `generate: prompt[${bad}] is ${prompt[bad]}, ${what}: token ids must be integers from 0 to ${vocabSize - 1} (the model's vocabulary). Encode text with the model's tokenizer.`,
    );
  }
  const random = new Random(seed);
  const sequences = Array.from({ length: numSequences }, () => [...prompt]);
  const tokens: number[][] = sequences.map(() => []);
  const finishReason: GenerateResult["finishReason"] = sequences.map(() => "length");
  const active = sequences.map(() => true);
  const wasTraining = model.training;
  model.eval();
  let cache: KVCache[] | undefined;
  try {
    for (let step = 0; step < maxNewTokens && active.some(Boolean); step++) {
      if (options.signal?.aborted) {
        active.forEach((isActive, s) => {
          if (isActive) finishReason[s] = "aborted";
        });
        break;
      }
      const length = sequences[0].length;
      let newTokens: number[][]; // the tokens to run the model on in this step
      if (!useCache) {
        newTokens = sequences.map((sequence) => sequence.slice(-contextLength));
      } else if (cache && cache[0].length < contextLength && cache[0].length === length - 1) {
        newTokens = sequences.map((sequence) => sequence.slice(-1));
      } else {
        cache?.forEach((layerCache) => layerCache.dispose());
        cache = model.createCache();
        newTokens = sequences.map((sequence) => sequence.slice(-contextLength));
      }
      const lastLogits = tf.tidy(() => {
        const ids = tf.tensor2d(newTokens, [numSequences, newTokens[0].length], "int32");
        const logits = model.forward(ids, { cache }); // (B, T, V)
        const T = logits.shape[1];
        return logits.slice([0, T - 1, 0], [numSequences, 1, model.config.vocabSize]).reshape([numSequences, -1]);
      });
      const rows = (await lastLogits.array()) as number[][];
      lastLogits.dispose();
      for (let s = 0; s < numSequences; s++) {
        // Finished sequences keep a placeholder token so the batch stays rectangular; it is never returned.
        const next = active[s] ? sampleNextToken(rows[s], options, random) : (stopTokens[0] ?? 0);
        sequences[s].push(next);
        if (!active[s]) continue;
        if (stopTokens.includes(next)) {
          active[s] = false;
          finishReason[s] = "stop";
          continue;
        }
        tokens[s].push(next);
        options.onToken?.(next, s);
      }
      await nextTask(); // let Ctrl-C, notebook output and a web page's drawing through
    }
  } finally {
    cache?.forEach((layerCache) => layerCache.dispose());
    model.train(wasTraining);
  }
  return { tokens, finishReason };
}

/**
 * Waits for the event loop to run other tasks once. Node has setImmediate; a browser does not, and its
 * setTimeout(0) waits at least 4 ms once nested, so there a message to ourselves does it (a new task, after
 * which the page can draw the text written so far).
 */
function nextTask(): Promise<void> {
  if (typeof setImmediate === "function") return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(undefined);
  });
}
