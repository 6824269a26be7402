import type { Activation } from "../nn/activations.js";

/**
 * Everything that fixes a GPT's shape, with GPT-2's name for each field in brackets. One object, checked
 * once by `gptConfig`, is passed everywhere: model, trainer, checkpoints.
 */
export interface GPTConfig {
  vocabSize: number; // number of token ids; the embedding table has one row per id [vocab_size]
  contextLength: number; // most tokens the model can look at at once, a.k.a. block size [n_positions]
  numLayers: number; // Transformer blocks stacked on top of each other [n_layer]
  numHeads: number; // attention heads per block; must divide embeddingDim [n_head]
  embeddingDim: number; // width of every token's vector, the residual stream [n_embd]
  dropout: number; // dropout rate while training; 0 for small data sets that need no regularisation [*_pdrop]
  bias: boolean; // biases in Linear layers (GPT-2: true; a little faster and no worse without)
  tieWeights: boolean; // the output layer reuses the token embedding matrix (GPT-2: true)
  layerNormEpsilon: number; // ε added to the variance in LayerNorm [layer_norm_epsilon]
  activation: Activation; // MLP non-linearity: GPT-2 uses the tanh approximation of GELU [activation_function]
  preNorm: boolean; // LayerNorm before each sub-layer (GPT-2) rather than after it (original Transformer)
  initStd: number; // weights start as N(0, initStd²) [initializer_range]
  seed: number; // seed of the initialisation and dropout masks: same seed, same model
}

/** GPT-2's defaults; a preset or a user's partial config overrides them. */
const defaults: GPTConfig = {
  vocabSize: 50257,
  contextLength: 1024,
  numLayers: 12,
  numHeads: 12,
  embeddingDim: 768,
  dropout: 0,
  bias: true,
  tieWeights: true,
  layerNormEpsilon: 1e-5,
  activation: "gelu_tanh",
  preNorm: true,
  initStd: 0.02,
  seed: 1337,
};

/** Named shapes: `tiny` for tests, `course` for training on a laptop CPU, and the GPT-2 family. */
export const presets = {
  /** Trains in seconds; used by tests and quick notebook runs. */
  tiny: { vocabSize: 65, contextLength: 16, numLayers: 2, numHeads: 2, embeddingDim: 16 },
  /** The course's CPU model (~0.8M parameters with a character vocabulary): learns in minutes on 2 cores. */
  course: { vocabSize: 65, contextLength: 128, numLayers: 4, numHeads: 4, embeddingDim: 128 },
  gpt2: { vocabSize: 50257, contextLength: 1024, numLayers: 12, numHeads: 12, embeddingDim: 768 }, // 124M
  "gpt2-medium": { vocabSize: 50257, contextLength: 1024, numLayers: 24, numHeads: 16, embeddingDim: 1024 }, // 350M
  "gpt2-large": { vocabSize: 50257, contextLength: 1024, numLayers: 36, numHeads: 20, embeddingDim: 1280 }, // 774M
  "gpt2-xl": { vocabSize: 50257, contextLength: 1024, numLayers: 48, numHeads: 25, embeddingDim: 1600 }, // 1558M
} satisfies Record<string, Partial<GPTConfig>>;

export type PresetName = keyof typeof presets;

/** What users pass: any fields to override, optionally on top of a named preset. */
export type GPTConfigInput = Partial<GPTConfig> & { preset?: PresetName };

/**
 * A complete, validated config: GPT-2's defaults, then the preset (if any), then `overrides`.
 * Throws an error naming the field, its value and what would be valid.
 */
export function gptConfig(overrides: GPTConfigInput = {}): GPTConfig {
  const { preset, ...fields } = overrides;
  if (preset !== undefined && !(preset in presets)) {
    throw new Error(`Unknown GPT preset "${preset}". Available presets: ${Object.keys(presets).join(", ")}.`);
  }
  const config: GPTConfig = { ...defaults, ...(preset ? presets[preset] : {}), ...stripUndefined(fields) };
  validateConfig(config);
  return config;
}

function stripUndefined<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** A value as a message shows it: JSON for most, but Infinity and NaN as themselves (JSON writes null). */
const show = (value: unknown): string => (typeof value === "number" ? String(value) : JSON.stringify(value));

const positiveIntegerFields = ["vocabSize", "contextLength", "numLayers", "numHeads", "embeddingDim"] as const;

/** Checks every field; throws on the first problem with a message that says how to fix it. */
export function validateConfig(config: GPTConfig): void {
  const known = new Set(Object.keys(defaults));
  for (const key of Object.keys(config)) {
    if (!known.has(key)) throw new Error(`GPT config: unknown field "${key}". Known fields: ${[...known].join(", ")}.`);
  }
  for (const field of positiveIntegerFields) {
    const value = config[field];
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`GPT config: ${field} must be a positive integer, got ${show(value)}.`);
    }
  }
  if (config.embeddingDim % config.numHeads !== 0) {
    throw new Error(
      `GPT config: embeddingDim (${config.embeddingDim}) must be divisible by numHeads (${config.numHeads}), ` +
        `so that every head gets embeddingDim / numHeads channels.`,
    );
  }
  const isNumber = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);
  if (!isNumber(config.dropout) || !(config.dropout >= 0 && config.dropout < 1)) {
    throw new Error(`GPT config: dropout must be in [0, 1), got ${show(config.dropout)}.`);
  }
  if (!isNumber(config.layerNormEpsilon) || !(config.layerNormEpsilon > 0)) {
    throw new Error(`GPT config: layerNormEpsilon must be > 0, got ${show(config.layerNormEpsilon)}.`);
  }
  if (!isNumber(config.initStd) || !(config.initStd > 0)) {
    throw new Error(`GPT config: initStd must be > 0, got ${show(config.initStd)}.`);
  }
  if (config.activation !== "gelu" && config.activation !== "gelu_tanh") {
    throw new Error(`GPT config: activation must be "gelu" or "gelu_tanh", got ${show(config.activation)}.`);
  }
  for (const field of ["bias", "tieWeights", "preNorm"] as const) {
    if (typeof config[field] !== "boolean") {
      throw new Error(`GPT config: ${field} must be true or false, got ${show(config[field])}.`);
    }
  }
  if (!Number.isInteger(config.seed)) throw new Error(`GPT config: seed must be an integer, got ${config.seed}.`);
}

/**
 * Parameter count from the config alone, without building the model (GPT-2 small: 124,439,808).
 * Per block: attention 4C² (+4C biases), MLP 8C² (+5C biases), two LayerNorms 4C.
 */
export function countParameters(config: GPTConfig): number {
  const { vocabSize: V, contextLength: T, numLayers: L, embeddingDim: C, bias } = config;
  const perBlock = 12 * C * C + (bias ? 9 * C : 0) + 4 * C;
  const embeddings = V * C + T * C;
  const finalNorm = 2 * C;
  const head = config.tieWeights ? 0 : V * C;
  return embeddings + L * perBlock + finalNorm + head;
}
