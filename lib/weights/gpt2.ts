import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { GPTConfig } from "../models/config.js";
import { GPT } from "../models/gpt.js";
import { openSafetensors, type TensorToWrite, writeSafetensors } from "./safetensors.js";

/**
 * Hugging Face's GPT-2 checkpoints (`config.json` + `model.safetensors`, as published for gpt2,
 * gpt2-medium, gpt2-large, gpt2-xl) to and from our GPT.
 *
 * Our parameter names are GPT-2's and our Linear layers store weights (in, out) exactly like GPT-2's
 * `Conv1D`, so loading is a copy by name. Three details differ from a plain copy:
 *   - files saved from `GPT2LMHeadModel` may prefix names with "transformer.";
 *   - each block carries a constant causal-mask buffer `attn.bias` (and old files `attn.masked_bias`),
 *     which are not parameters: our attention builds its mask on the fly;
 *   - an untied `lm_head.weight` is a torch `nn.Linear`, stored (out, in) = (V, C): it is transposed.
 */

/** The fields of Hugging Face's GPT2Config that matter here. */
export interface HFGPT2Config {
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner?: number | null;
  layer_norm_epsilon?: number;
  activation_function?: string;
  tie_word_embeddings?: boolean;
  scale_attn_weights?: boolean;
  scale_attn_by_inverse_layer_idx?: boolean;
  reorder_and_upcast_attn?: boolean;
  [field: string]: unknown;
}

const activations: Record<string, GPTConfig["activation"]> = {
  gelu_new: "gelu_tanh",
  gelu_pytorch_tanh: "gelu_tanh",
  gelu: "gelu",
};

/** Our config for a Hugging Face GPT-2 config; options our model does not implement are an error. */
export function configFromHF(hf: HFGPT2Config): GPTConfig {
  const activation = activations[hf.activation_function ?? "gelu_new"];
  if (!activation)
    throw new Error(
      `GPT-2 config: activation_function "${hf.activation_function}" is not supported (use one of ${Object.keys(activations).join(", ")}).`,
    );
  if (hf.n_inner != null && hf.n_inner !== 4 * hf.n_embd)
    throw new Error(
      `GPT-2 config: n_inner ${hf.n_inner} is not supported; our MLP is 4 × n_embd = ${4 * hf.n_embd} wide.`,
    );
  for (const flag of ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] as const) {
    if (hf[flag]) throw new Error(`GPT-2 config: ${flag} = true is not supported.`);
  }
  if (hf.scale_attn_weights === false)
    throw new Error(
      "GPT-2 config: scale_attn_weights = false is not supported (attention is always scaled by 1/√d_k).",
    );
  return {
    vocabSize: hf.vocab_size,
    contextLength: hf.n_positions,
    numLayers: hf.n_layer,
    numHeads: hf.n_head,
    embeddingDim: hf.n_embd,
    dropout: 0,
    bias: true,
    tieWeights: hf.tie_word_embeddings ?? true,
    layerNormEpsilon: hf.layer_norm_epsilon ?? 1e-5,
    activation,
    preNorm: true,
    initStd: 0.02,
    seed: 1337,
  };
}

/** A Hugging Face GPT2Config for our config (which must have GPT-2's architecture). */
export function configToHF(config: GPTConfig): HFGPT2Config {
  if (!config.bias || !config.preNorm) {
    throw new Error(
      "saveGPT2: GPT-2's architecture has biases and pre-LayerNorm blocks; this model has " +
        `bias ${config.bias}, preNorm ${config.preNorm}.`,
    );
  }
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: config.vocabSize,
    n_positions: config.contextLength,
    n_ctx: config.contextLength,
    n_embd: config.embeddingDim,
    n_layer: config.numLayers,
    n_head: config.numHeads,
    n_inner: null,
    activation_function: config.activation === "gelu_tanh" ? "gelu_new" : "gelu",
    layer_norm_epsilon: config.layerNormEpsilon,
    initializer_range: config.initStd,
    tie_word_embeddings: config.tieWeights,
    resid_pdrop: config.dropout,
    embd_pdrop: config.dropout,
    attn_pdrop: config.dropout,
    scale_attn_weights: true,
    bos_token_id: 50256,
    eos_token_id: 50256,
    torch_dtype: "float32",
  };
}

/**
 * Loads a GPT-2 checkpoint directory (config.json + model.safetensors) into a new GPT. Tensors are read
 * one at a time straight into the model's variables, so memory holds the model plus one tensor in transit.
 */
export async function loadGPT2(directory: string): Promise<GPT> {
  const configFile = path.join(directory, "config.json");
  const weightsFile = path.join(directory, "model.safetensors");
  for (const file of [configFile, weightsFile]) {
    if (!fs.existsSync(file))
      throw new Error(`loadGPT2: ${file} is missing. Download a model with \`npm run download:gpt2 -- gpt2\`.`);
  }
  let hfConfig: unknown;
  try {
    hfConfig = JSON.parse(fs.readFileSync(configFile, "utf8"));
  } catch (error) {
    throw new Error(`loadGPT2: ${configFile} is not valid JSON (${(error as Error).message}).`);
  }
  const config = configFromHF(checkHFConfig(hfConfig, configFile));
  const weights = await openSafetensors(weightsFile); // a rejected file throws here, before any tensor exists
  let model: GPT | undefined;
  try {
    model = new GPT(config);
    const stored = new Map(weights.names().map((name) => [name.replace(/^transformer\./, ""), name]));
    for (const [name, variable] of model.namedParameters()) {
      const fileName = stored.get(name);
      if (!fileName) throw new Error(`loadGPT2: ${weightsFile} has no tensor "${name}" (nor "transformer.${name}").`);
      stored.delete(name);
      const { shape, data } = await weights.readTensor(fileName);
      const transposed = name === "lm_head.weight"; // nn.Linear (V, C) → our (C, V)
      const expected = transposed ? [...variable.shape].reverse() : variable.shape;
      if (shape.join() !== expected.join()) {
        throw new Error(`loadGPT2: "${fileName}" has shape [${shape}], expected [${expected}] for this config.`);
      }
      const bad = data.findIndex((value) => !Number.isFinite(value));
      if (bad >= 0)
        throw new Error(
          `loadGPT2: "${fileName}" in ${weightsFile} holds ${data[bad]} at index ${bad}: the file is corrupt. Download it again.`,
        );
      tf.tidy(() => {
        const tensor = tf.tensor(data, shape, "float32");
        variable.assign(transposed ? tensor.transpose() : tensor);
      });
    }
    // The causal-mask buffers are not parameters (our attention builds its mask); anything else left over means
    // config.json describes a different model than the weights (e.g. fewer layers): refuse rather than drop it.
    const unused = [...stored.values()].filter((name) => !/(^|\.)attn\.(masked_)?bias$/.test(name));
    if (unused.length > 0) {
      const shown = unused
        .slice(0, 5)
        .map((name) => `"${name}"`)
        .join(", ");
      throw new Error(
        `loadGPT2: ${weightsFile} holds ${unused.length} tensor(s) this config has no place for (${shown}${unused.length > 5 ? ", ..." : ""}): ` +
          `check n_layer, n_embd and the other sizes in ${configFile}.`,
      );
    }
  } catch (error) {
    model?.dispose();
    throw error;
  } finally {
    await weights.close();
  }
  return model;
}

/** The parsed config.json as a GPT-2 config, or a clear error naming the file and the field. */
function checkHFConfig(value: unknown, file: string): HFGPT2Config {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(
      `loadGPT2: ${file} must hold a JSON object (Hugging Face's GPT2Config), got ${JSON.stringify(value)?.slice(0, 40)}.`,
    );
  }
  const config = value as Record<string, unknown>;
  for (const field of ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"]) {
    const size = config[field];
    if (!Number.isInteger(size) || (size as number) < 1) {
      throw new Error(`loadGPT2: ${file}: "${field}" must be a positive integer, got ${JSON.stringify(size)}.`);
    }
  }
  return config as HFGPT2Config;
}

/**
 * Saves a GPT in Hugging Face's GPT-2 layout, so `GPT2LMHeadModel.from_pretrained(directory)` loads it in
 * Python (to fine-tune further with PyTorch's tools on bigger machines). The write of model.safetensors is
 * atomic; config.json is written after it.
 */
export async function saveGPT2(model: GPT, directory: string): Promise<void> {
  const hfConfig = configToHF(model.config);
  fs.mkdirSync(directory, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, variable] of model.namedParameters()) {
    const value = name === "lm_head.weight" ? tf.tidy(() => variable.transpose()) : variable;
    tensors[name] = { dtype: "F32", shape: value.shape, data: (await value.data()) as Float32Array };
    if (value !== variable) value.dispose();
  }
  await writeSafetensors(path.join(directory, "model.safetensors"), tensors, { format: "pt" });
  fs.writeFileSync(path.join(directory, "config.json"), `${JSON.stringify(hfConfig, null, 2)}\n`);
}
