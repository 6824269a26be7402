/**
 * Exercise 03-multi-head-attention · reference solution.
 *
 * nh heads attend in parallel, each in its own hs = C / nh channels: split the channels into heads, attend
 * within each head, put the heads back side by side, and mix them with an output projection.
 */
import { scaledDotProductAttention, tf } from "gpt-course";

/** The weights of one attention layer, with GPT-2's names and layout (x · weight + bias). */
export interface AttentionParameters {
  c_attn: { weight: tf.Tensor; bias: tf.Tensor }; // (C, 3C), (3C): queries, keys and values in one matmul
  c_proj: { weight: tf.Tensor; bias: tf.Tensor }; // (C, C), (C): mixes the heads' outputs
}

/** x · weight + bias on the last axis of x (given: the exercise is about the heads, not this). */
export function linear(x: tf.Tensor, { weight, bias }: { weight: tf.Tensor; bias: tf.Tensor }): tf.Tensor {
  return tf.tidy(() => {
    const [inFeatures, outFeatures] = weight.shape as [number, number];
    const rows = x.reshape([-1, inFeatures]) as tf.Tensor2D;
    return tf
      .matMul(rows, weight as tf.Tensor2D)
      .add(bias)
      .reshape([...x.shape.slice(0, -1), outFeatures]);
  });
}

/** (B, T, C) → (B, nh, T, hs): head h gets channels h·hs .. (h+1)·hs − 1 of every position. */
export function splitHeads(x: tf.Tensor, numHeads: number): tf.Tensor {
  const [B, T, C] = x.shape as [number, number, number];
  // The reshape only regroups each position's C channels as (nh, hs); the transpose then moves the head axis
  // in front of time, so each head is a separate (T, hs) sequence for the batched matmul.
  return x.reshape([B, T, numHeads, C / numHeads]).transpose([0, 2, 1, 3]);
}

/** (B, nh, T, hs) → (B, T, C): the inverse of splitHeads, the heads side by side again. */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [B, nh, T, hs] = x.shape as [number, number, number, number];
  return x.transpose([0, 2, 1, 3]).reshape([B, T, nh * hs]);
}

/** Multi-head self-attention of x: (B, T, C) → (B, T, C). */
export function multiHeadSelfAttention(
  x: tf.Tensor,
  params: AttentionParameters,
  numHeads: number,
  causal: boolean,
): tf.Tensor {
  return tf.tidy(() => {
    // One matmul computes queries, keys and values for every position: (B, T, 3C), then cut in three.
    const [q, k, v] = tf.split(linear(x, params.c_attn), 3, -1).map((t) => splitHeads(t, numHeads)); // (B, nh, T, hs)
    const { output } = scaledDotProductAttention(q as tf.Tensor, k as tf.Tensor, v as tf.Tensor, { causal });
    return linear(mergeHeads(output), params.c_proj);
  });
}
