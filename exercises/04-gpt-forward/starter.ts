/**
 * Exercise 04-gpt-forward: a GPT's parameter count and its forward pass, written out. Read README.md in this
 * folder, fill in the TODOs, then check your work with `npm run exercise -- 04-gpt-forward`.
 */
import type { GPT, GPTConfig, tf } from "gpt-course";
import { todo } from "../harness/check.js";

/**
 * The number of trainable numbers in a GPT with this config, without building it:
 * embeddings, L blocks (two LayerNorms, attention, MLP), the final LayerNorm, and lm_head unless it is tied.
 */
export function countParameters(config: GPTConfig): number {
  // TODO: with V = config.vocabSize, T = config.contextLength, L = config.numLayers, C = config.embeddingDim:
  //       wte (V, C) and wpe (T, C); per block: ln_1 and ln_2 (γ and β each), attn.c_attn (C → 3C),
  //       attn.c_proj (C → C), mlp.c_fc (C → 4C), mlp.c_proj (4C → C); then ln_f; then lm_head (C → V, no
  //       bias) only when config.tieWeights is false. Linear layers have a bias only when config.bias is true.
  return todo("countParameters", config);
}

/** ids: int32 (B, T) → token embeddings plus position embeddings (B, T, C). */
export function embed(model: GPT, ids: tf.Tensor): tf.Tensor {
  // TODO: from the tables themselves, model.wte.weight (V, C) and model.wpe.weight (contextLength, C):
  //       tokens = the rows ids of wte (tf.gather)                  → (B, T, C)
  //       positions = the rows 0, 1, …, T − 1 of wpe                → (T, C)
  //       return their sum (broadcast over the batch)               → (B, T, C)
  return todo("embed", model, ids);
}

/** The output head: hidden states (B, T, C) → logits (B, T, V), a score for every token of the vocabulary. */
export function outputHead(model: GPT, x: tf.Tensor): tf.Tensor {
  // TODO: reshape x to (B·T, C); if model.config.tieWeights, multiply by wteᵀ (tf.matMul(a, b, false, true)),
  //       else by model.lm_head.weight (C, V); reshape the result back to (B, T, V).
  return todo("outputHead", model, x);
}

/** The whole forward pass: ids int32 (B, T) → logits (B, T, V), the same as model.forward(ids). */
export function gptForward(model: GPT, ids: tf.Tensor): tf.Tensor {
  // TODO: embed → every block of model.h in order (block.forward(x)) → model.ln_f → outputHead. Use tf.tidy.
  return todo("gptForward", model, ids);
}
