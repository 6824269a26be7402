/**
 * Exercise 08-gpt2-weights: copying a Hugging Face GPT-2 checkpoint into our GPT. Read README.md in this
 * folder, fill in the TODOs, then check your work with `npm run exercise -- 08-gpt2-weights`.
 */
import type { GPT } from "gpt-course";
import { todo } from "../harness/check.js";

/** A tensor as read from a checkpoint (e.g. with openSafetensors(...).readTensor(name)). */
export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

/** Our parameter name for a name in a GPT-2 checkpoint, or undefined for a mask buffer that is no parameter. */
export function parameterName(checkpointName: string): string | undefined {
  // TODO: drop a leading "transformer."; return undefined for the causal-mask buffers "h.N.attn.bias" and
  //       "h.N.attn.masked_bias" (but not for "h.N.attn.c_attn.bias", a real parameter!); else the name itself.
  return todo("parameterName", checkpointName);
}

/** Copies the checkpoint's tensors into `model`'s parameters; throws when one is missing or has the wrong shape. */
export function loadGPT2Weights(model: GPT, tensors: ReadonlyMap<string, StoredTensor>): void {
  // TODO: for each [name, variable] of model.namedParameters(): find its tensor (via parameterName), check the
  //       shape, and variable.assign(tf.tensor(data, shape)). "lm_head.weight" (only there when the output layer
  //       is not tied to wte) is stored (V, C) by torch's nn.Linear: transpose it to our (C, V).
  //       Throw an Error that names the parameter when the checkpoint lacks it.
  todo("loadGPT2Weights", model, tensors);
}
