import * as tf from "@tensorflow/tfjs";
import { type GPTConfig, validateConfig } from "../models/config.js";
import { GPT } from "../models/gpt.js";
import { tokenizerFromJSON } from "../tokenizers/io.js";
import type { Tokenizer, TokenizerJSON } from "../tokenizers/tokenizer.js";
import { SafetensorsFile } from "../weights/safetensors.js";
import type { TrainerOptions } from "./trainer.js";

/**
 * A checkpoint's model from the bytes of its two files, config.json and model.safetensors: how a web page
 * loads the model a learner trained (the files come from a server or a file picker; a browser has no
 * node:fs). Nothing here touches the file system. loadCheckpoint (checkpoint.ts) reads a checkpoint folder
 * on disk with the same checks: it shares this file's config validation and weight copying.
 */
export const CHECKPOINT_FORMAT = "gpt-course-checkpoint";
export const CHECKPOINT_VERSION = 1;

/** What config.json holds. */
export interface CheckpointConfig {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  model: GPTConfig;
  tokenizer?: TokenizerJSON;
  trainer?: TrainerOptions;
  /** SHA-256 (hex) of each other file of the checkpoint; absent in checkpoints saved before checksums. */
  checksums?: Record<string, string>;
}

/**
 * Builds the model of a checkpoint from the text of its config.json and the bytes of its model.safetensors,
 * with every check loadCheckpoint makes: a config of this format and version holding a valid model config,
 * the weights file's checksum (where the runtime has Web Crypto: Node, and browsers on https or localhost),
 * a well-formed safetensors file, every parameter present with the model's shape, and no NaN or infinity.
 * `source` (e.g. the folder's name) starts the file names in error messages.
 */
export async function checkpointFromBytes(
  configJson: string,
  weights: Uint8Array,
  options: { source?: string } = {},
): Promise<{ model: GPT; tokenizer?: Tokenizer }> {
  const source = options.source ?? "checkpoint";
  const configFile = `${source}/config.json`;
  const weightsFile = `${source}/model.safetensors`;
  let value: unknown;
  try {
    value = JSON.parse(configJson);
  } catch (error) {
    throw new Error(
      `checkpointFromBytes: ${configFile} is not valid JSON (${(error as Error).message}). The file may be corrupt.`,
    );
  }
  const config = checkCheckpointConfig(value, configFile, "checkpointFromBytes");
  const expected = config.checksums?.["model.safetensors"];
  if (expected !== undefined && globalThis.crypto?.subtle && (await sha256Hex(weights)) !== expected) {
    throw new Error(
      `checkpointFromBytes: ${weightsFile} is corrupt (its SHA-256 checksum differs from the one saved in config.json). Copy it again, or train again.`,
    );
  }
  const file = SafetensorsFile.fromBytes(weights, weightsFile); // checks the header before a model is built
  const model = new GPT(config.model);
  try {
    await copyParameters(model.namedParameters(), file);
    return { model, tokenizer: config.tokenizer ? tokenizerFromJSON(config.tokenizer) : undefined };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Checks a parsed config.json (`file` and `caller` only appear in error messages). */
export function checkCheckpointConfig(value: unknown, file: string, caller: string): CheckpointConfig {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(
      `${caller}: ${file} must hold a JSON object, got ${JSON.stringify(value)?.slice(0, 40)}. Is this a checkpoint directory?`,
    );
  }
  const config = value as Partial<CheckpointConfig>;
  if (config.format !== CHECKPOINT_FORMAT)
    throw new Error(
      `${caller}: ${file} is not a ${CHECKPOINT_FORMAT} config (format: ${JSON.stringify(config.format)}).`,
    );
  if (config.version !== CHECKPOINT_VERSION)
    throw new Error(
      `${caller}: ${file} has version ${config.version}; this library reads version ${CHECKPOINT_VERSION}.`,
    );
  if (!config.model) throw new Error(`${caller}: ${file} has no "model" config.`);
  try {
    validateConfig(config.model);
  } catch (error) {
    throw new Error(`${caller}: ${file} holds an invalid model config: ${(error as Error).message}`);
  }
  return config as CheckpointConfig;
}

/** Copies every named parameter from a safetensors file, checking names, shapes and values. */
export async function copyParameters(named: Array<[string, tf.Variable]>, weights: SafetensorsFile): Promise<void> {
  for (const [name, variable] of named) {
    const { shape, data } = await weights.readTensor(name); // a missing name is an error that lists similar names
    if (shape.join() !== variable.shape.join()) {
      throw new Error(
        `${weights.path}: "${name}" has shape [${shape}] but the model expects [${variable.shape}]. Does config.json match the weights?`,
      );
    }
    checkFinite(data, name, weights.path);
    tf.tidy(() => variable.assign(tf.tensor(data, variable.shape, "float32")));
  }
}

/** Weights that are NaN or infinite make every later result NaN: refuse them where they are read. */
export function checkFinite(data: Float32Array, name: string, file: string): void {
  const bad = data.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0)
    throw new Error(
      `${file}: "${name}" holds ${data[bad]} at index ${bad}: the weights are corrupt (or training diverged before the save).`,
    );
}

/** SHA-256 with Web Crypto, which Node and browsers share (a browser offers it only on https and localhost). */
async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
