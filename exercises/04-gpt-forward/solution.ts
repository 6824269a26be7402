/**
 * Exercise 04-gpt-forward · reference solution: a GPT's parameter count from its config alone, and its forward
 * pass written out from its weights.
 *
 *   ids (B, T) → wte[ids] + wpe[0..T−1] → h[0] … h[L−1] → ln_f → · wteᵀ (or lm_head) → logits (B, T, V)
 */
import { type GPT, type GPTConfig, tf } from "gpt-course";

/**
 * The number of trainable numbers in a GPT with this config, without building it:
 * embeddings, L blocks (two LayerNorms, attention, MLP), the final LayerNorm, and lm_head unless it is tied.
 */
export function countParameters(config: GPTConfig): number {
  const { vocabSize: V, contextLength: T, numLayers: L, embeddingDim: C, bias, tieWeights } = config;
  const b = bias ? 1 : 0; // biases of the Linear layers; LayerNorms always have γ and β
  const layerNorm = 2 * C; // γ and β
  const attention = C * 3 * C + b * 3 * C + (C * C + b * C); // c_attn (C → 3C), c_proj (C → C)
  const mlp = C * 4 * C + b * 4 * C + (4 * C * C + b * C); // c_fc (C → 4C), c_proj (4C → C)
  const block = 2 * layerNorm + attention + mlp; // ln_1, attn, ln_2, mlp
  const embeddings = V * C + T * C; // wte, wpe
  const head = tieWeights ? 0 : C * V; // a tied head reuses wte: no numbers of its own
  return embeddings + L * block + layerNorm + head; // the last layerNorm is ln_f
}

/** ids: int32 (B, T) → token embeddings plus position embeddings (B, T, C). */
export function embed(model: GPT, ids: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const T = ids.shape[1] as number;
    const tokens = tf.gather(model.wte.weight, ids); // (B, T, C): row ids[b, t] of the (V, C) table
    const positions = tf.gather(model.wpe.weight, tf.range(0, T, 1, "int32")); // (T, C): rows 0..T−1
    return tokens.add(positions); // positions broadcast over the batch
  });
}

/** The output head: hidden states (B, T, C) → logits (B, T, V), a score for every token of the vocabulary. */
export function outputHead(model: GPT, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [B, T, C] = x.shape as [number, number, number];
    const rows = x.reshape([B * T, C]) as tf.Tensor2D;
    // Tied: score each token by the dot product with its own embedding, x · wteᵀ (wte is (V, C)).
    // Untied: lm_head's own (C, V) weight, no bias.
    const logits = model.config.tieWeights
      ? tf.matMul(rows, model.wte.weight as tf.Tensor2D, false, true)
      : tf.matMul(rows, model.lm_head!.weight as tf.Tensor2D);
    return logits.reshape([B, T, model.config.vocabSize]);
  });
}

/** The whole forward pass: ids int32 (B, T) → logits (B, T, V), the same as model.forward(ids). */
export function gptForward(model: GPT, ids: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    let x = embed(model, ids); // (B, T, C): the residual stream
    for (const block of model.h) x = block.forward(x); // (B, T, C) → (B, T, C), L times
    x = model.ln_f.forward(x); // pre-LN blocks never normalise the stream itself: ln_f does, once, at the end
    return outputHead(model, x); // (B, T, V)
  });
}
