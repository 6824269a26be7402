/**
 * Exercise 03-multi-head-attention: a multi-head self-attention layer. Read README.md in this folder, fill in
 * the TODOs, then check your work with `npm run exercise -- 03-multi-head-attention`.
 */
import { tf } from "gpt-course";
import { todo } from "../harness/check.js";

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
  // TODO: reshape to (B, T, nh, hs), then transpose to (B, nh, T, hs).
  return todo("splitHeads", x, numHeads);
}

/** (B, nh, T, hs) → (B, T, C): the inverse of splitHeads, the heads side by side again. */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  // TODO: undo splitHeads: transpose back, then reshape.
  return todo("mergeHeads", x);
}

/** Multi-head self-attention of x: (B, T, C) → (B, T, C). */
export function multiHeadSelfAttention(
  x: tf.Tensor,
  params: AttentionParameters,
  numHeads: number,
  causal: boolean,
): tf.Tensor {
  // TODO: 1. q, k, v: linear(x, params.c_attn) gives (B, T, 3C); tf.split(..., 3, -1) cuts it into three (B, T, C);
  //       2. split each into heads;
  //       3. attend: scaledDotProductAttention(q, k, v, { causal }) from gpt-course (you wrote it in chapter 02);
  //       4. merge the heads and apply the output projection linear(..., params.c_proj).
  return todo("multiHeadSelfAttention", x, params, numHeads, causal);
}
