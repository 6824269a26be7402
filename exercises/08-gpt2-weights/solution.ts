/**
 * Exercise 08-gpt2-weights · reference solution: copying a Hugging Face GPT-2 checkpoint into our GPT.
 *
 * Our parameters already carry GPT-2's names, and our Linear layers store weights (in, out) like GPT-2's
 * `Conv1D`, so loading is mostly a copy by name. Three details are not:
 *   - files saved from `GPT2LMHeadModel` prefix names with "transformer.";
 *   - each block stores a constant causal-mask buffer, "h.N.attn.bias" (old files also "h.N.attn.masked_bias"),
 *     which is not a parameter (our attention builds its mask on the fly);
 *   - an untied "lm_head.weight" is a torch `nn.Linear`, stored (out, in) = (V, C): it must be transposed.
 */
import { type GPT, tf } from "gpt-course";

/** A tensor as read from a checkpoint (e.g. with openSafetensors(...).readTensor(name)). */
export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

/** Our parameter name for a name in a GPT-2 checkpoint, or undefined for a mask buffer that is no parameter. */
export function parameterName(checkpointName: string): string | undefined {
  const name = checkpointName.replace(/^transformer\./, "");
  // Careful: "h.0.attn.c_attn.bias" is a real parameter; only attn.bias / attn.masked_bias are buffers.
  if (/(^|\.)attn\.(masked_)?bias$/.test(name)) return undefined;
  return name;
}

/** Copies the checkpoint's tensors into `model`'s parameters; throws when one is missing or has the wrong shape. */
export function loadGPT2Weights(model: GPT, tensors: ReadonlyMap<string, StoredTensor>): void {
  const byParameter = new Map<string, StoredTensor>();
  for (const [name, tensor] of tensors) {
    const parameter = parameterName(name);
    if (parameter !== undefined) byParameter.set(parameter, tensor);
  }
  for (const [name, variable] of model.namedParameters()) {
    const stored = byParameter.get(name);
    if (!stored) throw new Error(`the checkpoint has no tensor for the parameter "${name}"`);
    const transposed = name === "lm_head.weight"; // nn.Linear (V, C) → our (C, V)
    const expected = transposed ? [...variable.shape].reverse() : variable.shape;
    if (stored.shape.join() !== expected.join()) {
      throw new Error(`"${name}" has shape [${stored.shape}] in the checkpoint, expected [${expected}]`);
    }
    tf.tidy(() => {
      const tensor = tf.tensor(stored.data, stored.shape, "float32");
      variable.assign(transposed ? tensor.transpose() : tensor);
    });
  }
}
